"""Score any ``timestamp,value`` series with the lab's Random Cut Forest.

So that students can try the detector on their own data: the same forest configuration as the
job (``ForestParams``: trees, subsample size, time decay, shingle size, warm-up, seed,
threshold, run rule, anomaly hold), with one-dimensional points (the value). Points are
scored, then learned, in time order, exactly as the job treats a site's windows: the score
is 0 during the warm-up, a point scoring above the threshold is an anomaly, so is a run of
points each moderately off the running level (the run rule, with a wider slack than the
job's: SERIES_DEFAULTS; the value's deviation is its one driving input), and an anomalous point is
kept out of the forest for up to ``anomaly_hold_windows`` points in a row.

    python -m labhelpers score-series IN.csv --out OUT.csv [--forest '{"threshold": 3.5}']

Input: a CSV file whose first line is a header with columns ``timestamp`` and ``value`` (any
other columns are ignored; a header of exactly two other names is read as timestamp, value).
Timestamps are ISO-8601 (``2026-11-27T10:00:00Z``, ``2026-11-27 10:00``, ``2026-11-27``) or
plain numbers (e.g. epoch seconds), and must not decrease (a repeated timestamp, common
around clock changes, is scored in file order with a warning). Output: ``timestamp,value,
anomaly_score,is_anomaly,usual_value,expected_range,compared_with,flagged_by`` with the input's
timestamp text unchanged; ``usual_value`` is the value expected (what the point was compared
with), ``expected_range`` the expectation +- the threshold in scale units ("low..high"; empty
before a level exists), ``compared_with`` what the expectation is: "recent level" (the
running level), or, once a season explains the series, "same time yesterday" (a time-of-day
baseline), "same time last week" (time of week) or "same time last year" (SeasonalBaseline;
``--no-seasons``: always the recent level); and, for a flagged point, ``flagged_by`` says
which rule flagged it, as the clickstream alerts do: ``score`` (the forest's score above the
threshold) or ``run:value:high`` / ``run:value:low`` (the run rule: a run of points above /
below the expectation).

    python -m labhelpers score-series IN.csv --out OUT.csv --no-seasons

The score's scale: the forest scores the point's deviation from the expectation in units
of its running error (see SeriesModel), so a score means the same on a drifting series as
on a flat one: ordinary points score about 1, the threshold (3.5 by default)
marks points that the forest isolates far more easily than ordinary ones. While the forest
holds few points (the first ~100) the highest possible score is lower (about 3 after 50
points), so only very clear outliers are flagged that early.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import krcf

from ..errors import ConfigError
from ..job.forest import AlertRule, ForestParams
from ..logs import logger

log = logger(__name__)

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly", "usual_value",
                  "expected_range", "compared_with", "flagged_by")
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


def read_series(path: Path | str, warnings: list[str] | None = None) -> list[Point]:
    """Read and check a ``timestamp,value`` CSV file; errors name the line and the fix.

    A timestamp equal to the previous one (real exports repeat an hour at a clock change)
    is kept, in file order, with a message appended to ``warnings``; an earlier timestamp
    is an error."""
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
        if points and key < points[-1].key:
            raise ConfigError(
                f"{path}, line {n}: timestamp {row[ti].strip()!r} is before "
                f"{points[-1].timestamp!r} (line {points[-1].line}); timestamps must not "
                "decrease",
                "sort the rows by timestamp (header line first).")
        if points and key == points[-1].key and warnings is not None:
            warnings.append(f"{path}, line {n}: timestamp {row[ti].strip()!r} repeats line "
                            f"{points[-1].line}'s; scored in file order")
        points.append(Point(row[ti].strip(), key, value, n))
    if not points:
        raise ConfigError(f"Series file {path} has a header but no data", _FIX_HEADER)
    return points


# score-series' own defaults on top of ForestParams (same names; chosen on the labelled
# series suite, series_suite.build_series_suite; figures of a held-out seed in
# docs/figures.md by bench/evaluate_defaults.py). A point is one number: a shorter hold lets
# the level catch up within a few points instead of flagging them all. The run rule needs a
# wider slack than the job's: at the job's setting (run_slack 0.75, run_threshold 5) a
# weekly season gave 78 false alarms in 6,000 points, at run_slack 1 and run_threshold 4-5
# 3-35; at 1.25-1.5 and 4-6 none on seeds 0-3 of the suite (chosen by hand there, all four
# seen), and it finds what one point's score misses: on seed 3 an 8-sd level shift whose
# first point fell 2.4 sd low (scores 3.18, 3.19 against the threshold 3.5; the level then
# catches up) and the change of noise level.
# Its threshold is its own (3.5, chosen on the series suite), not the job's.
# run_threshold 7 (was 5), chosen on the tune part of the real-series suite (real_series.py;
# bench/series_benchmark.py --parts tune): real operational series wander in runs (a CPU
# metric's bursts, an autocorrelated level), and at 5 the run rule flagged them: tune window
# score, deployed, 55.8 at 5, 58.2 at 7, 59.8 at 8, 60.0 at 10. 7, not 8: at 8 the run rule
# alone no longer catches a 10-sd level shift (its sum peaks at 7.6 as the level catches up;
# tests/test_series.py). Threshold 4.0 scored higher on tune (67.8 with run_threshold 8) but
# missed 8-sd spikes of the synthetic suite (found 3 of 8 events), so 3.5 stays. Every event
# of the synthetic suite is still found at 7 (small seed 1, full seed 4).
SERIES_DEFAULTS: dict[str, Any] = {"anomaly_hold_windows": 2, "run_threshold": 7.0,
                                   "run_slack": 1.25, "threshold": 3.5}
# Spans (in learned points) of the running level and scale a value is compared with.
LEVEL_SPAN = 10
SCALE_SPAN = 30
# Learned points before the run rule sees the deviation (the running scale exists).
SCALE_MIN_POINTS = 5
# A change of the data's resolution (its smallest step) is at most 1/RES_UNITS scale units.
RES_UNITS = 3.0
# Deviations within this many scale units of the level are all "ordinary": the forest sees
# them spread evenly (seeded) over that band. In one dimension a forest isolates anything
# that differs from a point mass, so a series that is flat for long stretches (deviation
# exactly 0) would flag every tiny step; a spread band keeps the tree deep as on noise.
ORDINARY_BAND = 1.0


def series_params(forest: ForestParams | dict[str, Any] | None = None) -> ForestParams:
    """ForestParams for score-series: SERIES_DEFAULTS, then the caller's values on top.

    A ForestParams is taken as it is (the caller chose every value)."""
    if isinstance(forest, ForestParams):
        return forest
    return ForestParams.from_dict({**SERIES_DEFAULTS, **(forest or {})})


# ---------------------------------------------------------------------------------------------
# Baselines: what a value is compared with (issue 27). The forest and the run rule see the
# value's deviation from the chosen baseline's expectation, in units of that baseline's running
# error, so a season that the series repeats is not an anomaly at every rise and fall.
# ---------------------------------------------------------------------------------------------

# Seasons looked for: name, period (s), narrowest slot (s), what the output calls it. A season
# is fitted only on datetime timestamps, once one whole period has been seen, with slots of
# the series' sampling step (the median step so far) but never narrower than the slot here:
# 5-minute data -> 288 time-of-day slots and 336 half-hour time-of-week slots; hourly data ->
# 24 and 168; daily data -> 7 day-of-week slots; weekly or monthly data -> a yearly season.
SEASONS: tuple[tuple[str, float, float, str], ...] = (
    ("daily", 86_400.0, 60.0, "same time yesterday"),
    ("weekly", 604_800.0, 1_800.0, "same time last week"),
    ("yearly", 365.2425 * 86_400.0, 7 * 86_400.0, "same time last year"),
)
RECENT = "recent level"
# A season needs at least this many slots, and at most SEASON_MAX_POINTS points per period
# (they are kept until the first period is complete).
SEASON_MIN_SLOTS = 4
SEASON_MAX_POINTS = 20_000
# Weight of one new period in a slot's seasonal offset (Holt-Winters' gamma, per period).
SEASON_GAMMA = 0.2
# A season is chosen when its one-step errors' mean square, over about a week of points
# (SELECT_WEEK_POINTS), is below SEASON_GAIN times the recent level's over the same points (the
# season explains the series), and it has predicted at least SEASON_MIN_PREDICTED points (or
# half a period) since it was fitted. Set by hand, not swept; what was tried on the tune part
# of the real-series suite (real_series.py) and dropped: capping each error in this comparison
# at 3 times its running error (tune 55.8 -> 29.4: the recent level then looked as good as a
# square wave's season), keeping a chosen season until it is worse than the recent level
# (-> 54.8), leaving flagged points out of the comparison (58.2 -> 56.3).
SEASON_GAIN = 0.7
SEASON_MIN_PREDICTED = 48
# A point's error moves a season's level and offsets by at most this many scale units.
SEASON_CLIP = 3.0
# One-step errors are compared over this many points at most (a week of 5-minute points).
SELECT_WEEK_POINTS = 2_016.0
# With a season, the deviation's scale is never below the resolution floor (RES_UNITS) or
# SEASON_FLOOR of the season's range, whichever is smaller: on a noiseless square wave the
# resolution is the wave's whole step, and a rise that does not come must still stand out.
SEASON_FLOOR = 0.1


def _ew(alpha_n: int, span: float) -> float:
    return max(1.0 / alpha_n, 2.0 / (span + 1))



class SeasonalBaseline:
    """A Holt-Winters-like expectation for one season, fitted online (no look-ahead).

    Until one whole period has passed it only keeps the points; then each slot's offset is its
    points' mean minus the period's mean, and the level the mean of the last LEVEL_SPAN
    de-seasoned points. From then on, for each learned point: the level follows the de-seasoned
    value (span LEVEL_SPAN, as the recent level) and the point's slot offset moves by
    SEASON_GAMMA per period towards what the point says. ``expect(t)`` is level + offset of t's
    slot. Its errors' mean square over about a week of points (``mse``) is compared with the recent
    level's over the same points (``mse_recent``) to decide whether the season explains the
    series.
    """

    def __init__(self, name: str, period: float, min_slot: float, label: str) -> None:
        self.name, self.period, self.min_slot, self.label = name, period, min_slot, label
        self.t0: float | None = None
        self.buffer: list[tuple[float, float]] = []
        self.steps: list[float] = []
        self.last_t: float | None = None
        self.disabled = False
        self.offsets: list[float] = []
        self.width = 0.0
        self.level = 0.0
        self.gamma = SEASON_GAMMA
        self.per_period = 1.0  # points per period
        self.select_span = 1.0
        self.var = 0.0  # running mean square of the errors (the deviation's scale)
        self.n = 0
        self.mse = 0.0
        self.mse_recent = 0.0
        self.predicted = 0

    @property
    def fitted(self) -> bool:
        return bool(self.offsets)

    def see_time(self, t: float) -> None:
        """Every point's timestamp, before it is scored: fits the season once one period has
        passed (from the points learned before ``t`` only)."""
        if self.disabled:
            return
        if self.last_t is not None and t > self.last_t and len(self.steps) < 2_000:
            self.steps.append(t - self.last_t)
        self.last_t = t
        if self.t0 is None:
            self.t0 = t
        if not self.fitted and t - self.t0 >= self.period:
            self._fit()

    def _slot(self, t: float) -> int:
        return int((t % self.period) // self.width) % len(self.offsets)

    def _fit(self) -> None:
        if not self.steps or len(self.buffer) < 2 * SEASON_MIN_SLOTS:
            self.disabled = True
            return
        step = sorted(self.steps)[len(self.steps) // 2]
        self.width = max(step, self.min_slot)
        nslots = int(round(self.period / self.width))
        if nslots < SEASON_MIN_SLOTS:
            self.disabled, self.buffer = True, []
            return
        self.width = self.period / nslots
        sums, counts = [0.0] * nslots, [0] * nslots
        mean = sum(x for _, x in self.buffer) / len(self.buffer)
        self.offsets = [0.0] * nslots
        for t, x in self.buffer:
            k = self._slot(t)
            sums[k] += x - mean
            counts[k] += 1
        seen = [k for k in range(nslots) if counts[k]]
        if len(seen) < nslots / 2:  # too little of the period seen (a long gap)
            self.disabled, self.buffer, self.offsets = True, [], []
            return
        for k in range(nslots):  # an empty slot takes its nearest seen slot's offset
            near = min(seen, key=lambda j: min((j - k) % nslots, (k - j) % nslots))
            self.offsets[k] = sums[near] / counts[near]
        tail = self.buffer[-LEVEL_SPAN:]
        self.level = sum(x - self.offsets[self._slot(t)] for t, x in tail) / len(tail)
        self.per_period = max(1.0, self.period / step)
        # errors are compared over about one week of points, the same span for every season
        self.select_span = min(SELECT_WEEK_POINTS, max(1.0, 604_800.0 / step))
        per_slot = max(1.0, self.width / step)
        self.gamma = 1.0 - (1.0 - SEASON_GAMMA) ** (1.0 / per_slot)
        self.buffer = []

    def expect(self, t: float) -> float | None:
        if not self.fitted:
            return None
        return self.level + self.offsets[self._slot(t)]

    def learn(self, t: float, x: float, recent_error: float | None, floor: float) -> None:
        """Learn one point (every point, flagged or not: a season must see its own rises and
        falls even while the recent level flags them); its error moves the level and the
        slot by at most SEASON_CLIP scale units (``floor``: the model's smallest scale), so
        a spike barely changes tomorrow's expectation."""
        if self.disabled:
            return
        if not self.fitted:
            self.buffer.append((t, x))
            if len(self.buffer) > SEASON_MAX_POINTS:
                self.disabled, self.buffer = True, []
            return
        k = self._slot(t)
        err = x - (self.level + self.offsets[k])
        if recent_error is not None:
            self.predicted += 1
            a = _ew(self.predicted, self.select_span)
            self.mse += a * (err * err - self.mse)
            self.mse_recent += a * (recent_error * recent_error - self.mse_recent)
        limit = SEASON_CLIP * max(math.sqrt(self.var), floor)
        if self.n >= SCALE_MIN_POINTS:
            err = max(-limit, min(limit, err))
        self.n += 1
        self.var += _ew(self.n, SCALE_SPAN) * (err * err - self.var)
        self.level += 2.0 / (LEVEL_SPAN + 1) * err
        k_err = x - self.level - self.offsets[k]
        if self.n > SCALE_MIN_POINTS:
            k_err = max(-limit, min(limit, k_err))
        self.offsets[k] += self.gamma * k_err

    @property
    def amplitude(self) -> float:
        """The season's range: its highest slot offset minus its lowest."""
        return max(self.offsets) - min(self.offsets) if self.offsets else 0.0

    @property
    def explains(self) -> bool:
        """Whether this season explains the series better than the recent level does now."""
        need = min(SEASON_MIN_PREDICTED, self.per_period / 2)
        return (self.fitted and self.predicted >= need
                and self.mse < SEASON_GAIN * self.mse_recent)


class SeriesModel:
    """score-series' model of one series: the job's forest and alert rule (forest.AlertRule)
    on a one-dimensional point that keeps its meaning on drifting and seasonal data.

    The forest does not see the raw value: a trend or a slow cycle would put every new value
    outside what it has learned, and scores would sit at the subsample's ceiling. It sees
    the value's deviation from what was expected, in units of the expectation's running error.
    The expectation is the series' running level (an exponential mean over LEVEL_SPAN learned
    points; "recent level") unless a season explains the series better (SeasonalBaseline,
    with timestamps and ``seasons`` on): then it is that season's Holt-Winters-like level +
    slot offset ("same time yesterday" / "same time last week" / "same time last year"). The
    scale is the root mean square of the chosen expectation's errors over SCALE_SPAN. A spike
    is far from the expectation; a trend moves the level with it; a daily season moves the
    expectation with it; after a level shift the level catches up within about LEVEL_SPAN
    points. Anomalous points are not learned (up to the hold), so they do not move the
    expectations. The run rule (AlertRule) watches the same deviation, up and down.
    """

    def __init__(self, params: ForestParams, seasons: bool = True) -> None:
        self.params = params
        self.forest = krcf.RandomCutForest(series_options(params))
        self.rule = AlertRule(params)
        self.level: float | None = None
        self.var = 0.0  # running mean square of the deviations from the level
        self.n = 0
        self.last: float | None = None  # the last learned value
        self.resolution = math.inf  # the smallest step between learned values seen
        self.spread = random.Random(params.random_seed)
        self.flagged_by: str | None = None  # what flagged the last point (None: not flagged)
        self.seasons = [SeasonalBaseline(*s) for s in SEASONS] if seasons else []
        # the last scored point's expectation, its baseline's name and range (explanations)
        self.expected: float | None = None
        self.compared_with: str | None = None
        self.range: str | None = None

    @property
    def held(self) -> int:
        return self.rule.held

    def _floor(self, center: float) -> float:
        # floors: after a long flat stretch the running scale shrinks towards 0, and a
        # change of one unit of the data's resolution (a reading's last digit) would look
        # huge; such a change is never more than one scale unit
        res = 0.0 if math.isinf(self.resolution) else self.resolution
        return max(RES_UNITS * res, 1e-9 * max(1.0, abs(center)))

    def _season_floor(self, season: SeasonalBaseline, expected: float) -> float:
        return max(1e-9 * max(1.0, abs(expected)),
                   min(self._floor(expected), SEASON_FLOOR * season.amplitude))

    def baseline(self, t: float | None) -> tuple[float | None, float, str]:
        """(expected value, scale, what it is) for a point at ``t``: the season that explains
        the series best, else the recent level."""
        best = None
        if t is not None:
            for s in self.seasons:
                if s.explains and (best is None or s.mse / s.mse_recent
                                   < best.mse / best.mse_recent):
                    best = s
        if best is not None:
            expected = best.expect(t)
            return expected, max(math.sqrt(best.var), self._season_floor(best, expected)), \
                best.label
        if self.level is None:
            return None, 1.0, RECENT
        return self.level, max(math.sqrt(self.var), self._floor(self.level)), RECENT

    def deviation(self, value: float, t: float | None = None) -> float:
        """The value's distance from the expectation, in units of its running error."""
        expected, scale, _ = self.baseline(t)
        return 0.0 if expected is None else (value - expected) / scale

    def _learn_seasons(self, value: float, t: float | None) -> None:
        if t is None:
            return
        recent_error = None if self.level is None else value - self.level
        for s in self.seasons:
            expected = s.expect(t)
            s.learn(t, value, recent_error,
                    self._season_floor(s, value if expected is None else expected))

    def _learn(self, value: float) -> None:
        self.n += 1
        if self.last is not None and value != self.last:
            self.resolution = min(self.resolution, abs(value - self.last))
        self.last = value
        if self.level is None:
            self.level = value
            return
        dev = value - self.level
        self.var += _ew(self.n, SCALE_SPAN) * (dev * dev - self.var)
        self.level += _ew(self.n, LEVEL_SPAN) * dev

    def score(self, value: float, t: float | None = None) -> tuple[float, bool]:
        """Score one value (at time ``t``, epoch seconds: needed for seasons), then learn it
        (unless held as an anomaly): (score, is_anomaly); ``flagged_by`` then says what
        flagged it, ``expected`` / ``compared_with`` / ``range`` what it was compared with."""
        value = float(value)
        if t is not None:
            for s in self.seasons:
                s.see_time(t)
        expected, scale, label = self.baseline(t)
        z = 0.0 if expected is None else (value - expected) / scale
        self.expected, self.compared_with = expected, (None if expected is None else label)
        width = self.params.threshold * scale
        self.range = None if expected is None else \
            f"{expected - width:.6g}..{expected + width:.6g}"
        band = self.spread.uniform(-ORDINARY_BAND, ORDINARY_BAND)  # drawn for every point
        point = [band if abs(z) <= ORDINARY_BAND else z]
        score = float(self.forest.score(point))
        # krcf scores from `output_after` points on (same readiness rule as SiteModel)
        ready = int(self.forest.entries_seen()) >= self.params.warmup_windows
        # the run rule sees the deviation once the scale rests on a few learned values:
        # before, the scale is ~0 and a deviation ~1e9, which poisoned the rule's running
        # noise for thousands of points (its run sums stayed at 0 all that time)
        is_anomaly, learn, reason = self.rule.decide(
            score, ready, (z if self.n >= SCALE_MIN_POINTS else None,))
        self.flagged_by = None if reason is None else (
            "score" if self.rule.run_input is None else f"run:value:{self.rule.run_input[1]}")
        self._learn_seasons(value, t)
        if learn:
            self.forest.update(point)
            self._learn(value)
        return round(score, 6), is_anomaly

    @property
    def usual(self) -> float | None:
        """The running level: what the series usually is around now."""
        return self.level


def point_times(points: list[Point]) -> list[float | None]:
    """Each point's time in epoch seconds for the seasons, None for plain-number timestamps
    (no calendar: no seasons)."""
    dated = bool(points) and not _is_number(points[0].timestamp)
    return [p.key if dated else None for p in points]


def score_points(points: list[Point], params: ForestParams | dict[str, Any] | None = None,
                 seasons: bool = True) -> list[dict[str, Any]]:
    """Score points in order; rows with the keys of OUTPUT_COLUMNS."""
    model = SeriesModel(series_params(params), seasons=seasons)
    out = []
    for p, t in zip(points, point_times(points), strict=True):
        score, flag = model.score(p.value, t)
        out.append({"timestamp": p.timestamp, "value": p.value, "anomaly_score": score,
                    "is_anomaly": flag,
                    "usual_value": None if model.expected is None else round(model.expected, 6),
                    "expected_range": model.range, "compared_with": model.compared_with,
                    "flagged_by": model.flagged_by})
    return out


def score_series(input_path: Path | str, out_path: Path | str,
                 forest: ForestParams | dict[str, Any] | None = None,
                 seasons: bool = True) -> dict[str, Any]:
    """Score the series in ``input_path`` and write ``out_path``; returns a summary.

    ``seasons`` False (``--no-seasons``): every value is compared with the recent level only.

    Repeated timestamps are scored in file order; the summary's ``warnings`` say where
    (they are also printed to standard error)."""
    params = series_params(forest)
    warnings: list[str] = []
    points = read_series(input_path, warnings)
    for w in warnings:
        log.warning(f"warning: {w}")
    rows = score_points(points, params, seasons=seasons)
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
        "threshold": params.threshold,
        "warmup_points": min(len(rows), params.warmup_windows),
        "compared_with": {c: sum(r["compared_with"] == c for r in rows)
                          for c in dict.fromkeys(r["compared_with"] for r in rows) if c},
        "warnings": warnings,
    }
