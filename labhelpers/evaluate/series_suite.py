"""The labelled suite of ordinary single series for ``score-series`` (level shifts, trends,
daily and weekly seasonality, spikes and dips, a change in noise, flat stretches, gaps), and
its evaluation as deployed: the tool's own ``is_anomaly``, no tuning per series."""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..job.forest import ForestParams
from .scenarios import SUITE_START

# ---------------------------------------------------------------------------------------------
# A suite of ordinary single series for ``score-series`` (labhelpers/evaluate/series.py)
# ---------------------------------------------------------------------------------------------

# Points per series. Hourly points: "full" is about 8 months, "small" about 6 weeks.
SERIES_SIZES: dict[str, int] = {"small": 1000, "full": 6000}
# A flag up to this many points after an event's start counts as finding it.
SERIES_TOLERANCE = 10


@dataclass(frozen=True)
class SeriesEvent:
    """A labelled event of a series, over points [start, end) (index in the series)."""

    kind: str
    start: int
    end: int


@dataclass
class LabelledSeries:
    """One series of the suite: hourly timestamps (epoch s), values, events (none = quiet)."""

    name: str
    description: str
    timestamps: list[float]
    values: list[float]
    events: tuple[SeriesEvent, ...] = ()

    @property
    def quiet(self) -> bool:
        return not self.events

    def write_csv(self, path: Path | str) -> Path:
        """The series as a ``timestamp,value`` CSV file (what score-series reads)."""
        return write_series_csv(path, self.timestamps, self.values)


def write_series_csv(path: Path | str, timestamps: list[float], values: list[float],
                     digits: int = 6) -> Path:
    """A ``timestamp,value`` CSV file (what score-series reads): UTC ISO times, ``digits``
    significant digits."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("timestamp,value\n")
        for t, v in zip(timestamps, values, strict=True):
            stamp = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(f"{stamp},{v:.{digits}g}\n")
    return path


def _series(name: str, n: int, seed: int) -> tuple[random.Random, list[float]]:
    rng = random.Random(f"{seed}/series/{name}")
    start = calendar.timegm(SUITE_START.utctimetuple())
    return rng, [start + 3600.0 * i for i in range(n)]


def _noise(rng: random.Random, n: int, sd: float = 1.0) -> list[float]:
    return [rng.gauss(0.0, sd) for _ in range(n)]


def _s_level_shift(sign: float) -> Callable[[str, int, int], LabelledSeries]:
    def build(name: str, n: int, seed: int) -> LabelledSeries:
        rng, ts = _series(name, n, seed)
        at = int(n * 0.55)
        vals = [100.0 + e + (sign * 8.0 if i >= at else 0.0)
                for i, e in enumerate(_noise(rng, n))]
        return LabelledSeries(name, f"noise sd 1 around 100, level {sign * 8:+g} from "
                              f"point {at} on", ts, vals,
                              (SeriesEvent("level_shift", at, at + SERIES_TOLERANCE),))
    return build


def _s_trend(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    vals = [50.0 + 0.05 * i + e for i, e in enumerate(_noise(rng, n))]
    return LabelledSeries(name, "a steady upward trend with noise sd 1 (quiet)", ts, vals)


def _s_daily(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    vals = [100.0 + 20.0 * math.sin(2 * math.pi * i / 24) + e
            for i, e in enumerate(_noise(rng, n, 2.0))]
    return LabelledSeries(name, "a daily cycle of +-20 with noise sd 2 (quiet)", ts, vals)


def _s_weekly(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    vals = [100.0 + 20.0 * math.sin(2 * math.pi * i / 168) + 10.0 * math.sin(2 * math.pi * i / 24)
            + e for i, e in enumerate(_noise(rng, n, 2.0))]
    return LabelledSeries(name, "a weekly cycle of +-20 and a daily cycle of +-10, noise sd 2 "
                          "(quiet)", ts, vals)


def _s_spikes(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    vals = [100.0 + e for e in _noise(rng, n, 2.0)]
    events = []
    for k, frac in enumerate((0.3, 0.45, 0.6, 0.75, 0.9)):
        i = int(n * frac)
        vals[i] += 16.0 if k % 2 == 0 else -16.0  # spikes and dips of 8 sd
        events.append(SeriesEvent("spike" if k % 2 == 0 else "dip", i, i + 1))
    return LabelledSeries(name, "noise sd 2 around 100 with spikes and dips of 8 sd", ts,
                          vals, tuple(events))


def _s_noise_change(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    at = int(n * 0.6)
    vals = [100.0 + rng.gauss(0.0, 1.0 if i < at else 4.0) for i in range(n)]
    return LabelledSeries(name, f"noise sd 1, then sd 4 from point {at} on", ts, vals,
                          (SeriesEvent("noise_change", at, at + 2 * SERIES_TOLERANCE),))


def _s_flat(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    vals, v = [], 20.0
    for _ in range(n):
        # long flat stretches; now and then a tiny step of 0.01 (a reading's last digit)
        if rng.random() < 0.05:
            v = round(v + rng.choice((-0.01, 0.01)), 2)
        vals.append(v)
    return LabelledSeries(name, "long flat stretches with tiny steps of 0.01 (quiet)", ts,
                          vals)


def _s_gaps(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n + n // 5, seed)
    # a fifth of the hours are missing, in a few long gaps: same level on both sides
    keep = [i for i in range(len(ts)) if not any(g <= i < g + n // 20
                                                  for g in (n // 5, n // 2, 3 * n // 4,
                                                            n - n // 10))]
    ts = [ts[i] for i in keep][:n]
    vals = [100.0 + e for e in _noise(rng, len(ts), 2.0)]
    return LabelledSeries(name, "noise sd 2 around 100 with four long gaps in the "
                          "timestamps (quiet)", ts, vals)


def _s_noise(name: str, n: int, seed: int) -> LabelledSeries:
    rng, ts = _series(name, n, seed)
    return LabelledSeries(name, "plain noise sd 2 around 100 (quiet)", ts,
                          [100.0 + e for e in _noise(rng, n, 2.0)])


# name -> builder(name, points, seed). Quiet series have no events.
SERIES: dict[str, Callable[[str, int, int], LabelledSeries]] = {
    "level-up": _s_level_shift(+1.0),
    "level-down": _s_level_shift(-1.0),
    "spikes-dips": _s_spikes,
    "noise-change": _s_noise_change,
    "trend": _s_trend,
    "daily": _s_daily,
    "weekly": _s_weekly,
    "flat-wiggles": _s_flat,
    "gaps": _s_gaps,
    "noise": _s_noise,
}


def build_series_suite(size: str = "full", seed: int = 0) -> list[LabelledSeries]:
    """The labelled series suite (SERIES) at ``size`` (SERIES_SIZES), deterministic."""
    if size not in SERIES_SIZES:
        raise ConfigError(f"Unknown series suite size {size!r}",
                          f"use one of {', '.join(SERIES_SIZES)}.")
    n = SERIES_SIZES[size]
    return [fn(name, n, seed) for name, fn in SERIES.items()]


# ---------------------------------------------------------------------------------------------
# The series suite (score-series), as deployed: the tool's own is_anomaly, no tuning per series
# ---------------------------------------------------------------------------------------------

SERIES_COLUMNS = ("series", "quiet", "points", "events", "found", "delay_max_points",
                  "flagged", "false_alarms", "fa_per_1000")


def series_metrics(flags: Sequence[bool], events: Sequence[Any]) -> dict[str, Any]:
    """Events found, delay and false alarms of one series' flags against its events.

    An event (scenarios.SeriesEvent) is found when a point in [start, end) is flagged; its
    delay is the first such point's distance from ``start``. Every flagged point outside
    all events is a false alarm; per 1,000 points of the series.
    """
    inside = set()
    delays = []
    for ev in events:
        hits = [i for i in range(ev.start, min(ev.end, len(flags))) if flags[i]]
        inside.update(range(ev.start, ev.end))
        if hits:
            delays.append(hits[0] - ev.start)
    flagged = [i for i, f in enumerate(flags) if f]
    fa = sum(i not in inside for i in flagged)
    return {"points": len(flags), "events": len(events), "found": len(delays),
            "delay_max_points": max(delays) if delays else None, "flagged": len(flagged),
            "false_alarms": fa, "fa_per_1000": 1000.0 * fa / len(flags) if flags else None}


def evaluate_series(series: Sequence[Any], forest: ForestParams | Mapping[str, Any] | None = None,
                    seasons: bool = True) -> pd.DataFrame:
    """Score every labelled series with score-series' model (its own defaults unless
    ``forest`` says otherwise; its timestamps for the seasons unless ``seasons`` is False) and
    measure it (SERIES_COLUMNS)."""
    from .series import SeriesModel, series_params

    params = series_params(dict(forest) if isinstance(forest, Mapping) else forest)
    rows = []
    for s in series:
        model = SeriesModel(params, seasons=seasons)
        flags = [model.score(v, t)[1] for v, t in zip(s.values, s.timestamps, strict=True)]
        rows.append({"series": s.name, "quiet": s.quiet, **series_metrics(flags, s.events)})
    return pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
