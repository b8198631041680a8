"""A labelled scenario suite: click traffic with known anomalies, and quiet traffic that must
stay quiet, to measure the detector (see labhelpers/evaluate/evaluation.py and notebook 06).

Every scenario is built from ``generate.timeline`` (the steady parts) plus simple
record-level edits (extra senders for a spike, records removed for an outage, arrival delays
for late records), and is deterministic for a seed. Real traffic does not tick exactly, so
most scenarios add Poisson noise: the generator renders ``OVERSAMPLE`` times the rate and
each rendered record is kept a seeded random number of times, Poisson with mean
1/OVERSAMPLE (mostly 0, sometimes 1, rarely 2), so a window's count is a sum of Poisson
counts: Poisson, variance = mean, as random arrivals are. (Until 2026-12-02 each record was
kept once or not at all: Binomial(4n, 1/4), variance 0.75 x mean, which flattered the false
alarms: bench/detection_limits.py.) A time-varying mean (a *profile*) gives daily cycles and
slow drifts.

Ground truth: an ``Anomaly`` is a time interval on one site; the labelled windows are the
tumbling windows that overlap it. Quiet scenarios have no labels.

All scenarios share one event-time axis (``SUITE_START``) and their sites are prefixed with
the scenario name (``"spike-x4-20s/site1"``), so the whole suite goes through ONE replay of
the real Flink job (one JVM start) and the scenarios still do not see each other: the forest
is per site and the counts are per site.
"""

from __future__ import annotations

import calendar
import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..generate.plan import Plan, Sender
from ..generate.timeline import timeline, write_jsonl
from ..job.contracts import CLICK, IMPRESSION

# One event-time axis for the whole suite, aligned to a minute so window-aligned anomalies
# fill whole 10-s windows.
SUITE_START = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
WINDOW_S = 10
# Seconds of event time per scenario. "full": 3 h per scenario, ~32k windows, one replay of
# about 2 minutes here; "small": 30 min per scenario, for tests and quick notebook runs.
SIZES: dict[str, int] = {"small": 1800, "full": 10_800}
# Noise: render this many times the rate; each record is kept Poisson(1/OVERSAMPLE) times.
OVERSAMPLE = 4
# Late records: "out of order" stays below the job's lateness (5 s) so nothing is lost;
# "too late" is far above it (10-15 min), so the job's periodic watermark (which lags the
# records by up to a few hundred ms of processing time) drops them for certain.
OUT_OF_ORDER_MAX_MS = 4_500
TOO_LATE_MS = (600_000, 900_000)

Profile = Callable[[float], float]  # seconds since scenario start -> keep factor in [0, 1]


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly on one site, over event time [start_ms, end_ms)."""

    site: str
    kind: str
    start_ms: int
    end_ms: int

    def windows(self, window_s: int = WINDOW_S) -> list[int]:
        """Start (epoch ms) of every tumbling window that overlaps the anomaly."""
        w = window_s * 1000
        return list(range(self.start_ms // w * w, self.end_ms, w))


@dataclass
class Scenario:
    """One scenario: records in arrival order (as the job reads them) plus ground truth.

    records: click records (dicts with browseraction, site, event_time), in arrival order.
    arrival_ms: when each record arrives (non-decreasing); equals its event time unless it
      was delayed.
    anomalies: the injected anomalies (empty for a quiet scenario).
    """

    name: str
    description: str
    sites: tuple[str, ...]
    start_ms: int
    duration_s: int
    records: list[dict[str, Any]]
    arrival_ms: list[int]
    anomalies: tuple[Anomaly, ...] = ()
    window_s: int = WINDOW_S

    @property
    def quiet(self) -> bool:
        """True when nothing anomalous happens: every flag is a false alarm."""
        return not self.anomalies

    def labels(self) -> set[tuple[str, int]]:
        """The anomalous windows, as (site, window start in epoch ms)."""
        return {(a.site, w) for a in self.anomalies for w in a.windows(self.window_s)}

    def site_days(self) -> float:
        """Observed site-days (sites x duration), the base of the false-alarm rate."""
        return len(self.sites) * self.duration_s / 86_400


@dataclass
class Suite:
    """All scenarios of one evaluation, on one event-time axis."""

    scenarios: list[Scenario]
    size: str
    seed: int
    window_s: int = WINDOW_S
    by_name: dict[str, Scenario] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.scenarios}

    def scenario_of(self, site: str) -> str:
        """The scenario a (prefixed) site belongs to."""
        return site.split("/", 1)[0]

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of every scenario, merged in arrival order (the replay file's order)."""
        streams = [zip(s.arrival_ms, range(len(s.records)), s.records, strict=True)
                   for s in self.scenarios]
        for _, _, rec in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
            yield rec

    def write(self, path: Path | str) -> int:
        """Write the suite as one JSON-lines file for ``replay``; returns the record count."""
        return write_jsonl(self.records(), path)

    def labels(self) -> set[tuple[str, int]]:
        """The labelled windows of all scenarios."""
        return set().union(*(s.labels() for s in self.scenarios))

    def without_records(self) -> Suite:
        """A copy with the ground truth but no records (cheap to send to worker processes)."""
        return Suite([replace(s, records=[], arrival_ms=[]) for s in self.scenarios],
                     size=self.size, seed=self.seed, window_s=self.window_s)


# ---------------------------------------------------------------------------------------------
# Event times
# ---------------------------------------------------------------------------------------------

_SECOND_CACHE: dict[str, int] = {}


def record_ms(rec: dict[str, Any]) -> int:
    """A record's event time in epoch ms (fast path for the generator's wire format)."""
    text = rec["event_time"]
    prefix = text[:19]
    sec = _SECOND_CACHE.get(prefix)
    if sec is None:
        sec = calendar.timegm(datetime.strptime(prefix, "%Y-%m-%dT%H:%M:%S").timetuple())
        if len(_SECOND_CACHE) > 1_000_000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[prefix] = sec
    return sec * 1000 + int(text[20:23])


def window_counts(records: Iterable[dict[str, Any]], window_s: int = WINDOW_S,
                  lateness_s: int | None = None) -> dict[tuple[str, int], tuple[int, int]]:
    """(clicks, impressions) per (site, window start ms), as the job's SQL counts them.

    ``records`` in arrival order. With ``lateness_s`` a record is dropped when its window
    has already closed (window end <= the largest event time seen before it minus the
    lateness), as the job's watermark does; scenarios keep delays far from that boundary,
    because the job's watermark is periodic and lags a little behind the records.
    Windows with neither clicks nor impressions are not reported (same as the SQL).
    """
    w = window_s * 1000
    late_ms = None if lateness_s is None else lateness_s * 1000
    counts: Counter[tuple[str, int, str]] = Counter()
    max_seen = -(2**62)
    for rec in records:
        action = rec["browseraction"]
        ms = record_ms(rec)
        start = ms // w * w
        if late_ms is not None and start + w <= max_seen - late_ms:
            continue  # its window has fired: the job drops the record as too late
        max_seen = max(max_seen, ms)
        if action in (CLICK, IMPRESSION):
            counts[(rec["site"], start, action)] += 1
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for (site, start, action), n in counts.items():
        c, i = out.get((site, start), (0, 0))
        out[(site, start)] = (c + n, i) if action == CLICK else (c, i + n)
    return out


# ---------------------------------------------------------------------------------------------
# Building one scenario
# ---------------------------------------------------------------------------------------------


class _Builder:
    """Collects the records of one scenario: steady traffic, edits, delays, anomalies."""

    def __init__(self, name: str, description: str, start_ms: int, duration_s: int,
                 seed: int, make_records: bool = True) -> None:
        self.make_records = make_records
        self.name = name
        self.description = description
        self.start_ms = start_ms
        self.duration_s = duration_s
        # str seeds are hashed with SHA-512 by random: the same in every process
        self.rng = random.Random(f"{seed}/{name}")
        self.sites: list[str] = []
        self.items: list[tuple[int, dict[str, Any]]] = []  # (event ms, record)
        self.delays: dict[int, int] = {}  # id(record) -> delay ms
        self.anomalies: list[Anomaly] = []

    def site(self, short: str) -> str:
        full = f"{self.name}/{short}"
        if full not in self.sites:
            self.sites.append(full)
        return full

    def at(self, fraction: float, offset_s: int = 0) -> int:
        """Seconds since start: ``fraction`` of the duration, on a window boundary, + offset."""
        return int(self.duration_s * fraction) // WINDOW_S * WINDOW_S + offset_s

    def traffic(self, site: str, payload: str, rate: float, t0: float = 0,
                t1: float | None = None, count: int = 1, noise: bool = True,
                profile: Profile | None = None) -> None:
        """``count`` senders of ``payload`` at ``rate``/s on ``site`` from t0 to t1 (seconds).

        noise=False: the generator's exact ticks. noise=True: OVERSAMPLE x the rate, each
        record then kept a seeded Poisson number of times with mean profile(t) / OVERSAMPLE
        (copies share the event time): Poisson counts per window.
        """
        t1 = self.duration_s if t1 is None else t1
        if not self.make_records:
            return  # ground truth only (evaluate: labels without minutes of generation)
        k = OVERSAMPLE if noise else 1
        sender = Sender(payload, rate=rate * k, start_s=t0, seconds=t1 - t0, count=count)
        plan = Plan((sender,), sites=(site,))
        seed = self.rng.randrange(2**31)
        rng = random.Random(self.rng.randrange(2**63))
        start_s = self.start_ms / 1000
        for rec in timeline(plan, start_s, self.duration_s, seed=seed):
            ms = record_ms(rec)
            copies = 1
            if noise:
                keep = 1.0 if profile is None else profile((ms - self.start_ms) / 1000)
                copies = _poisson(rng, keep / k)
            for c in range(copies):
                self.items.append((ms, rec if c == 0 else dict(rec)))

    def remove(self, site: str, payload: str, t0: float, t1: float) -> int:
        """Drop the ``payload`` records of ``site`` in [t0, t1) seconds; returns how many."""
        lo, hi = self.start_ms + round(t0 * 1000), self.start_ms + round(t1 * 1000)
        before = len(self.items)
        self.items = [(ms, r) for ms, r in self.items
                      if not (r["site"] == site and r["browseraction"] == payload
                              and lo <= ms < hi)]
        return before - len(self.items)

    def thin(self, site: str, payload: str, t0: float, t1: float, keep: float) -> None:
        """Keep a seeded random ``keep`` share of the ``payload`` records of ``site`` in
        [t0, t1) seconds (e.g. 0.5: the clicks halve)."""
        lo, hi = self.start_ms + round(t0 * 1000), self.start_ms + round(t1 * 1000)
        self.items = [(ms, r) for ms, r in self.items
                      if not (r["site"] == site and r["browseraction"] == payload
                              and lo <= ms < hi and self.rng.random() >= keep)]

    def delay(self, fraction: float, lo_ms: int, hi_ms: int) -> None:
        """Delay a random ``fraction`` of the records by lo..hi ms (arrival, not event time)."""
        for _, rec in self.items:
            if id(rec) not in self.delays and self.rng.random() < fraction:
                self.delays[id(rec)] = self.rng.randint(lo_ms, hi_ms)

    def anomaly(self, site: str, kind: str, t0: float, t1: float) -> None:
        self.anomalies.append(Anomaly(site, kind, self.start_ms + round(t0 * 1000),
                                      self.start_ms + round(t1 * 1000)))

    def spike(self, site: str, t0: int, seconds: int, extra_senders: int, rate: float = 1.0,
              noise: bool = True, kind: str = "spike") -> None:
        """Extra Click senders on ``site`` (the lab's spike is 3 senders at 1/s for 20 s)."""
        self.traffic(site, CLICK, rate, t0, t0 + seconds, count=extra_senders, noise=noise)
        self.anomaly(site, kind, t0, t0 + seconds)

    def build(self) -> Scenario:
        keyed = sorted(((ms + self.delays.get(id(r), 0), ms, i, r)
                        for i, (ms, r) in enumerate(self.items)), key=lambda t: t[:3])
        return Scenario(
            name=self.name, description=self.description, sites=tuple(self.sites),
            start_ms=self.start_ms, duration_s=self.duration_s,
            records=[t[3] for t in keyed], arrival_ms=[t[0] for t in keyed],
            anomalies=tuple(sorted(self.anomalies, key=lambda a: (a.site, a.start_ms))),
        )


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw with a small mean (inversion; the suite's means are at most 1/4)."""
    u, k = rng.random(), 0
    p = cum = math.exp(-mean)
    while u > cum:
        k += 1
        p *= mean / k
        cum += p
    return k


def _lab_traffic(b: _Builder, site: str, noise: bool = True, impressions: float = 1.0,
                 clicks: float = 1.0) -> None:
    """The lab's normal traffic on one site: Impression and Click senders (CTR ~ 100 %)."""
    b.traffic(site, IMPRESSION, impressions, noise=noise)
    b.traffic(site, CLICK, clicks, noise=noise)


# ---------------------------------------------------------------------------------------------
# The scenarios. Each takes a builder; anomaly times are fractions of the duration so the
# same scenario works at every size (the forest is warm by 0.3 of the small size).
# ---------------------------------------------------------------------------------------------


def _lab_spike(b: _Builder) -> None:
    s = b.site("site1")
    _lab_traffic(b, s, noise=False)
    for f in (0.4, 0.75):
        b.spike(s, b.at(f), 20, 3, noise=False)


def _spike(extra: int, seconds: int, offset_s: int = 0) -> Callable[[_Builder], None]:
    def build(b: _Builder) -> None:
        for short, fracs in (("site1", (0.4, 0.75)), ("site2", (0.5, 0.85))):
            s = b.site(short)
            _lab_traffic(b, s)
            for f in fracs:
                b.spike(s, b.at(f, offset_s), seconds, extra)
    return build


def _level_shift(b: _Builder) -> None:
    for short, f in (("site1", 0.4), ("site2", 0.6)):
        s = b.site(short)
        _lab_traffic(b, s)
        b.spike(s, b.at(f), 300, 2, kind="level_shift")


def _outage(payload: str, kind: str) -> Callable[[_Builder], None]:
    def build(b: _Builder) -> None:
        for short, f in (("site1", 0.4), ("site2", 0.7)):
            s = b.site(short)
            _lab_traffic(b, s)
            t0 = b.at(f)
            b.remove(s, payload, t0, t0 + 120)
            b.anomaly(s, kind, t0, t0 + 120)
    return build


def _multi_site(b: _Builder) -> None:
    # four sites of different size and CTR; only "shop" misbehaves (clicks x4 for 30 s)
    for short, imp, clk in (("news", 2.0, 0.4), ("shop", 1.0, 1.0), ("blog", 0.5, 0.25),
                            ("video", 5.0, 1.0)):
        s = b.site(short)
        _lab_traffic(b, s, impressions=imp, clicks=clk)
        if short == "shop":
            b.spike(s, b.at(0.55), 30, 3)


def _late_out_of_order(b: _Builder) -> None:
    sites = [b.site("site1"), b.site("site2")]
    for s in sites:
        _lab_traffic(b, s)
    b.spike(sites[0], b.at(0.6), 20, 3)
    # 20 % of the records arrive up to 4.5 s late (out of order, within the job's lateness:
    # nothing is lost); 1 % arrive 10-15 min late (dropped by the watermark as too late)
    b.delay(0.01, *TOO_LATE_MS)
    b.delay(0.20 / 0.99, 1, OUT_OF_ORDER_MAX_MS)


def _quiet_noisy(b: _Builder) -> None:
    for short in ("site1", "site2"):
        _lab_traffic(b, b.site(short))


def _quiet_daily_cycle(b: _Builder) -> None:
    # A day compressed into the scenario: traffic from 20 % (night) to 100 % (peak) and back,
    # CTR unchanged. Real days change more slowly, so this is the harder case.
    period = b.duration_s
    for short, phase in (("site1", 0.0), ("site2", 0.3)):
        def profile(t: float, phase: float = phase) -> float:
            return 0.2 + 0.8 * (1 - math.cos(2 * math.pi * (t / period + phase))) / 2
        s = b.site(short)
        b.traffic(s, IMPRESSION, 2.0, profile=profile)
        b.traffic(s, CLICK, 1.0, profile=profile)


def _quiet_slow_drift(b: _Builder) -> None:
    # CTR drifts from 100 % to 50 % over the whole scenario: a trend, not an anomaly.
    d = b.duration_s
    for short in ("site1", "site2"):
        s = b.site(short)
        b.traffic(s, IMPRESSION, 1.0)
        b.traffic(s, CLICK, 1.0, profile=lambda t: 1.0 - 0.5 * t / d)


def _quiet_low_volume(b: _Builder) -> None:
    # a few records per window: CTR jumps between 0 % and 100 %+ by chance alone
    for short, imp, clk in (("site1", 0.3, 0.1), ("site2", 0.5, 0.15), ("site3", 0.2, 0.05)):
        _lab_traffic(b, b.site(short), impressions=imp, clicks=clk)


def _busy(b: _Builder, short: str, impressions: float = 10.0, clicks: float = 1.0) -> str:
    """A busy noisy site (default 10 impressions/s, CTR ~10 %)."""
    s = b.site(short)
    _lab_traffic(b, s, impressions=impressions, clicks=clicks)
    return s


def _busy_x2(b: _Builder) -> None:
    # the case the first forest missed: clicks double for 60 s on a busy noisy site
    s = _busy(b, "site1")
    for f in (0.4, 0.75):
        b.spike(s, b.at(f), 60, 1, kind="rise_x2")


def _busy_ctr_half(b: _Builder) -> None:
    s = _busy(b, "site1")
    for f in (0.4, 0.75):
        t0 = b.at(f)
        b.thin(s, CLICK, t0, t0 + 180, keep=0.5)
        b.anomaly(s, "ctr_half", t0, t0 + 180)


def _dark_site(b: _Builder) -> None:
    # three sites; one sends nothing at all for 2 minutes (a broken tag, an outage)
    sites = [b.site(short) for short in ("site1", "site2", "site3")]
    for s in sites:
        _lab_traffic(b, s)
    t0 = b.at(0.5)
    for payload in (IMPRESSION, CLICK):
        b.remove(sites[1], payload, t0, t0 + 120)
    b.anomaly(sites[1], "dark", t0, t0 + 120)


def _click_bot(b: _Builder) -> None:
    s = _busy(b, "site1", impressions=20.0, clicks=2.0)
    for f in (0.4, 0.75):
        b.spike(s, b.at(f), 30, 3, kind="click_bot")


def _quiet_daily_low(b: _Builder) -> None:
    # a day's cycle (10-100 %) on low-volume sites: at night a window often has no record
    period = b.duration_s
    for short, imp, clk, phase in (("site1", 0.5, 0.1, 0.0), ("site2", 0.3, 0.05, 0.5)):
        def profile(t: float, phase: float = phase) -> float:
            return 0.1 + 0.9 * (1 - math.cos(2 * math.pi * (t / period + phase))) / 2
        s = b.site(short)
        b.traffic(s, IMPRESSION, imp, profile=profile)
        b.traffic(s, CLICK, clk, profile=profile)


# name -> (builder, description). Quiet scenarios have names starting with "quiet-".
SCENARIOS: dict[str, tuple[Callable[[_Builder], None], str]] = {
    "lab-spike": (_lab_spike, "the lab's test: exact ticks (1 Impression/s, 1 Click/s), "
                  "3 extra Click senders for 20 s, twice"),
    "spike-x4-20s": (_spike(3, 20), "noisy lab traffic, clicks x4 for 20 s (2 windows), "
                     "2 sites x 2 spikes"),
    "spike-x8-10s": (_spike(7, 10), "noisy, clicks x8 for 10 s (1 window)"),
    "spike-x2-60s": (_spike(1, 60), "noisy, clicks x2 for 60 s (6 windows)"),
    "spike-x4-offset": (_spike(3, 20, offset_s=5), "noisy, clicks x4 for 20 s starting 5 s "
                        "into a window (3 windows)"),
    "level-shift": (_level_shift, "noisy, clicks x3 for 5 min (30 windows), then back"),
    "ctr-collapse": (_outage(CLICK, "ctr_collapse"), "noisy, no clicks for 2 min "
                     "(CTR 0 %, impressions go on)"),
    "impression-outage": (_outage(IMPRESSION, "impression_outage"), "noisy, no impressions "
                          "for 2 min (clicks go on: no CTR)"),
    "multi-site": (_multi_site, "4 sites of different volume and CTR; only shop misbehaves "
                   "(clicks x4 for 30 s)"),
    "late-out-of-order": (_late_out_of_order, "noisy, 20 % of records up to 4.5 s late, "
                          "1 % 10-15 min late (dropped), one lab spike"),
    "busy-x2-60s": (_busy_x2, "busy noisy site (10 impressions/s, CTR ~10 %), clicks x2 "
                    "for 60 s, twice"),
    "busy-ctr-half-3min": (_busy_ctr_half, "busy noisy site, half the clicks missing for "
                           "3 min (CTR halves), twice"),
    "dark-site": (_dark_site, "3 noisy lab sites; one sends nothing for 2 min"),
    "click-bot": (_click_bot, "site with 20 impressions/s (CTR ~10 %), a bot adds 3 clicks/s "
                  "for 30 s, twice"),
    "quiet-noisy": (_quiet_noisy, "noisy lab traffic, nothing happens"),
    "quiet-daily-cycle": (_quiet_daily_cycle, "a day's traffic cycle (20-100 %) compressed "
                          "into the scenario, CTR steady"),
    "quiet-slow-drift": (_quiet_slow_drift, "CTR drifts from 100 % to 50 % over the scenario"),
    "quiet-low-volume": (_quiet_low_volume, "3 sites with 2-5 impressions and 0-1 clicks per "
                         "window"),
    "quiet-daily-low-volume": (_quiet_daily_low, "2 low-volume sites (at most 5 and 3 "
                               "impressions per window) with a daily cycle (10-100 %)"),
}


def build_scenario(name: str, size: str = "full", seed: int = 0,
                   start: datetime = SUITE_START, records: bool = True) -> Scenario:
    """One scenario by name (see SCENARIOS), ``size`` "small" or "full", deterministic.
    ``records`` False: the ground truth only (sites, anomalies), no records."""
    if name not in SCENARIOS:
        raise ConfigError(f"Unknown scenario {name!r}", f"use one of {', '.join(SCENARIOS)}.")
    duration = _size_seconds(size)
    fn, description = SCENARIOS[name]
    start_ms = calendar.timegm(start.utctimetuple()) * 1000
    b = _Builder(name, description, start_ms, duration, seed, make_records=records)
    fn(b)
    return b.build()


def build_suite(size: str = "full", seed: int = 0,
                names: Iterable[str] | None = None, records: bool = True) -> Suite:
    """The scenario suite (all of SCENARIOS, or ``names``) at ``size``, deterministic.
    ``records`` False: the ground truth only (what evaluating a saved run needs)."""
    chosen = list(SCENARIOS) if names is None else list(names)
    return Suite([build_scenario(n, size, seed, records=records) for n in chosen], size=size,
                 seed=seed)


def _size_seconds(size: str) -> int:
    if size not in SIZES:
        raise ConfigError(f"Unknown suite size {size!r}",
                          f"use one of {', '.join(SIZES)} (seconds per scenario: "
                          f"{', '.join(f'{k}={v}' for k, v in SIZES.items())}).")
    return SIZES[size]
