"""Score any ``timestamp,value`` series with the lab's Random Cut Forest.

So that students can try the detector on their own data: the same forest configuration as the
job (``ForestParams``: trees, subsample size, time decay, shingle size, warm-up, seed,
threshold, anomaly hold), with one-dimensional points (the value). Points are scored, then
learned, in time order, exactly as the job treats a site's windows: the score is 0 during the
warm-up, a point scoring above the threshold is an anomaly, and an anomalous point is kept
out of the forest for up to ``anomaly_hold_windows`` points in a row.

    python -m labhelpers score-series IN.csv --out OUT.csv [--forest '{"threshold": 3.5}']

Input: a CSV file whose first line is a header with columns ``timestamp`` and ``value`` (any
other columns are ignored; a header of exactly two other names is read as timestamp, value).
Timestamps are ISO-8601 (``2026-11-27T10:00:00Z``, ``2026-11-27 10:00``, ``2026-11-27``) or
plain numbers (e.g. epoch seconds), and must increase. Output: ``timestamp,value,
anomaly_score,is_anomaly`` with the input's timestamp text unchanged.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import krcf

from ..analytics.forest import ForestParams
from ..errors import ConfigError

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly")
_FIX_HEADER = "make the first line `timestamp,value` and each further line e.g. " \
              "`2026-11-27T10:00:00Z,42.0`."


@dataclass(frozen=True)
class Point:
    """One input row: its timestamp text (kept for the output), sort key, value, line number."""

    timestamp: str
    key: float
    value: float
    line: int


def series_options(params: ForestParams) -> dict[str, Any]:
    """krcf options for one-dimensional points: the job's mapping with ``dimensions`` = 1."""
    return {**params.krcf_options(), "dimensions": 1}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _time_key(text: str, line: int, path: Path) -> tuple[str, float]:
    """('number', x) or ('datetime', epoch seconds); ConfigError if neither."""
    t = text.strip()
    try:
        x = float(t)
        if math.isfinite(x):
            return "number", x
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        raise ConfigError(
            f"{path}, line {line}: timestamp {text!r} is neither ISO-8601 nor a number",
            "use e.g. 2026-11-27T10:00:00Z or epoch seconds, the same form on every line.",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # naive timestamps are read as UTC
    return "datetime", dt.timestamp()


def read_series(path: Path | str) -> list[Point]:
    """Read and check a ``timestamp,value`` CSV file; errors name the line and the fix."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Series file {path} does not exist",
                          "give the path of a CSV file with a `timestamp,value` header.")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise ConfigError(f"Series file {path} is empty", _FIX_HEADER)
    header = [c.strip().lower() for c in rows[0]]
    if "timestamp" in header and "value" in header:
        ti, vi = header.index("timestamp"), header.index("value")
    elif len(header) == 2 and not any(_is_number(c) for c in header) and all(header):
        ti, vi = 0, 1
    elif any(_is_number(c) for c in header):
        raise ConfigError(f"{path}, line 1: {','.join(rows[0])!r} looks like data, not a header",
                          _FIX_HEADER)
    else:
        raise ConfigError(f"{path}, line 1: header {','.join(rows[0])!r} has no `timestamp` "
                          "and `value` columns", _FIX_HEADER)
    points: list[Point] = []
    kind: str | None = None
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # a blank line
        if len(row) <= max(ti, vi):
            raise ConfigError(f"{path}, line {n}: {len(row)} column(s), the header has "
                              f"{len(header)}", "give every line a timestamp and a value.")
        raw_value = row[vi].strip()
        try:
            value = float(raw_value)
        except ValueError:
            raise ConfigError(f"{path}, line {n}: value {raw_value!r} is not a number",
                              "write plain numbers such as 42 or 3.5 (a dot for decimals, "
                              "no thousands separator); remove or fill empty values.") from None
        if not math.isfinite(value):
            raise ConfigError(f"{path}, line {n}: value {raw_value!r} is not a finite number",
                              "remove the line or replace the value with a number.")
        this_kind, key = _time_key(row[ti], n, path)
        if kind is None:
            kind = this_kind
        elif this_kind != kind:
            raise ConfigError(f"{path}, line {n}: timestamp {row[ti]!r} is a {this_kind}, "
                              f"earlier lines have {kind}s",
                              "use one form of timestamp in the whole file.")
        if points and key <= points[-1].key:
            raise ConfigError(
                f"{path}, line {n}: timestamp {row[ti].strip()!r} is not after "
                f"{points[-1].timestamp!r} (line {points[-1].line}); timestamps must increase",
                "sort the rows by timestamp (header line first) and keep one row per "
                "timestamp.")
        points.append(Point(row[ti].strip(), key, value, n))
    if not points:
        raise ConfigError(f"Series file {path} has a header but no data", _FIX_HEADER)
    return points


class SeriesModel:
    """The forest and alert rule of ``forest.SiteModel`` for one-dimensional points."""

    def __init__(self, params: ForestParams) -> None:
        self.params = params
        self.forest = krcf.RandomCutForest(series_options(params))
        self.held = 0  # consecutive anomalous points not learned

    def score(self, value: float) -> tuple[float, bool]:
        """Score one value, then learn it (unless held as an anomaly): (score, is_anomaly)."""
        point = [float(value)]
        score = float(self.forest.score(point))
        # krcf scores from `output_after` points on (same readiness rule as SiteModel)
        ready = int(self.forest.entries_seen()) >= self.params.warmup_windows
        is_anomaly = ready and score > self.params.threshold
        if is_anomaly and self.held < self.params.anomaly_hold_windows:
            self.held += 1
        else:
            self.forest.update(point)
            self.held = 0
        return round(score, 6), is_anomaly


def score_points(points: list[Point], params: ForestParams | None = None) -> list[dict[str, Any]]:
    """Score points in order; rows with the keys of OUTPUT_COLUMNS."""
    model = SeriesModel(params or ForestParams())
    out = []
    for p in points:
        score, flag = model.score(p.value)
        out.append({"timestamp": p.timestamp, "value": p.value, "anomaly_score": score,
                    "is_anomaly": flag})
    return out


def score_series(input_path: Path | str, out_path: Path | str,
                 forest: ForestParams | dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the series in ``input_path`` and write ``out_path``; returns a summary."""
    params = ForestParams.from_dict(forest) if isinstance(forest, dict) else (
        forest or ForestParams())
    points = read_series(input_path)
    rows = score_points(points, params)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(OUTPUT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    flagged = [r for r in rows if r["is_anomaly"]]
    return {
        "input": str(input_path),
        "output": str(out),
        "points": len(rows),
        "anomalies": len(flagged),
        "first_anomalies": [r["timestamp"] for r in flagged[:10]],
        "max_score": max(r["anomaly_score"] for r in rows),
        "warmup_points": min(len(rows), params.warmup_windows),
    }
