"""Test helpers for records: malformed lines for the bad-record path.

``with_garbage`` mixes malformed lines into a stream of good ones; ``garbage_line`` makes
one of a kind (``GARBAGE_KINDS``). Only tests use them, so they live here, not in the package.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from labhelpers.errors import GeneratorError
from labhelpers.generate.plan import DEFAULT_SITES
from labhelpers.generate.timeline import to_line
from labhelpers.job.contracts import CLICK, MAX_RECORD_CHARS, format_event_time

# Malformed lines, each with the reason ``contracts.check_record`` gives it.
GARBAGE_KINDS: dict[str, str] = {
    "not_json": "not_json",
    "json_not_object": "not_json",
    "missing_browseraction": "missing_browseraction",
    "wrong_type_browseraction": "missing_browseraction",
    "unknown_browseraction": "unknown_browseraction",
    "missing_site": "missing_site",
    "wrong_type_site": "missing_site",
    "missing_event_time": "bad_event_time",
    "wrong_type_event_time": "bad_event_time",
    "bad_event_time": "bad_event_time",
    "oversized": "oversized",
}


def garbage_line(kind: str, near: Mapping[str, Any] | None = None) -> str:
    """One malformed line of ``kind`` (see GARBAGE_KINDS), modelled on the record ``near``."""
    rec = dict(near) if near else {"browseraction": CLICK, "site": DEFAULT_SITES[0],
                                   "event_time": "2026-01-01T00:00:00.000Z"}
    if kind == "not_json":
        return to_line(rec)[:-3] + "\u2026"  # a truncated record
    if kind == "json_not_object":
        return to_line([rec.get("browseraction"), rec.get("site")])
    if kind.startswith("missing_"):
        rec.pop(kind.removeprefix("missing_"), None)
    elif kind == "wrong_type_browseraction":
        rec["browseraction"] = 42
    elif kind == "unknown_browseraction":
        rec["browseraction"] = "Scroll"
    elif kind == "wrong_type_site":
        rec["site"] = 7
    elif kind == "wrong_type_event_time":
        rec["event_time"] = 1767225600000
    elif kind == "bad_event_time":
        rec["event_time"] = "yesterday at noon"
    elif kind == "oversized":
        rec["padding"] = "x" * MAX_RECORD_CHARS
    else:
        raise GeneratorError(f"Unknown garbage kind {kind!r} (parameter kind)",
                             f"use one of {', '.join(GARBAGE_KINDS)}.")
    return to_line(rec)


def with_garbage(records: Iterable[Mapping[str, Any] | str], fraction: float,
                 seed: int | None = 0, kinds: Sequence[str] = tuple(GARBAGE_KINDS)
                 ) -> Iterator[str]:
    """Every record as a line, plus a malformed line after about ``fraction`` of them.

    Good records are never changed or dropped, so results on them must not change.
    """
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise GeneratorError(f"Parameter fraction must be between 0 and 1, got {fraction!r}",
                             "use e.g. fraction=0.05.")
    unknown = [k for k in kinds if k not in GARBAGE_KINDS]
    if unknown or not kinds:
        raise GeneratorError(f"Unknown garbage kind(s) {unknown!r} (parameter kinds)",
                             f"use some of {', '.join(GARBAGE_KINDS)}.")
    rng = random.Random(seed)
    for rec in records:
        if isinstance(rec, str):
            yield rec
            near = None
        else:
            yield to_line(rec)
            near = rec
        if rng.random() < fraction:
            yield garbage_line(rng.choice(kinds), near)


def click_record(action: str, site: str, ts: datetime | float, **extra: Any) -> dict[str, Any]:
    """A click-stream record as the generator sends it."""
    return {"browseraction": action, "site": site, "event_time": format_event_time(ts), **extra}
