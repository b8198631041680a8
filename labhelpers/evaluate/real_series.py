"""A labelled suite of real and real-like operational series for ``score-series`` (issue 27).

Everything installs from the package index: the real data are statsmodels' bundled datasets
(no download at run time), the rest is generated here, deterministically, replaying the real
data's own fluctuations. Every series has labelled anomaly windows (points [start, end)):
the real ones where the data have a documented event (the Nile's flow after the Aswan dam
works of 1898; the 2008-09 recession in US quarterly data), injected ones elsewhere.

Kinds (``KINDS``):

- generated on a 5-minute grid (14 days; 28 days for the weekly kind), each with noise
  replayed from a real series (block bootstrap of its standardised differences, so its
  heavy tails and runs are kept): ``square-clean`` (a noiseless daily square wave, one late
  rise and a spike), ``square-noisy`` (the same with noise), ``sine-gaps`` (a daily sine with
  missing hours and an afternoon level shift), ``weekly`` (weekday / weekend days; one weekday
  behaves like a weekend), ``heavy-tails`` (Student-t noise, df 2: spikes must beat the tails),
  ``integer-plateaus`` (small counts held for stretches; a surge and an outage at 0),
  ``flat-moves`` (a reading flat for days with last-digit steps, then it moves),
  ``irregular`` (jittered sampling with gaps, daily sine, a spike and a dip), ``cpu-like``
  (mean-reverting level with real bursts; a stuck-high plateau);
- real (``real-*``): co2 (weekly, Mauna Loa, its missing weeks are gaps; injected spike and
  shift), co2 replayed on a 5-minute grid, sunspots (yearly; an injected spike), elnino (monthly
  sea temperature; an injected shift), macrodata (quarterly realgdp growth, unemployment,
  inflation; the 2008-09 recession labelled), nile (yearly; the 1898 change labelled).

The split is fixed: TUNE_SEEDS and noise from TUNE_SOURCES for the tune part, HELD_OUT_SEEDS
and HELD_OUT_SOURCES for the held-out part; the real datasets are split by dataset
(REAL_PARTS). Defaults are chosen on the tune part only.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from ..errors import ConfigError
from .series_suite import write_series_csv
from .window_score import Window

START = calendar.timegm((2026, 3, 2, 0, 0, 0))  # a Monday, UTC
STEP = 300.0  # 5 minutes
DAY = 288  # 5-minute points per day

PARTS = ("tune", "held-out")
TUNE_SEEDS = (0, 1)
HELD_OUT_SEEDS = (2, 3)
# Real series whose differences are replayed as noise, per part.
TUNE_SOURCES = ("co2", "sunspots", "nile")
HELD_OUT_SOURCES = ("elnino", "realgdp", "infl", "unemp")


@dataclass
class RealSeries:
    """One labelled series: timestamps (epoch s), values, anomaly windows, its kind and part."""

    name: str
    kind: str
    part: str
    description: str
    timestamps: list[float]
    values: list[float]
    windows: tuple[Window, ...] = field(default_factory=tuple)

    def write_csv(self, path: Path | str) -> Path:
        """The series as a ``timestamp,value`` CSV file (what score-series reads)."""
        return write_series_csv(path, self.timestamps, self.values, digits=10)


# ---------------------------------------------------------------------------------------------
# statsmodels' bundled data
# ---------------------------------------------------------------------------------------------

def _datasets():
    try:
        import statsmodels.api as sm
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ConfigError("The real-series suite needs statsmodels",
                          "pip install -e '.[dev]' (or pip install 'statsmodels>=0.14').") from None
    return sm.datasets


@cache
def real_values(name: str) -> tuple[tuple[float, ...], tuple[float | None, ...]]:
    """(timestamps, values) of one bundled real series; None where the data have no value."""
    ds = _datasets()
    if name == "co2":
        d = ds.co2.load_pandas().data
        ts = tuple(float(calendar.timegm(i.timetuple())) for i in d.index)
        return ts, tuple(None if math.isnan(v) else float(v) for v in d["co2"])
    if name == "sunspots":
        d = ds.sunspots.load_pandas().data
        return (tuple(_year(int(y)) for y in d["YEAR"]), tuple(float(v) for v in d["SUNACTIVITY"]))
    if name == "nile":
        d = ds.nile.load_pandas().data
        return tuple(_year(int(y)) for y in d["year"]), tuple(float(v) for v in d["volume"])
    if name == "elnino":
        d = ds.elnino.load_pandas().data
        ts, vs = [], []
        for _, row in d.iterrows():
            for m, col in enumerate(d.columns[1:], start=1):
                ts.append(float(calendar.timegm((int(row["YEAR"]), m, 1, 0, 0, 0))))
                vs.append(float(row[col]))
        return tuple(ts), tuple(vs)
    if name in ("realgdp", "infl", "unemp"):
        d = ds.macrodata.load_pandas().data
        ts = tuple(float(calendar.timegm((int(y), 3 * int(q) - 2, 1, 0, 0, 0)))
                   for y, q in zip(d["year"], d["quarter"], strict=True))
        col = [float(v) for v in d[name]]
        if name == "realgdp":  # growth in percent per quarter
            col = [0.0] + [100.0 * (b / a - 1.0) for a, b in zip(col, col[1:], strict=False)]
        return ts, tuple(col)
    raise ConfigError(f"Unknown real series {name!r}", "use co2, sunspots, nile, elnino, "
                      "realgdp, infl or unemp.")


def _year(y: int) -> float:
    return float(calendar.timegm((y, 7, 1, 0, 0, 0)))


@cache
def _innovations(name: str) -> tuple[float, ...]:
    """A real series' successive differences, standardised (median 0, robust sd 1)."""
    vals = [v for v in real_values(name)[1] if v is not None]
    d = [b - a for a, b in zip(vals, vals[1:], strict=False)]
    med = sorted(d)[len(d) // 2]
    mad = sorted(abs(x - med) for x in d)[len(d) // 2] * 1.4826 or 1.0
    return tuple((x - med) / mad for x in d)


def replay_noise(rng: random.Random, sources: tuple[str, ...], n: int, block: int = 12
                 ) -> list[float]:
    """n points of noise replayed from real differences: blocks of ``block`` consecutive
    standardised differences of a source picked at random, one block after another."""
    out: list[float] = []
    while len(out) < n:
        src = _innovations(rng.choice(sources))
        i = rng.randrange(0, max(1, len(src) - block))
        out.extend(src[i:i + block])
    return out[:n]


# ---------------------------------------------------------------------------------------------
# Generated kinds (5-minute grid)
# ---------------------------------------------------------------------------------------------

Builder = Callable[[random.Random, tuple[str, ...]], tuple[list[float], list[float],
                                                           list[Window], str]]


def _grid(n: int) -> list[float]:
    return [START + STEP * i for i in range(n)]


def _hour(i: int) -> float:
    return (i % DAY) / 12.0


def _late_day(rng: random.Random, days: int) -> int:
    """A day in the second half of the series (where seasons have been seen)."""
    return rng.randrange(days // 2, days - 1)


def _square(rng: random.Random, sources: tuple[str, ...], noise: float):
    days = 14
    n = days * DAY
    base = [100.0 + (50.0 if 8 <= _hour(i) < 20 else 0.0) for i in range(n)]
    late = _late_day(rng, days)
    rise = late * DAY + 8 * 12
    for i in range(rise, rise + 24):  # the rise comes 2 h late
        base[i] = 100.0
    spike_day = _late_day(rng, days)
    while spike_day == late:
        spike_day = _late_day(rng, days)
    spike = spike_day * DAY + rng.randrange(22 * 12, 23 * 12)  # night: low
    base[spike] += 60.0
    eps = replay_noise(rng, sources, n)
    vals = [b + noise * e for b, e in zip(base, eps, strict=True)]
    windows = [Window(rise, rise + 24), Window(spike, spike + 12)]
    return _grid(n), vals, windows, f"daily square wave 100/150 (8-20 h), noise {noise:g}"


def _square_clean(rng, sources):
    return _square(rng, sources, 0.0)


def _square_noisy(rng, sources):
    return _square(rng, sources, 4.0)


def _sine_gaps(rng, sources):
    days = 14
    n = days * DAY
    eps = replay_noise(rng, sources, n)
    vals = [200.0 + 60.0 * math.sin(2 * math.pi * (_hour(i) - 9) / 24) + 5.0 * e
            for i, e in zip(range(n), eps, strict=True)]
    shift_day = _late_day(rng, days)
    shift = shift_day * DAY + 14 * 12
    for i in range(shift, shift + 36):
        vals[i] += 40.0
    dip = (shift_day - 2) * DAY + rng.randrange(3 * 12, 5 * 12)
    vals[dip] -= 70.0
    windows = [Window(shift, shift + 24), Window(dip, dip + 12)]
    # missing hours: 6 gaps of 1-4 h, away from the windows
    drop: set[int] = set()
    for _ in range(6):
        g = rng.randrange(DAY, n - 50)
        if any(w.start - 60 <= g <= w.end + 60 for w in windows):
            continue
        drop.update(range(g, g + rng.randrange(12, 48)))
    return _keep(_grid(n), vals, windows, drop) + ("daily sine +-60, replayed noise sd 5, gaps",)


def _keep(ts, vals, windows, drop):
    """Drop the points in ``drop`` and re-index the windows."""
    idx = [i for i in range(len(ts)) if i not in drop]
    new = {old: k for k, old in enumerate(idx)}
    wins = [Window(new[w.start], new[w.start] + (w.end - w.start)) for w in windows]
    return [ts[i] for i in idx], [vals[i] for i in idx], wins


def _weekly(rng, sources):
    days = 28
    n = days * DAY
    eps = replay_noise(rng, sources, n)
    vals = []
    for i in range(n):
        weekend = (i // DAY) % 7 >= 5  # START is a Monday
        busy = 8 <= _hour(i) < 18
        vals.append((60.0 if weekend else 100.0) + (0.0 if weekend or not busy else 80.0)
                    + 4.0 * eps[i])
    day = rng.choice([d for d in range(days // 2, days - 1) if d % 7 < 5])
    start = day * DAY  # from midnight: weekend nights are lower too
    for i in range(day * DAY, (day + 1) * DAY):  # a weekday that looks like a weekend
        vals[i] = 60.0 + 4.0 * eps[i]
    return _grid(n), vals, [Window(start, start + 24)], "weekdays busy 8-18 h, weekends low"


def _student_t(rng: random.Random, df: float) -> float:
    chi2 = sum(rng.gauss(0, 1) ** 2 for _ in range(int(df)))
    return rng.gauss(0, 1) / math.sqrt(chi2 / df)


def _heavy_tails(rng, sources):
    days = 14
    n = days * DAY
    vals = [50.0 + 2.0 * _student_t(rng, 2) for _ in range(n)]
    windows = []
    for frac in (0.55, 0.7, 0.85):
        i = int(n * frac) + rng.randrange(0, 100)
        vals[i] += 80.0 * rng.choice((1, -1))
        windows.append(Window(i, i + 12))
    shift = int(n * 0.62) + rng.randrange(0, 100)
    for i in range(shift, n):
        vals[i] += 30.0
    windows.append(Window(shift, shift + 24))
    return _grid(n), vals, windows, "level 50, Student-t noise (df 2, scale 2), spikes of 80"


def _integer_plateaus(rng, sources):
    days = 14
    n = days * DAY
    vals: list[float] = []
    while len(vals) < n:
        lam = 3.0 + 2.0 * math.sin(2 * math.pi * _hour(len(vals)) / 24)
        v = float(_poisson(rng, lam))
        vals.extend([v] * rng.randrange(1, 20))
    vals = vals[:n]
    surge = int(n * 0.6) + rng.randrange(0, 200)
    for i in range(surge, surge + 24):
        vals[i] = float(_poisson(rng, 25.0))
    outage = int(n * 0.8) + rng.randrange(0, 200)
    for i in range(outage, outage + 36):
        vals[i] = 0.0
    windows = [Window(surge, surge + 24), Window(outage, outage + 24)]
    return _grid(n), vals, windows, "small integer counts held for 1-20 points; surge, outage"


def _poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _flat_moves(rng, sources):
    days = 14
    n = days * DAY
    v, vals = 42.0, []
    move = int(n * 0.6) + rng.randrange(0, 400)
    for i in range(n):
        if rng.random() < 0.01:
            v = round(v + rng.choice((-0.1, 0.1)), 1)
        if i == move:
            v = round(v + rng.choice((-1, 1)) * 3.0, 1)
        vals.append(v)
    return _grid(n), vals, [Window(move, move + 24)], "flat reading, last-digit steps; moves by 3"


def _irregular(rng, sources):
    n = 14 * DAY
    ts, t = [], float(START)
    for _ in range(n):
        t += rng.expovariate(1.0 / STEP)
        if rng.random() < 0.002:
            t += rng.uniform(1, 6) * 3600.0  # a gap of hours
        ts.append(t)
    eps = replay_noise(rng, sources, n)
    vals = [80.0 + 30.0 * math.sin(2 * math.pi * ((tt - START) / 86400.0 - 0.3)) + 3.0 * e
            for tt, e in zip(ts, eps, strict=True)]
    spike = int(n * 0.65) + rng.randrange(0, 200)
    vals[spike] += 45.0
    dip = int(n * 0.85) + rng.randrange(0, 200)
    for i in range(dip, dip + 6):
        vals[i] -= 40.0
    return ts, vals, [Window(spike, spike + 12), Window(dip, dip + 12)], \
        "irregular sampling (mean 5 min) with gaps, daily sine +-30"


def _cpu_like(rng, sources):
    n = 14 * DAY
    eps = replay_noise(rng, sources, n)
    vals, x = [], 0.0
    for i in range(n):
        x = 0.9 * x + 2.0 * eps[i]
        vals.append(max(0.0, min(100.0, 30.0 + 10.0 * math.sin(2 * math.pi * _hour(i) / 24)
                                 + x)))
    stuck = int(n * 0.7) + rng.randrange(0, 300)
    for i in range(stuck, stuck + 48):
        vals[i] = 99.0 + 0.5 * rng.random()
    return _grid(n), vals, [Window(stuck, stuck + 24)], \
        "CPU % like: AR(1) of replayed bursts around a daily cycle; stuck at 99 %"


GENERATED: dict[str, Builder] = {
    "square-clean": _square_clean,
    "square-noisy": _square_noisy,
    "sine-gaps": _sine_gaps,
    "weekly": _weekly,
    "heavy-tails": _heavy_tails,
    "integer-plateaus": _integer_plateaus,
    "flat-moves": _flat_moves,
    "irregular": _irregular,
    "cpu-like": _cpu_like,
}


# ---------------------------------------------------------------------------------------------
# Real series
# ---------------------------------------------------------------------------------------------

def _present(name: str) -> tuple[list[float], list[float]]:
    ts, vs = real_values(name)
    pairs = [(t, v) for t, v in zip(ts, vs, strict=True) if v is not None]
    return [t for t, _ in pairs], [v for _, v in pairs]


def _sd(vals: list[float]) -> float:
    d = [b - a for a, b in zip(vals, vals[1:], strict=False)]
    m = sum(d) / len(d)
    return math.sqrt(sum((x - m) ** 2 for x in d) / len(d)) or 1.0


def _real_co2(seed: int) -> RealSeries:
    rng = random.Random(f"{seed}/real-co2")
    ts, vals = _present("co2")
    sd = _sd(vals)
    n = len(vals)
    spike = int(n * 0.5) + rng.randrange(0, 100)
    vals[spike] += 8 * sd
    shift = int(n * 0.8) + rng.randrange(0, 100)
    for i in range(shift, n):
        vals[i] -= 6 * sd
    return RealSeries("real-co2", "real-co2", "tune", "Mauna Loa CO2, weekly (gaps where "
                      "missing), injected spike and shift", ts, vals,
                      (Window(spike, spike + 4), Window(shift, shift + 8)))


def _real_co2_5min(seed: int) -> RealSeries:
    rng = random.Random(f"{seed}/co2-5min")
    _, raw = real_values("co2")
    ts, vals = [], []
    for i, v in enumerate(raw):
        if v is not None:
            ts.append(START + STEP * i)
            vals.append(v)
    sd = _sd(vals)
    n = len(vals)
    spike = int(n * 0.6) + rng.randrange(0, 100)
    vals[spike] -= 10 * sd
    return RealSeries("real-co2-5min", "real-co2-5min", "held-out", "CO2 weeks replayed as "
                      "5-minute points (missing weeks are gaps), injected dip", ts, vals,
                      (Window(spike, spike + 6),))


def _real_sunspots(seed: int) -> RealSeries:
    rng = random.Random(f"{seed}/sunspots")
    ts, vals = _present("sunspots")
    i = int(len(vals) * 0.6) + rng.randrange(0, 40)
    vals[i] += 150.0
    return RealSeries("real-sunspots", "real-sunspots", "tune", "yearly sunspot numbers, "
                      "injected spike of 150", ts, vals, (Window(i, i + 3),))


def _real_elnino(seed: int) -> RealSeries:
    rng = random.Random(f"{seed}/elnino")
    ts, vals = _present("elnino")
    n = len(vals)
    shift = int(n * 0.6) + rng.randrange(0, 100)
    for i in range(shift, n):
        vals[i] += 3.0
    return RealSeries("real-elnino", "real-elnino", "held-out", "monthly Pacific sea "
                      "temperature (yearly season), injected +3 degree shift", ts, vals,
                      (Window(shift, shift + 6),))


def _macro(name: str, part: str, seed: int) -> RealSeries:
    rng = random.Random(f"{seed}/{name}")
    ts, vals = _present(name)
    years = [datetime.fromtimestamp(t, tz=UTC).year for t in ts]
    quarters = [(datetime.fromtimestamp(t, tz=UTC).month + 2) // 3 for t in ts]
    # the 2008-09 recession (NBER: 2008Q1-2009Q2): from 2008Q3, the sharp part
    start = next(i for i, (y, q) in enumerate(zip(years, quarters, strict=True))
                 if (y, q) == (2008, 3))
    windows = [Window(start, start + 4)]
    sd = _sd(vals)
    i = int(len(vals) * 0.4) + rng.randrange(0, 40)
    vals[i] += 8 * sd
    windows.append(Window(i, i + 2))
    return RealSeries(f"real-{name}", "real-macro", part, f"US quarterly {name} 1959-2009, "
                      "the 2008-09 recession labelled, injected spike", ts, vals,
                      tuple(sorted(windows, key=lambda w: w.start)))


def _real_nile(seed: int) -> RealSeries:
    ts, vals = _present("nile")
    at = [datetime.fromtimestamp(t, tz=UTC).year for t in ts].index(1899)
    return RealSeries("real-nile", "real-nile", "held-out", "Nile flow at Aswan, yearly, "
                      "the drop from 1899 on (dam works, Cobb 1978) labelled", ts, vals,
                      (Window(at, at + 5),))


REAL_PARTS: dict[str, tuple[Callable[[int], RealSeries], ...]] = {
    "tune": (_real_co2, _real_sunspots, lambda s: _macro("realgdp", "tune", s)),
    "held-out": (_real_co2_5min, _real_elnino, _real_nile,
                 lambda s: _macro("unemp", "held-out", s),
                 lambda s: _macro("infl", "held-out", s)),
}


def build_real_suite(part: str) -> list[RealSeries]:
    """The suite's ``part`` ("tune" or "held-out"): every generated kind for each of the
    part's seeds with the part's noise sources, then the part's real series."""
    if part not in PARTS:
        raise ConfigError(f"Unknown part {part!r}", f"use one of {', '.join(PARTS)}.")
    seeds = TUNE_SEEDS if part == "tune" else HELD_OUT_SEEDS
    sources = TUNE_SOURCES if part == "tune" else HELD_OUT_SOURCES
    out = []
    for seed in seeds:
        for kind, build in GENERATED.items():
            rng = random.Random(f"{seed}/{kind}")
            ts, vals, windows, desc = build(rng, sources)
            out.append(RealSeries(f"{kind}/{seed}", kind, part, desc, ts, vals,
                                  tuple(windows)))
    out.extend(fn(seeds[0]) for fn in REAL_PARTS[part])
    return out
