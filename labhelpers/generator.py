"""Traffic generator: the lab's Kinesis Data Generator, as a library.

A ``Plan`` lists ``Sender``s (a payload at a rate in records/s per site, optionally only for a
while: that is how a spike is written) and the sites. One schedule turns a plan into records
at exact ticks, sorted by event time, and two modes share it:

- simulated time: ``timeline`` / ``timeline_batches`` / ``send_timeline`` render a whole
  timeline as fast as the CPU allows (replays, tests, benchmarks), deterministic for a seed;
- live: ``run_live`` / ``start_background`` send at real time, one batch per ``flush_s``,
  every record stamped with its scheduled event time (all of it already in the past).

Sinks: ``StreamLogSink`` (the local on-disk stream), ``KinesisSink`` (PutRecords with
batching, retries and counters), ``MemorySink`` (tests); ``make_sink(cfg)`` picks by backend.

Records are dicts; lines are strings (compact JSON, see ``to_line``). ``with_garbage`` mixes
malformed lines into a stream of good ones for testing the bad-record path.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from .config import LabConfig
from .contracts import CLICK, DISCOVERY, IMPRESSION, MAX_RECORD_BYTES, MAX_SITE_CHARS
from .errors import GeneratorError
from .streamlog import StreamLogWriter

# The lab's three payloads. The generator adds ``site`` and ``event_time`` to each
# (the original templates carried no timestamp, which made the lab depend on ingest time).
PAYLOADS: dict[str, dict[str, Any]] = {
    DISCOVERY: {"browseraction": DISCOVERY},
    CLICK: {"browseraction": CLICK},
    IMPRESSION: {"browseraction": IMPRESSION},
}
DEFAULT_SITES = ("example.com",)
_RESERVED_FIELDS = ("browseraction", "site", "event_time")

# Schedule keys pack (ms offset in the chunk, stream index) into one int: sorting plain ints
# is several times faster than sorting tuples, and this sort is the generator's hot spot.
_STREAM_BITS = 20
_STREAM_MASK = (1 << _STREAM_BITS) - 1
MAX_STREAMS = 1 << _STREAM_BITS
# Rates are kept as exact fractions (ticks never drift); these bounds keep them small.
MIN_RATE = 0.001
MAX_RATE = 1_000_000.0
_MS_SUFFIX = tuple(f"{m:03d}Z" for m in range(1000))

# Kinesis PutRecords limits (per request and per record, data plus partition key).
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
# Call-level errors worth retrying; any other error is reported at once.
_RETRYABLE_CALL_ERRORS = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "KMSThrottlingException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------


def _check_number(name: str, value: Any, *, allow_zero: bool, example: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > 0 or allow_zero and value == 0):
        return float(value)
    bound = ">= 0" if allow_zero else "> 0"
    raise GeneratorError(f"Parameter {name} must be a finite number {bound}, got {value!r}",
                         f"use {name}={example}.")


@dataclass(frozen=True)
class Sender:
    """One KDG-style sender: ``payload`` at ``rate`` records/s for every site of the plan.

    payload: one of PAYLOADS (``Click``, ``Impression``, ``DiscoveryKinesisTest``).
    rate: records per second per site and per copy (> 0; above 1000/s several share a ms).
    start_s: offset from the start of the timeline when this sender starts.
    seconds: how long it sends; None = until the end.
    count: identical copies (the lab's "three more Click senders" is count=3).
    fields: constant extra fields added to every record after the standard ones.
    """

    payload: str
    rate: float = 1.0
    start_s: float = 0.0
    seconds: float | None = None
    count: int = 1
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.payload not in PAYLOADS:
            raise GeneratorError(f"Unknown payload {self.payload!r} (parameter payload)",
                                 f"use one of {', '.join(PAYLOADS)}.")
        rate = _check_number("rate", self.rate, allow_zero=False,
                             example="1.0 (records/s per site)")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise GeneratorError(f"Parameter rate must be between {MIN_RATE:g} and {MAX_RATE:g} "
                                 f"records/s per site, got {rate:g}",
                                 "use e.g. rate=1.0; for more traffic add sites or senders.")
        _check_number("start_s", self.start_s, allow_zero=True, example="0 (seconds)")
        if self.seconds is not None:
            _check_number("seconds", self.seconds, allow_zero=False, example="20 or None")
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise GeneratorError(f"Parameter count must be a whole number >= 1, got "
                                 f"{self.count!r}", "use count=1 (or 3 for the lab's spike).")
        clash = [k for k in self.fields if k in _RESERVED_FIELDS]
        if clash:
            raise GeneratorError(f"Parameter fields may not set {', '.join(clash)}",
                                 f"leave {', '.join(_RESERVED_FIELDS)} to the generator.")
        try:
            to_line(dict(self.fields))
        except (TypeError, ValueError) as err:
            raise GeneratorError(f"Parameter fields is not JSON-serializable ({err})",
                                 "use strings, numbers, booleans, lists and dicts only.") from None

    @property
    def end_s(self) -> float | None:
        """Offset when this sender stops, None if it runs to the end."""
        return None if self.seconds is None else self.start_s + self.seconds

    def describe(self) -> str:
        """Short text for messages, e.g. ``Click x3 at 1/s from 60 s for 20 s``."""
        times = f" x{self.count}" if self.count > 1 else ""
        span = "" if self.seconds is None else f" from {self.start_s:g} s for {self.seconds:g} s"
        return f"{self.payload}{times} at {self.rate:g}/s{span}"


def spike(start_s: float, seconds: float = 20, payload: str = CLICK, extra_senders: int = 3,
          rate: float = 1.0) -> Sender:
    """Extra senders of one payload for ``seconds`` from ``start_s`` (the lab: 3 Click senders)."""
    return Sender(payload, rate=rate, start_s=start_s, seconds=seconds, count=extra_senders)


@dataclass(frozen=True)
class Plan:
    """What to send: senders, sites (each sender sends to every site), optional duration."""

    senders: tuple[Sender, ...]
    sites: tuple[str, ...] = DEFAULT_SITES
    duration_s: float | None = None

    def __post_init__(self) -> None:
        senders = (self.senders,) if isinstance(self.senders, Sender) else tuple(self.senders)
        sites = (self.sites,) if isinstance(self.sites, str) else tuple(self.sites)
        object.__setattr__(self, "senders", senders)
        object.__setattr__(self, "sites", sites)
        if not senders or not all(isinstance(s, Sender) for s in senders):
            raise GeneratorError("Parameter senders must hold at least one Sender",
                                 "use e.g. senders=[Sender('Impression'), Sender('Click')].")
        bad = [s for s in sites if not isinstance(s, str) or not s or len(s) > MAX_SITE_CHARS]
        if not sites or bad or len(set(sites)) != len(sites):
            raise GeneratorError(f"Parameter sites must be distinct non-empty names of at most "
                                 f"{MAX_SITE_CHARS} characters, got {list(sites)!r}",
                                 "use e.g. sites=('example.com',).")
        streams = sum(s.count for s in senders) * len(sites)
        if streams > MAX_STREAMS:
            raise GeneratorError(f"The plan has {streams} sender streams (senders x count x "
                                 f"sites)", f"use at most {MAX_STREAMS}; raise rate instead.")
        if self.duration_s is not None:
            _check_duration(self, self.duration_s)

    def with_spike(self, start_s: float, seconds: float = 20, payload: str = CLICK,
                   extra_senders: int = 3, rate: float = 1.0) -> Plan:
        """A copy with one more spike (see ``spike``)."""
        extra = spike(start_s, seconds, payload, extra_senders, rate)
        return replace(self, senders=self.senders + (extra,))

    def expected_records(self, duration_s: float | None = None) -> float:
        """About how many records the plan sends in ``duration_s`` (for progress bars)."""
        total = duration_s if duration_s is not None else self.duration_s
        if total is None:
            return float("inf")
        n = 0.0
        for s in self.senders:
            end = total if s.end_s is None else min(total, s.end_s)
            n += max(0.0, end - s.start_s) * s.rate * s.count
        return n * len(self.sites)


def _check_duration(plan: Plan, duration_s: Any) -> float:
    dur = _check_number("duration_s", duration_s, allow_zero=False,
                        example="60 (seconds), or None with run_live to run until stopped")
    for s in plan.senders:
        end = s.end_s if s.end_s is not None else s.start_s
        if end > dur or s.start_s >= dur:
            raise GeneratorError(
                f"Sender {s.describe()} runs until {end:g} s, past the end of the {dur:g}-s "
                "timeline (parameters start_s/seconds/duration_s)",
                f"start it earlier, shorten it, or use duration_s >= {max(end, s.start_s):g}.")
    return dur


def steady_plan(sites: Sequence[str] | str = DEFAULT_SITES, impression_rate: float = 1.0,
                click_rate: float = 1.0, duration_s: float | None = None) -> Plan:
    """The lab's normal traffic: Impression and Click senders per site (CTR ~ 100 %)."""
    return Plan((Sender(IMPRESSION, impression_rate), Sender(CLICK, click_rate)),
                sites=tuple([sites] if isinstance(sites, str) else sites), duration_s=duration_s)


def lab_test_plan(warmup_s: float, spike_s: float = 20, extra_click_senders: int = 3,
                  after_s: float = 30, sites: Sequence[str] | str = DEFAULT_SITES) -> Plan:
    """The lab's own test: steady traffic, then a Click spike, then steady traffic again.

    Impression 1/s and Click 1/s per site for ``warmup_s``, plus ``extra_click_senders`` Click
    senders at 1/s for ``spike_s``, then ``after_s`` of steady traffic so that the spike's
    windows close (a window fires only when later records move the watermark).
    Starting at a multiple of 10 s with ``warmup_s`` a multiple of 10, the 20-s spike fills
    exactly two 10-s windows: 40 clicks and 10 impressions each (CTR 400 %).
    """
    _check_number("warmup_s", warmup_s, allow_zero=False, example="300 (seconds)")
    _check_number("after_s", after_s, allow_zero=True, example="30 (seconds)")
    base = steady_plan(sites, duration_s=None)
    plan = base.with_spike(warmup_s, spike_s, CLICK, extra_click_senders)
    return replace(plan, duration_s=warmup_s + spike_s + after_s)


# ---------------------------------------------------------------------------------------------
# Records and lines
# ---------------------------------------------------------------------------------------------


def to_line(record: Mapping[str, Any]) -> str:
    """A record as one compact JSON line (no newline), the form every sink writes."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _to_ms(start: datetime | float) -> int:
    if isinstance(start, datetime):
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        # integer arithmetic: a float timestamp can be off by one ms after rounding
        return (start - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(start, int | float) and not isinstance(start, bool):
        return round(start * 1000)
    raise GeneratorError(f"Parameter start must be a datetime or epoch seconds, got {start!r}",
                         "use e.g. start=datetime(2026, 1, 1, tzinfo=UTC) or time.time().")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _second_prefix(sec: int) -> str:
    # Once per second of event time, not once per record: this keeps rendering cheap.
    return datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def event_time_ms(ms: int) -> str:
    """Epoch milliseconds in the wire format of ``contracts.format_event_time``."""
    sec, rem = divmod(ms, 1000)
    return _second_prefix(sec) + _MS_SUFFIX[rem]


@dataclass
class Batch:
    """Records scheduled in [start_ms, end_ms), in event-time order, as lines.

    keys[i] is the partition key (the site) of lines[i].
    """

    start_ms: int
    end_ms: int
    lines: list[str]
    keys: list[str]


@dataclass
class _Stream:
    index: int
    base_ms: int  # start + phase, epoch ms
    num: int  # rate = num / den records per second
    den: int
    n: int | None  # ticks in total, None = unbounded
    i: int = 0  # next tick


class _Schedule:
    """Every (sender copy, site) is a stream ticking at base + floor(i * 1000 / rate) ms.

    ``render(until_ms)`` returns the ticks in [rendered_ms, until_ms) of all streams, sorted;
    calls must move forward, and streams added later never start before ``rendered_ms``,
    so consecutive batches are in time order.
    """

    def __init__(self, plan: Plan, start_ms: int, end_ms: int | None, seed: int | None) -> None:
        self.plan = plan
        self.end_ms = end_ms
        self.rendered_ms = start_ms
        self.last_ms: int | None = None  # event time of the last record rendered
        # seed=None: every sender in lockstep at exact multiples of 1/rate; a seed shifts each
        # stream by a fixed phase in [0, 1/rate), like browser tabs started at different moments.
        self._rng = random.Random(seed) if seed is not None else None
        self.streams: list[_Stream] = []
        self._active: list[_Stream] = []
        self.heads: list[str] = []
        self.tails: list[str] = []
        self.sites: list[str] = []
        self.templates: list[dict[str, Any]] = []
        for sender in plan.senders:
            self.add(sender, start_ms + round(sender.start_s * 1000))

    def add(self, sender: Sender, at_ms: int) -> None:
        """Start ``sender`` (all copies, all sites) at ``at_ms`` (not before rendered_ms)."""
        at_ms = max(at_ms, self.rendered_ms)
        rate = Fraction(sender.rate).limit_denominator(1_000_000)
        period_ms = 1000 * rate.denominator // rate.numerator
        n = None
        if sender.seconds is not None:
            # ticks with i / rate < seconds
            n = -(-round(sender.seconds * 1000) * rate.numerator // (1000 * rate.denominator))
        if len(self.streams) + sender.count * len(self.plan.sites) > MAX_STREAMS:
            raise GeneratorError(f"Too many sender streams (more than {MAX_STREAMS})",
                                 "raise the rate of fewer senders instead.")
        for _ in range(sender.count):
            for site in self.plan.sites:
                phase = self._rng.randrange(period_ms) if self._rng and period_ms > 1 else 0
                st = _Stream(len(self.streams), at_ms + phase, rate.numerator, rate.denominator, n)
                template = {**PAYLOADS[sender.payload], "site": site, "event_time": ""}
                template.update(sender.fields)
                head, tail = to_line(template).split('"event_time":""', 1)
                self.heads.append(head + '"event_time":"')
                self.tails.append('"' + tail)
                self.templates.append(template)
                self.sites.append(site)
                self.streams.append(st)
                self._active.append(st)

    def _keys(self, until_ms: int) -> tuple[int, list[int]]:
        lo = self.rendered_ms
        if self.end_ms is not None:
            until_ms = min(until_ms, self.end_ms)
        keys: list[int] = []
        if until_ms <= lo:
            return lo, keys
        done = False
        for st in self._active:
            m = 1000 * st.den
            # first tick at or after until: floor(i*m/num) >= until-base  <=>  i*m >= (..)*num
            i_end = max(st.i, -(-(until_ms - st.base_ms) * st.num // m))
            if st.n is not None and i_end >= st.n:
                i_end, done = st.n, True
            if i_end > st.i:
                off, num, idx = st.base_ms - lo, st.num, st.index
                keys.extend(((off + i * m // num) << _STREAM_BITS) | idx
                            for i in range(st.i, i_end))
                st.i = i_end
        if done:
            self._active = [st for st in self._active if st.n is None or st.i < st.n]
        keys.sort()
        self.rendered_ms = until_ms
        if keys:
            self.last_ms = lo + (keys[-1] >> _STREAM_BITS)
        return lo, keys

    def render(self, until_ms: int) -> Batch:
        """The lines due in [rendered_ms, until_ms)."""
        lo, keys = self._keys(until_ms)
        heads, tails, sites = self.heads, self.tails, self.sites
        lines: list[str] = []
        pkeys: list[str] = []
        next_sec_ms = -1
        prefix = ""
        for k in keys:
            ms = lo + (k >> _STREAM_BITS)
            idx = k & _STREAM_MASK
            if ms >= next_sec_ms:  # keys are sorted, so ms never goes back
                sec = ms // 1000
                prefix, next_sec_ms = _second_prefix(sec), (sec + 1) * 1000
            lines.append(heads[idx] + prefix + _MS_SUFFIX[ms % 1000] + tails[idx])
            pkeys.append(sites[idx])
        return Batch(lo, self.rendered_ms, lines, pkeys)

    def render_records(self, until_ms: int) -> list[dict[str, Any]]:
        """The records due in [rendered_ms, until_ms), as dicts."""
        lo, keys = self._keys(until_ms)
        templates = self.templates
        out: list[dict[str, Any]] = []
        next_sec_ms = -1
        prefix = ""
        for k in keys:
            ms = lo + (k >> _STREAM_BITS)
            if ms >= next_sec_ms:
                sec = ms // 1000
                prefix, next_sec_ms = _second_prefix(sec), (sec + 1) * 1000
            rec = templates[k & _STREAM_MASK].copy()
            rec["event_time"] = prefix + _MS_SUFFIX[ms % 1000]
            out.append(rec)
        return out


def _timeline_bounds(plan: Plan, start: datetime | float,
                     duration_s: float | None) -> tuple[int, int]:
    if duration_s is None:
        duration_s = plan.duration_s
    if duration_s is None:
        raise GeneratorError("Parameter duration_s is missing and the plan has no duration",
                             "pass duration_s=60 (seconds), or build the plan with duration_s.")
    dur = _check_duration(plan, duration_s)
    start_ms = _to_ms(start)
    return start_ms, start_ms + round(dur * 1000)


def _check_batch_s(batch_s: Any) -> int:
    return max(1, round(_check_number("batch_s", batch_s, allow_zero=False, example="1.0") * 1000))


def timeline(plan: Plan, start: datetime | float, duration_s: float | None = None,
             seed: int | None = 0) -> Iterator[dict[str, Any]]:
    """Render the plan's records from ``start`` for ``duration_s`` (default: the plan's), fast.

    Records are sorted by event time; the same arguments always give the same records.
    ``seed`` sets each sender's phase within its period (None: all senders tick in lockstep
    at exactly start + i / rate). Counts per 10-s window aligned with ``start`` do not depend
    on the seed.
    """
    start_ms, end_ms = _timeline_bounds(plan, start, duration_s)
    sched = _Schedule(plan, start_ms, end_ms, seed)
    for until in range(start_ms + 1000, end_ms + 1000, 1000):
        yield from sched.render_records(until)


def timeline_batches(plan: Plan, start: datetime | float, duration_s: float | None = None,
                     seed: int | None = 0, batch_s: float = 1.0) -> Iterator[Batch]:
    """The same timeline as ``timeline``, as batches of lines of ``batch_s`` event time each."""
    start_ms, end_ms = _timeline_bounds(plan, start, duration_s)
    step = _check_batch_s(batch_s)
    sched = _Schedule(plan, start_ms, end_ms, seed)
    for until in range(start_ms + step, end_ms + step, step):
        batch = sched.render(until)
        if batch.lines:
            yield batch


def send_timeline(plan: Plan, sink: Sink, start: datetime | float,
                  duration_s: float | None = None, seed: int | None = 0,
                  batch_s: float = 1.0) -> int:
    """Send a whole simulated timeline to ``sink`` as fast as it takes it; returns records sent.

    With a ``StreamLogSink`` this writes one file per ``batch_s`` of event time, in order.
    """
    n = 0
    for batch in timeline_batches(plan, start, duration_s, seed, batch_s):
        sink.send(batch.lines, batch.keys)
        n += len(batch.lines)
    return n


def write_jsonl(records: Iterable[Mapping[str, Any] | str], path: Path | str) -> int:
    """Write records (dicts) and/or ready lines (strings) to a JSON-lines file; returns lines.

    Written under a temporary name and renamed, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write((rec if isinstance(rec, str) else to_line(rec)) + "\n")
            n += 1
    tmp.replace(path)
    return n


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
        rec["padding"] = "x" * MAX_RECORD_BYTES
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


# ---------------------------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------------------------


@dataclass
class SinkStats:
    """Counters of a sink. ``retried`` counts re-sends of records; reasons count rejections."""

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    failed: int = 0
    batches: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None

    def copy(self) -> SinkStats:
        """A snapshot (the live loop hands these to other threads)."""
        return replace(self, failure_reasons=Counter(self.failure_reasons))


class Sink(Protocol):
    """Where generated lines go. ``keys`` are partition keys (sites), one per line."""

    stats: SinkStats

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None: ...


class MemorySink:
    """Keeps every batch in memory (tests, small demos)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.stats = SinkStats()

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Keep a copy of ``lines`` as one batch."""
        if lines:
            self.batches.append(list(lines))
            self.stats.sent += len(lines)
            self.stats.acknowledged += len(lines)
            self.stats.batches += 1

    @property
    def lines(self) -> list[str]:
        """Every line received, in order."""
        return [ln for b in self.batches for ln in b]


class StreamLogSink:
    """The local input stream: one file per ``send`` in the on-disk stream log, in order.

    ``target`` is a LabConfig (its input stream's folder) or a folder.
    """

    def __init__(self, target: LabConfig | Path | str) -> None:
        if isinstance(target, LabConfig):
            target = target.stream_dir(target.input_stream)
        self.writer = StreamLogWriter(target)
        self.directory = self.writer.directory
        self.stats = SinkStats()

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Append ``lines`` as one complete file (keys are not needed on disk)."""
        if self.writer.append(lines) is not None:
            self.stats.sent += len(lines)
            self.stats.acknowledged += len(lines)
            self.stats.batches += 1


def _partition_key(line: str) -> str:
    try:
        site = json.loads(line).get("site")
    except (ValueError, AttributeError):
        site = None
    return site[:256] if isinstance(site, str) and site else "unknown"


class KinesisSink:
    """PutRecords into a Kinesis stream (``cfg.input_stream`` unless ``stream_name`` is given).

    Requests hold at most 500 records and 5 MiB; the partition key is the site. Records the
    service rejects (throttling, internal failure) are sent again after an exponential
    backoff with jitter, up to ``max_attempts`` sends per record, then counted as failed
    with their reason. ``client`` and ``sleep`` can be injected (tests).
    """

    def __init__(self, cfg: LabConfig | None = None, *, client: Any = None,
                 stream_name: str | None = None, max_attempts: int = 8,
                 base_delay_s: float = 0.1, max_delay_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 check: bool = True) -> None:
        if cfg is None and (client is None or stream_name is None):
            raise GeneratorError("KinesisSink needs a LabConfig, or both client and stream_name",
                                 "use KinesisSink(cfg) or KinesisSink(client=..., "
                                 "stream_name=...).")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise GeneratorError(f"Parameter max_attempts must be >= 1, got {max_attempts!r}",
                                 "use max_attempts=8.")
        self.stream_name = stream_name or cfg.input_stream  # type: ignore[union-attr]
        self.region = cfg.region if cfg else getattr(getattr(client, "meta", None),
                                                     "region_name", "?")
        self.client = client if client is not None else cfg.client("kinesis")  # type: ignore
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.stats = SinkStats()
        if check:
            try:
                self._call(self.client.describe_stream_summary, StreamName=self.stream_name)
            except _Retry:
                pass  # throttled, so the stream exists; sending will retry

    def _missing(self) -> GeneratorError:
        return GeneratorError(
            f"Kinesis stream {self.stream_name!r} does not exist (region {self.region})",
            "deploy the lab's stack first (notebook 01_deploy, or `python -m labhelpers "
            "deploy`), and check that the config's prefix and region match it.")

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise self._missing() from None
            if code in _RETRYABLE_CALL_ERRORS:
                raise _Retry(code) from None
            raise GeneratorError(f"Kinesis {fn.__name__} on {self.stream_name!r} failed: "
                                 f"{code}: {err.response.get('Error', {}).get('Message', '')}",
                                 "check the credentials' permissions and the stream, then "
                                 "send again.") from None
        except BotoCoreError as err:
            raise GeneratorError(f"Cannot reach Kinesis for {self.stream_name!r}: {err}",
                                 "start the local emulator (backend local) or check the "
                                 "network and region (backend aws).") from None

    def _backoff(self, attempt: int) -> None:
        # "Equal jitter": never less than half the exponential delay, so a throttled shard
        # gets real relief, and never in lockstep with other senders.
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        self._sleep(cap / 2 + self._rng.uniform(0, cap / 2))

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Send ``lines`` (partition keys ``keys``, default: each line's site)."""
        if keys is None:
            keys = [_partition_key(ln) for ln in lines]
        entries: list[dict[str, Any]] = []
        for line, key in zip(lines, keys, strict=True):
            data = line.encode("utf-8")
            key = key or "unknown"
            self.stats.sent += 1
            if len(data) + len(key.encode("utf-8")) > KINESIS_MAX_RECORD_BYTES:
                self.stats.failed += 1
                self.stats.failure_reasons["RecordTooLarge"] += 1
                continue
            entries.append({"Data": data, "PartitionKey": key})
        for chunk in _chunks(entries):
            self._put(chunk)

    def _put(self, entries: list[dict[str, Any]]) -> None:
        attempt = 1
        while True:
            self.stats.batches += 1
            try:
                resp = self._call(self.client.put_records, StreamName=self.stream_name,
                                  Records=entries)
                failed = [(e, r) for e, r in zip(entries, resp["Records"], strict=True)
                          if r.get("ErrorCode")]
                for _, r in failed:
                    self.stats.failure_reasons[r["ErrorCode"]] += 1
                    self.stats.last_error = f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}"
                self.stats.acknowledged += len(entries) - len(failed)
                entries = [e for e, _ in failed]
            except _Retry as err:
                self.stats.failure_reasons[err.code] += len(entries)
                self.stats.last_error = f"{err.code} (whole request)"
            if not entries:
                return
            if attempt >= self.max_attempts:
                self.stats.failed += len(entries)
                return
            self.stats.retried += len(entries)
            self._backoff(attempt)
            attempt += 1


class _Retry(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _chunks(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for e in entries:
        n = len(e["Data"]) + len(e["PartitionKey"].encode("utf-8"))
        if chunk and (len(chunk) >= KINESIS_MAX_RECORDS or size + n > KINESIS_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(e)
        size += n
    if chunk:
        yield chunk


def make_sink(cfg: LabConfig) -> StreamLogSink | KinesisSink:
    """The input stream of this backend: the stream log (local) or Kinesis (aws)."""
    if cfg.backend == "local":
        return StreamLogSink(cfg)
    return KinesisSink(cfg)


# ---------------------------------------------------------------------------------------------
# Live mode
# ---------------------------------------------------------------------------------------------


@dataclass
class LiveStats:
    """Counters of a live run; ``sink`` is a snapshot of the sink's own counters."""

    records: int = 0
    batches: int = 0
    spikes: int = 0
    elapsed_s: float = 0.0
    behind_ms: int = 0  # how late the last batch left after its last scheduled record
    last_event_time: str | None = None
    running: bool = False
    error: str | None = None
    sink: SinkStats = field(default_factory=SinkStats)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _LiveRun:
    def __init__(self, plan: Plan, sink: Sink, duration_s: float | None,
                 stop_event: threading.Event | None, seed: int | None, flush_s: float) -> None:
        if duration_s is None:
            duration_s = plan.duration_s
        self.duration_s = None if duration_s is None else _check_duration(plan, duration_s)
        self.flush_ms = max(10, round(_check_number("flush_s", flush_s, allow_zero=False,
                                                    example="1.0 (seconds)") * 1000))
        self.plan, self.sink, self.seed = plan, sink, seed
        self.stop_event = stop_event or threading.Event()
        self._pending: list[tuple[Sender, int]] = []
        self._lock = threading.Lock()
        self.stats = LiveStats()

    def spike(self, sender: Sender) -> None:
        with self._lock:
            self._pending.append((sender, _now_ms()))

    def run(self, progress: bool) -> LiveStats:
        start_ms = _now_ms()
        end_ms = None if self.duration_s is None else start_ms + round(self.duration_s * 1000)
        sched = _Schedule(self.plan, start_ms, end_ms, self.seed)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = self.plan.expected_records(self.duration_s)
            bar = tqdm(total=None if total == float("inf") else round(total), unit="rec",
                       desc="sending", dynamic_ncols=True)
        st = self.stats
        st.running = True
        try:
            next_flush = start_ms + self.flush_ms
            while True:
                if end_ms is not None:
                    next_flush = min(next_flush, end_ms)
                try:
                    stopped = self.stop_event.wait(max(0.0, (next_flush - _now_ms()) / 1000))
                except KeyboardInterrupt:  # Ctrl-C / the notebook's stop button: a clean stop
                    stopped = True
                now = _now_ms()
                with self._lock:
                    pending, self._pending = self._pending, []
                for sender, asked_ms in pending:
                    sched.add(sender, asked_ms)  # never before what is already sent
                    st.spikes += 1
                # everything due up to now, so a slow sink makes bigger batches, not drift
                batch = sched.render(now)
                if batch.lines:
                    self.sink.send(batch.lines, batch.keys)
                    st.records += len(batch.lines)
                    st.batches += 1
                if sched.last_ms is not None:
                    st.last_event_time = event_time_ms(sched.last_ms)
                st.behind_ms = max(0, _now_ms() - batch.end_ms)
                st.elapsed_s = (_now_ms() - start_ms) / 1000
                st.sink = self.sink.stats.copy()
                if bar is not None:
                    bar.update(len(batch.lines))
                    bar.set_postfix(acked=st.sink.acknowledged, retried=st.sink.retried,
                                    failed=st.sink.failed, refresh=False)
                if stopped or (end_ms is not None and sched.rendered_ms >= end_ms):
                    break
                next_flush = max(next_flush + self.flush_ms, now)
        except BaseException as err:
            st.error = f"{type(err).__name__}: {err}"
            raise
        finally:
            st.running = False
            if bar is not None:
                bar.close()
        return st


def run_live(plan: Plan, sink: Sink, duration_s: float | None = None,
             stop_event: threading.Event | None = None, progress: bool = True, *,
             seed: int | None = 0, flush_s: float = 1.0) -> LiveStats:
    """Send the plan at real time until ``duration_s`` (default: the plan's) or a stop.

    Every ``flush_s`` the records scheduled since the last flush go to ``sink`` as one batch,
    stamped with their scheduled event time, so no record is ever from the future. Stops
    early when ``stop_event`` is set (from another thread) or on Ctrl-C / the notebook's stop
    button; records already due are still sent. Returns the run's counters.
    """
    return _LiveRun(plan, sink, duration_s, stop_event, seed, flush_s).run(progress)


class LiveHandle:
    """A live run in a background thread (``start_background``): stop it, watch it, spike it."""

    def __init__(self, live: _LiveRun, progress: bool) -> None:
        self._live = live
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(progress,),
                                        name="lab-generator", daemon=True)
        self._thread.start()

    def _main(self, progress: bool) -> None:
        try:
            self._live.run(progress)
        except BaseException as err:  # kept for stop()/join(), which re-raise it
            self._error = err

    @property
    def running(self) -> bool:
        """True while the background thread is sending."""
        return self._thread.is_alive()

    @property
    def stats(self) -> LiveStats:
        """A snapshot of the counters (generator and sink)."""
        st = self._live.stats
        return replace(st, sink=self._live.sink.stats.copy())

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the run, if any."""
        return self._error

    def spike(self, payload: str = CLICK, extra_senders: int = 3, seconds: float = 20,
              rate: float = 1.0) -> None:
        """Start ``extra_senders`` more senders of ``payload`` now, for ``seconds``."""
        if not self.running:
            raise GeneratorError("The generator is not running, so it cannot spike",
                                 "start it again with start_background(...).")
        self._live.spike(spike(0, seconds, payload, extra_senders, rate))

    def join(self, timeout: float | None = None) -> LiveStats:
        """Wait for the run to end; re-raises its error, if any."""
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.stats

    def stop(self, timeout: float | None = 10.0) -> LiveStats:
        """Stop sending (records already due are sent) and return the final counters."""
        self._live.stop_event.set()
        return self.join(timeout)


def start_background(plan: Plan, sink: Sink, duration_s: float | None = None,
                     progress: bool = False, *, seed: int | None = 0,
                     flush_s: float = 1.0) -> LiveHandle:
    """Like ``run_live``, in a daemon thread, so the notebook stays usable while it sends."""
    return LiveHandle(_LiveRun(plan, sink, duration_s, None, seed, flush_s), progress)
