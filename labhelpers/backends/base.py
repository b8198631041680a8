"""The seam between the lab's backends, one per world (local, aws rehearsed on the emulator,
aws): what a notebook can ask of each.

A ``Backend`` is the input sink the generator writes to, the analytics app's lifecycle, the
readers of its output streams, the alert inbox and the clean-up. ``labhelpers.backends.
for_config(cfg)`` picks the implementation once, from the configuration; nothing else in the
package branches on the backend's name.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from typing import Any

from ..errors import AppError
from ..infra.config import LabConfig

# What a notebook says when a step exists on one backend only (the step's name -> why).
SKIPPED = "skipped on this backend"


class Backend(ABC):
    """One lab's resources in one world. ``name`` is the backend's ("local" or "aws")."""

    name: str
    #: the lab starts and stops a local AWS emulator (moto) for its AWS calls
    runs_emulator: bool

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.cfg.prefix!r})"

    # ---- generate: where traffic goes ----------------------------------------------------
    @abstractmethod
    def input_sink(self, failure_log=None):
        """The sink the generator writes to: the input stream (see generate.sinks)."""

    def archive(self, sink):
        """Wrap ``sink`` so that what it sends is also archived raw in S3, if the backend
        does not do that itself (Firehose does on AWS). Default: unchanged."""
        return sink

    # ---- analytics: the app's lifecycle --------------------------------------------------
    @abstractmethod
    def start_app(self, params=None, *, fresh: bool = False, start_position: str = "latest",
                  **changes: Any) -> dict[str, Any]:
        """Start (or resume, or restart with changed parameters) the analytics app; a fresh
        start reads the input stream from ``start_position``: "latest" (what arrives from
        now on), "earliest" (every record the stream holds) or "warm" (reports from the
        latest position, after the forest has learned the records already in the stream;
        where the backend cannot, it says so and starts from "latest")."""

    @abstractmethod
    def stop_app(self) -> bool:
        """Stop the app; True if it was running. Idempotent."""

    @abstractmethod
    def app_running(self) -> bool:
        """Is the app running now?"""

    @abstractmethod
    def app_logs(self, lines: int = 40) -> str:
        """The app's last log lines (the first place to look when it fails)."""

    def warm_up_windows(self) -> dict[str, int]:
        """Per site, the windows the forest learned before the start position (a "warm"
        start: read and learned, not reported); empty when there were none."""
        return {}

    def warm_up_rows(self) -> list[dict]:
        """Those windows' counts, oldest first (what ``teach.run_rule.sums_frame`` feeds the
        job's code before the reported rows); empty when there were none."""
        return []

    @abstractmethod
    def app_params(self):
        """The ``JobParams`` the app runs (or last ran) with."""

    # ---- the output streams --------------------------------------------------------------
    @abstractmethod
    def score_lines(self) -> list[str]:
        """Every row the app wrote to the scores stream so far (JSON text), oldest first."""

    @abstractmethod
    def dead_letter_lines(self) -> list[str]:
        """Every record the app set aside (JSON text with reason and line), oldest first."""

    @abstractmethod
    def input_lines(self, n: int | None) -> list[str]:
        """The newest ``n`` records of the input stream (None: every record), oldest first,
        in stream order."""

    # ---- alerts --------------------------------------------------------------------------
    def inbox(self) -> list[dict[str, Any]]:
        """Every alert received so far (the SQS queue subscribed to the alert topic)."""
        from ..alerts.inbox import inbox

        return inbox(self.cfg)

    @abstractmethod
    def app_hops(self, outs: dict[str, str]) -> list[dict[str, str]]:
        """The app's connections (input -> app -> output streams) with their state, as rows
        ``from, to, how, state`` (``outs``: the stack's outputs)."""

    # ---- clean-up ------------------------------------------------------------------------
    @abstractmethod
    def delete_app(self) -> bool | None:
        """Stop the app for good and delete what it made (before the stack goes)."""

    # ---- shared on both ------------------------------------------------------------------
    def scores(self) -> list[dict[str, Any]]:
        """Every score row so far, parsed."""
        return [json.loads(s) for s in self.score_lines()]

    def app_status(self) -> dict[str, Any]:
        """Is the app running, and what it has produced: windows scored, anomalies, bad
        records (with their reasons), the last window's end."""
        return self._produced()

    def _produced(self) -> dict[str, Any]:
        scores = self.scores()
        dead = [json.loads(d) for d in self.dead_letter_lines()]
        reasons: dict[str, int] = {}
        for d in dead:
            reasons[d.get("reason", "?")] = reasons.get(d.get("reason", "?"), 0) + 1
        return {"backend": self.name, "running": self.app_running(),
                "windows_scored": len(scores),
                "anomalies": sum(bool(r.get("is_anomaly")) for r in scores),
                "bad_records": len(dead), "bad_reasons": reasons,
                "warm_up_windows": min(self.warm_up_windows().values(), default=0),
                "last_window": scores[-1]["window_end"] if scores else None}

    def wait_for_scores(self, count: int = 1, timeout: float = 180) -> list[dict[str, Any]]:
        """Block until at least ``count`` score rows exist (a progress line while waiting);
        AppError if the app stops or the time runs out."""
        from ..wait import WaitTimeout, wait_until

        def enough() -> list[dict[str, Any]] | None:
            rows = self.scores()
            if len(rows) >= count:
                return rows
            if not self.app_running():
                raise AppError("The analytics app is not running; last log lines:\n"
                               + self.app_logs(15),
                               "start it with notebook 03 or `python -m labhelpers app start`.")
            return None

        try:
            return wait_until(enough, f"{count} scored window(s)", timeout=timeout, interval=1)
        except WaitTimeout as err:
            raise AppError(f"No {count} score rows after {timeout:.0f} s",
                           "check that the generator is sending (notebook 02) and the app "
                           "log (python -m labhelpers app logs).") from err


def elapsed(since: float) -> str:
    """Seconds since ``since`` (time.monotonic), for progress lines."""
    return f"{time.monotonic() - since:.0f} s"
