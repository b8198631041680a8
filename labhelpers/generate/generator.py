"""Traffic generator: the lab's Kinesis Data Generator, as a library.

A ``Plan`` lists ``Sender``s (a template at a rate in records/s per site, optionally only for
a while: that is how a spike is written, optionally following a ``RateCurve`` over the day)
and the sites. Templates (``labhelpers.generate.templates``) are the lab's payloads or your own JSON
with Faker placeholders. One schedule turns a plan into records at exact ticks, sorted by
event time, and two modes share it:

- simulated time: ``timeline`` / ``timeline_batches`` / ``send_timeline`` render a whole
  timeline as fast as the CPU allows (replays, tests, benchmarks), deterministic for a seed;
- live: ``run_live`` / ``start_background`` send at real time, one batch per ``flush_s``,
  every record stamped with its scheduled event time (all of it already in the past). A
  live run can change a template's rate (``LiveHandle.set_rate``) and spike it.

Both stop after ``duration_s`` and/or ``total`` records, whichever comes first.

Sinks: ``StreamLogSink`` (the local on-disk stream), ``KinesisSink`` (PutRecords with
batching within the service limits, partition keys spread over shards, retries with backoff
and jitter, throttling counted, every failure kept with its reason), ``MemorySink`` (tests);
each backend gives its own (``labhelpers.backends``: ``input_sink``). A live run checks the
plan's rate against what the sink can take (Kinesis: 1,000 records/s and 1 MiB/s per shard)
before it starts.

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

from ..contracts import CLICK, DISCOVERY, IMPRESSION, MAX_RECORD_CHARS, MAX_SITE_CHARS
from ..errors import GeneratorError
from ..infra.config import LabConfig
from ..stream.log import StreamLogWriter
from .templates import RenderContext, Renderer, Template, resolve, sample_context

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
KINESIS_MAX_RECORD_CHARS = 1024 * 1024
# Write limits of one provisioned shard, and of a new on-demand stream (which then scales).
SHARD_RECORDS_PER_S = 1000
SHARD_BYTES_PER_S = 1024 * 1024
ON_DEMAND_RECORDS_PER_S = 4000
ON_DEMAND_BYTES_PER_S = 4 * 1024 * 1024
_THROTTLE_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException",
                   "LimitExceededException", "KMSThrottlingException"}
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
class RateCurve:
    """A rate multiplier that follows the time of day (or of any shorter period).

    points: ``(hour, multiplier)`` pairs, hour in [0, 24), multiplier >= 0; the multiplier is
    interpolated linearly between points, wrapping around midnight.
    period_s: length of the "day" in seconds (86400; e.g. 600 plays a day in ten minutes).
    utc_offset_h: the local time of the curve (event times are UTC).
    step_s: the rate is held for this long (default: a 1440th of the period, one minute of
    the day), so ticks stay exact within each step.
    """

    points: tuple[tuple[float, float], ...]
    period_s: float = 86400.0
    utc_offset_h: float = 0.0
    step_s: float | None = None

    def __post_init__(self) -> None:
        pts = tuple(sorted((float(h), float(m)) for h, m in self.points)) if isinstance(
            self.points, list | tuple) and all(
            isinstance(p, list | tuple) and len(p) == 2 and all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in p) for p in self.points) else ()
        if not pts or any(not 0 <= h < 24 or m < 0 for h, m in pts) or len(
                {h for h, _ in pts}) != len(pts) or max(m for _, m in pts) <= 0:
            raise GeneratorError(f"Parameter points of RateCurve must be distinct (hour, "
                                 f"multiplier) pairs, hour in [0, 24), multiplier >= 0 and "
                                 f"not all 0; got {self.points!r}",
                                 "use e.g. points=((0, 0.2), (9, 1.0), (20, 1.5)).")
        object.__setattr__(self, "points", pts)
        period = _check_number("period_s", self.period_s, allow_zero=False,
                               example="86400 (a day) or 600 (a day in ten minutes)")
        step = period / 1440 if self.step_s is None else _check_number(
            "step_s", self.step_s, allow_zero=False, example="60")
        if step < 0.01 or step > period:
            raise GeneratorError(f"Parameter step_s must be between 0.01 s and the period, "
                                 f"got {step:g}", "leave step_s=None (a 1440th of the period).")
        off = self.utc_offset_h
        if not (isinstance(off, int | float) and not isinstance(off, bool) and -24 < off < 24):
            raise GeneratorError(f"Parameter utc_offset_h must be hours between -24 and 24, "
                                 f"got {off!r}", "use e.g. utc_offset_h=-5 (New York).")
        object.__setattr__(self, "step_s", step)

    @property
    def step_ms(self) -> int:
        """The step in whole milliseconds."""
        return max(10, round(self.step_s * 1000))  # type: ignore[operator]

    @property
    def peak(self) -> float:
        """The largest multiplier."""
        return max(m for _, m in self.points)

    def at(self, epoch_s: float) -> float:
        """The multiplier at ``epoch_s`` (UTC seconds)."""
        hour = ((epoch_s + self.utc_offset_h * 3600) % self.period_s) / self.period_s * 24
        pts = self.points
        for (h0, m0), (h1, m1) in zip(pts, pts[1:], strict=False):
            if h0 <= hour < h1:
                return m0 + (m1 - m0) * (hour - h0) / (h1 - h0)
        # between the last point and the first one of the next day
        (h0, m0), (h1, m1) = pts[-1], (pts[0][0] + 24, pts[0][1])
        if hour < pts[0][0]:
            hour += 24
        return m0 if h1 == h0 else m0 + (m1 - m0) * (hour - h0) / (h1 - h0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``curve_from`` reads it back)."""
        return {"points": [list(p) for p in self.points], "period_s": self.period_s,
                "utc_offset_h": self.utc_offset_h, "step_s": self.step_s}


# A web site's day, UTC: quiet at night, busy at lunch, peak in the evening.
CURVES: dict[str, RateCurve] = {
    "diurnal": RateCurve(((0, 0.35), (4, 0.15), (8, 0.6), (12, 1.1), (15, 0.9), (20, 1.5),
                          (23, 0.7))),
}


def curve_from(spec: RateCurve | str | Mapping[str, Any] | None) -> RateCurve | None:
    """A RateCurve from itself, a name in CURVES, a dict (``RateCurve.to_dict``) or JSON text."""
    if spec is None or isinstance(spec, RateCurve):
        return spec
    if isinstance(spec, str):
        if spec in CURVES:
            return CURVES[spec]
        try:
            spec = json.loads(spec)
        except ValueError:
            raise GeneratorError(f"Unknown curve {spec!r}",
                                 f"use one of {', '.join(CURVES)} or JSON like "
                                 '{"points": [[0, 0.2], [20, 1.5]], "period_s": 600}.') from None
    if isinstance(spec, Mapping):
        try:
            return RateCurve(**{k: (tuple(map(tuple, v)) if k == "points" else v)
                                for k, v in spec.items()})
        except TypeError as err:
            raise GeneratorError(f"Bad curve {dict(spec)!r}: {err}",
                                 "use keys points, period_s, utc_offset_h, step_s.") from None
    raise GeneratorError(f"Parameter curve must be a RateCurve, a name or a dict, got {spec!r}",
                         f"use e.g. curve={next(iter(CURVES))!r}.")


@dataclass(frozen=True)
class Sender:
    """One KDG-style sender: a template at ``rate`` records/s for every site of the plan.

    payload: a template or its name: the lab's ``Click``, ``Impression``,
        ``DiscoveryKinesisTest``, the built-in ``ClickDetail``/``ImpressionDetail``, or one of
        yours (pass the Template, or its name with ``template=``).
    rate: records per second per site and per copy (> 0; above 1000/s several share a ms).
    start_s: offset from the start of the timeline when this sender starts.
    seconds: how long it sends; None = until the end.
    count: identical copies (the lab's "three more Click senders" is count=3).
    fields: constant extra fields added to every record after the template's.
    curve: a RateCurve (or a name in CURVES): the rate follows the time of day.
    template: the Template (set from ``payload``; give it to use a template of your own).
    """

    payload: str | Template
    rate: float = 1.0
    start_s: float = 0.0
    seconds: float | None = None
    count: int = 1
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    curve: RateCurve | str | None = None
    template: Template | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        tpl = self.payload if isinstance(self.payload, Template) else self.template
        if tpl is None:
            tpl = resolve(self.payload)  # type: ignore[arg-type]
        elif not isinstance(tpl, Template) or (
                isinstance(self.payload, str) and self.payload != tpl.name):
            raise GeneratorError(f"Parameter template {tpl!r} does not match payload "
                                 f"{self.payload!r}", "pass the Template as payload.")
        object.__setattr__(self, "payload", tpl.name)
        object.__setattr__(self, "template", tpl)
        object.__setattr__(self, "curve", curve_from(self.curve))
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
    def peak_rate(self) -> float:
        """Records/s per site at the busiest time (rate x copies x the curve's peak)."""
        return self.rate * self.count * (self.curve.peak if self.curve else 1.0)  # type: ignore

    @property
    def end_s(self) -> float | None:
        """Offset when this sender stops, None if it runs to the end."""
        return None if self.seconds is None else self.start_s + self.seconds

    def describe(self) -> str:
        """Short text for messages, e.g. ``Click x3 at 1/s from 60 s for 20 s``."""
        times = f" x{self.count}" if self.count > 1 else ""
        span = "" if self.seconds is None else f" from {self.start_s:g} s for {self.seconds:g} s"
        curve = " on a curve" if self.curve else ""
        return f"{self.payload}{times} at {self.rate:g}/s{curve}{span}"


def spike(start_s: float, seconds: float = 20, payload: str | Template = CLICK,
          extra_senders: int = 3, rate: float = 1.0) -> Sender:
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

    def with_spike(self, start_s: float, seconds: float = 20, payload: str | Template = CLICK,
                   extra_senders: int = 3, rate: float | None = None) -> Plan:
        """A copy with one more spike: ``extra_senders`` more copies of ``payload`` for
        ``seconds`` from ``start_s``, multiplying its rate by ``1 + extra_senders``.

        The copies take the rate, curve and fields of the plan's open-ended sender of that
        payload (``rate`` overrides; 1.0 when the plan has none), as more browser tabs would.
        """
        extra = spike_sender(self.senders, payload, start_s, seconds, extra_senders, rate)
        return replace(self, senders=self.senders + (extra,))

    def peak_rate(self) -> float:
        """Records/s of the whole plan at its busiest moment (all sites, curves at peak)."""
        times = {s.start_s for s in self.senders}
        best = 0.0
        for t in times:
            active = [s for s in self.senders
                      if s.start_s <= t and (s.end_s is None or t < s.end_s)]
            best = max(best, sum(s.peak_rate for s in active))
        return best * len(self.sites)

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


def spike_sender(senders: Iterable[Sender], payload: str | Template, start_s: float,
                 seconds: float, extra_senders: int = 3, rate: float | None = None) -> Sender:
    """The sender of a spike: copies of the open-ended sender of ``payload`` in ``senders``."""
    name = payload.name if isinstance(payload, Template) else payload
    base = next((s for s in senders if s.payload == name and s.seconds is None), None)
    if base is None:
        return Sender(payload, rate=1.0 if rate is None else rate, start_s=start_s,
                      seconds=seconds, count=extra_senders)
    return replace(base, rate=base.rate if rate is None else rate, start_s=start_s,
                   seconds=seconds, count=extra_senders)


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
    # streams on a RateCurve: the rate changes every curve step, so ticks are found from the
    # running tick position p (ticks since start, as a real number) instead of i / rate.
    curve: RateCurve | None = None
    rate: float = 0.0
    end_ms: int | None = None  # curve streams end by time, not by tick count
    t_ms: int = 0  # how far p has been computed
    p: float = 0.0


class _Schedule:
    """Every (sender copy, site) is a stream ticking at base + floor(i * 1000 / rate) ms.

    ``render(until_ms)`` returns the ticks in [rendered_ms, until_ms) of all streams, sorted;
    calls must move forward, and streams added later never start before ``rendered_ms``,
    so consecutive batches are in time order. Streams on a RateCurve tick at the same exact
    spacing within each step of the curve.
    """

    def __init__(self, plan: Plan, start_ms: int, end_ms: int | None, seed: int | None,
                 pool_size: int | None = None) -> None:
        self.plan = plan
        self.end_ms = end_ms
        self.rendered_ms = start_ms
        self.last_ms: int | None = None  # event time of the last record rendered
        # seed=None: every sender in lockstep at exact multiples of 1/rate; a seed shifts each
        # stream by a fixed phase in [0, 1/rate), like browser tabs started at different moments.
        self._rng = random.Random(seed) if seed is not None else None
        self._seed = seed
        self._pool_size = pool_size
        self._ctx: RenderContext | None = None
        self.streams: list[_Stream] = []
        self._active: list[_Stream] = []
        self.heads: list[str] = []
        self.tails: list[str] = []
        self.sites: list[str] = []
        self.templates: list[dict[str, Any] | None] = []
        self.renderers: list[Renderer | None] = []
        self._dynamic = False
        # open-ended senders per template name (what set_rate changes), with their streams
        self.open: dict[str, list[tuple[Sender, list[_Stream]]]] = {}
        self.known: dict[str, Sender] = {}
        for sender in plan.senders:
            self.add(sender, start_ms + round(sender.start_s * 1000))

    def _context(self) -> RenderContext:
        if self._ctx is None:
            kw = {} if self._pool_size is None else {"pool_size": self._pool_size}
            self._ctx = RenderContext(self._seed, **kw)
        return self._ctx

    def add(self, sender: Sender, at_ms: int) -> list[_Stream]:
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
        tpl = sender.template
        assert tpl is not None  # set by Sender.__post_init__
        curve = sender.curve
        assert curve is None or isinstance(curve, RateCurve)
        added: list[_Stream] = []
        for _ in range(sender.count):
            for site in self.plan.sites:
                phase = self._rng.randrange(period_ms) if self._rng and period_ms > 1 else 0
                st = _Stream(len(self.streams), at_ms + phase, rate.numerator, rate.denominator, n)
                if curve is not None:
                    st.curve, st.rate, st.n = curve, sender.rate, None
                    st.t_ms = st.base_ms
                    if sender.seconds is not None:
                        st.end_ms = at_ms + round(sender.seconds * 1000)
                if tpl.is_constant:
                    record = tpl.constant_record(site, sender.fields)
                    head, tail = to_line(record).split('"event_time":""', 1)
                    self.heads.append(head + '"event_time":"')
                    self.tails.append('"' + tail)
                    self.templates.append(record)
                    self.renderers.append(None)
                else:
                    self.heads.append("")
                    self.tails.append("")
                    self.templates.append(None)
                    self.renderers.append(tpl.bind(site, self._context(), sender.fields))
                    self._dynamic = True
                self.sites.append(site)
                self.streams.append(st)
                self._active.append(st)
                added.append(st)
        self.known.setdefault(sender.payload, sender)
        if sender.seconds is None:
            self.open.setdefault(sender.payload, []).append((sender, added))
        return added

    def retire(self, streams: Iterable[_Stream], at_ms: int) -> None:
        """End ``streams`` at ``at_ms`` (not before rendered_ms): no tick at or after it."""
        at_ms = max(at_ms, self.rendered_ms)
        for st in streams:
            if st.curve is not None:
                st.end_ms = at_ms if st.end_ms is None else min(st.end_ms, at_ms)
                continue
            m = 1000 * st.den
            cut = max(st.i, -(-(at_ms - st.base_ms) * st.num // m))  # ticks before at_ms
            st.n = cut if st.n is None else min(st.n, cut)

    def rates(self) -> dict[str, float]:
        """Records/s per site of each template's open-ended senders (0: paused)."""
        out = {name: 0.0 for name in self.known}
        for name, groups in self.open.items():
            out[name] = sum(s.rate * s.count for s, _ in groups)
        return out

    def set_rate(self, name: str, rate: float, at_ms: int,
                 library: Mapping[str, Template] | None = None) -> None:
        """From ``at_ms`` on, send template ``name`` at ``rate`` records/s per site (0 pauses
        it); spikes already running are left alone."""
        groups = self.open.pop(name, [])
        for _, streams in groups:
            self.retire(streams, at_ms)
        if rate > 0:
            base = groups[0][0] if groups else self.known.get(name)
            if base is None:
                base = Sender(resolve(name, library))
            self.add(replace(base, rate=rate, start_s=0.0, seconds=None, count=1), at_ms)
        elif name not in self.known:
            self.known[name] = Sender(resolve(name, library))

    def load(self, at_s: float) -> float:
        """Records/s (all sites) of the streams still sending at ``at_s`` (epoch seconds)."""
        at_ms = round(at_s * 1000)
        total = 0.0
        for st in self._active:
            if st.curve is not None:
                if st.end_ms is None or at_ms < st.end_ms:
                    total += st.rate * st.curve.at(at_s)
            elif st.n is None or st.i < st.n:
                total += st.num / st.den
        return total

    def _curve_keys(self, st: _Stream, lo: int, until_ms: int, keys: list[int]) -> bool:
        """Append the curve stream's ticks before ``until_ms``; True when it has ended."""
        curve = st.curve
        assert curve is not None
        step = curve.step_ms
        end = until_ms if st.end_ms is None else min(until_ms, st.end_ms)
        t, p, i, idx = st.t_ms, st.p, st.i, st.index
        while t < end:
            seg_end = (t // step + 1) * step
            b = min(seg_end, end)
            # the multiplier of the whole step (its midpoint), whatever the batch boundaries
            rho = st.rate * curve.at((seg_end - step / 2) / 1000) / 1000  # ticks per ms
            if rho > 0:
                tick = t + (i - p) / rho
                while tick < b:
                    keys.append(((max(int(tick), t) - lo) << _STREAM_BITS) | idx)
                    i += 1
                    tick = t + (i - p) / rho
                p += rho * (b - t)
            t = b
        st.t_ms, st.p, st.i = max(t, st.t_ms), p, i
        return st.end_ms is not None and st.t_ms >= st.end_ms

    def _keys(self, until_ms: int) -> tuple[int, list[int]]:
        lo = self.rendered_ms
        if self.end_ms is not None:
            until_ms = min(until_ms, self.end_ms)
        keys: list[int] = []
        if until_ms <= lo:
            return lo, keys
        done = False
        for st in self._active:
            if st.curve is not None:
                done = self._curve_keys(st, lo, until_ms, keys) or done
                continue
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
            self._active = [st for st in self._active if not self._ended(st)]
        keys.sort()
        self.rendered_ms = until_ms
        if keys:
            self.last_ms = lo + (keys[-1] >> _STREAM_BITS)
        return lo, keys

    @staticmethod
    def _ended(st: _Stream) -> bool:
        if st.curve is not None:
            return st.end_ms is not None and st.t_ms >= st.end_ms
        return st.n is not None and st.i >= st.n

    @property
    def finished(self) -> bool:
        """True when no stream can send any more."""
        return not self._active

    def render(self, until_ms: int, limit: int | None = None) -> Batch:
        """The lines due in [rendered_ms, until_ms) (at most ``limit``, the earliest)."""
        lo, keys = self._keys(until_ms)
        if limit is not None and len(keys) > limit:
            del keys[limit:]
        heads, tails, sites = self.heads, self.tails, self.sites
        lines: list[str] = []
        pkeys: list[str] = []
        next_sec_ms = -1
        prefix = ""
        if not self._dynamic:
            for k in keys:
                ms = lo + (k >> _STREAM_BITS)
                idx = k & _STREAM_MASK
                if ms >= next_sec_ms:  # keys are sorted, so ms never goes back
                    sec = ms // 1000
                    prefix, next_sec_ms = _second_prefix(sec), (sec + 1) * 1000
                lines.append(heads[idx] + prefix + _MS_SUFFIX[ms % 1000] + tails[idx])
                pkeys.append(sites[idx])
            return Batch(lo, self.rendered_ms, lines, pkeys)
        renderers = self.renderers
        for k in keys:
            ms = lo + (k >> _STREAM_BITS)
            idx = k & _STREAM_MASK
            if ms >= next_sec_ms:
                sec = ms // 1000
                prefix, next_sec_ms = _second_prefix(sec), (sec + 1) * 1000
            render = renderers[idx]
            if render is None:
                lines.append(heads[idx] + prefix + _MS_SUFFIX[ms % 1000] + tails[idx])
            else:
                lines.append(render(ms, prefix + _MS_SUFFIX[ms % 1000]))
            pkeys.append(sites[idx])
        return Batch(lo, self.rendered_ms, lines, pkeys)

    def render_records(self, until_ms: int, limit: int | None = None) -> list[dict[str, Any]]:
        """The records due in [rendered_ms, until_ms), as dicts (at most ``limit``)."""
        if self._dynamic:
            return [json.loads(ln) for ln in self.render(until_ms, limit).lines]
        lo, keys = self._keys(until_ms)
        if limit is not None and len(keys) > limit:
            del keys[limit:]
        templates = self.templates
        out: list[dict[str, Any]] = []
        next_sec_ms = -1
        prefix = ""
        for k in keys:
            ms = lo + (k >> _STREAM_BITS)
            if ms >= next_sec_ms:
                sec = ms // 1000
                prefix, next_sec_ms = _second_prefix(sec), (sec + 1) * 1000
            rec = templates[k & _STREAM_MASK].copy()  # type: ignore[union-attr]
            rec["event_time"] = prefix + _MS_SUFFIX[ms % 1000]
            out.append(rec)
        return out


def _timeline_bounds(plan: Plan, start: datetime | float, duration_s: float | None,
                     total: int | None = None) -> tuple[int, int | None]:
    if duration_s is None:
        duration_s = plan.duration_s
    start_ms = _to_ms(start)
    if duration_s is None:
        if total is None:
            raise GeneratorError("Parameter duration_s is missing and the plan has no duration",
                                 "pass duration_s=60 (seconds) or total=1000 (records), or "
                                 "build the plan with duration_s.")
        return start_ms, None
    dur = _check_duration(plan, duration_s)
    return start_ms, start_ms + round(dur * 1000)


def _check_total(total: Any) -> int | None:
    if total is None:
        return None
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise GeneratorError(f"Parameter total must be a whole number >= 1, got {total!r}",
                             "use e.g. total=1000 (records), or None for no limit.")
    return total


def _check_batch_s(batch_s: Any) -> int:
    return max(1, round(_check_number("batch_s", batch_s, allow_zero=False, example="1.0") * 1000))


def _steps(sched: _Schedule, start_ms: int, end_ms: int | None, step: int) -> Iterator[int]:
    until = start_ms
    while end_ms is None or until < end_ms:
        if sched.finished:
            return
        until += step
        yield until if end_ms is None else min(until, end_ms)


def timeline(plan: Plan, start: datetime | float, duration_s: float | None = None,
             seed: int | None = 0, total: int | None = None) -> Iterator[dict[str, Any]]:
    """Render the plan's records from ``start`` for ``duration_s`` (default: the plan's), fast.

    Records are sorted by event time; the same arguments always give the same records
    (template values included). ``seed`` sets each sender's phase within its period (None:
    all senders tick in lockstep at exactly start + i / rate). Counts per 10-s window aligned
    with ``start`` do not depend on the seed. ``total`` stops after that many records (the
    earliest); with ``total`` the duration may be left out.
    """
    total = _check_total(total)
    start_ms, end_ms = _timeline_bounds(plan, start, duration_s, total)
    sched = _Schedule(plan, start_ms, end_ms, seed)
    left = total
    for until in _steps(sched, start_ms, end_ms, 1000):
        recs = sched.render_records(until, left)
        yield from recs
        if left is not None:
            left -= len(recs)
            if not left:
                return


def timeline_batches(plan: Plan, start: datetime | float, duration_s: float | None = None,
                     seed: int | None = 0, batch_s: float = 1.0,
                     total: int | None = None) -> Iterator[Batch]:
    """The same timeline as ``timeline``, as batches of lines of ``batch_s`` event time each."""
    total = _check_total(total)
    start_ms, end_ms = _timeline_bounds(plan, start, duration_s, total)
    step = _check_batch_s(batch_s)
    sched = _Schedule(plan, start_ms, end_ms, seed)
    left = total
    for until in _steps(sched, start_ms, end_ms, step):
        batch = sched.render(until, left)
        if batch.lines:
            yield batch
        if left is not None:
            left -= len(batch.lines)
            if not left:
                return


def send_timeline(plan: Plan, sink: Sink, start: datetime | float,
                  duration_s: float | None = None, seed: int | None = 0,
                  batch_s: float = 1.0, total: int | None = None) -> int:
    """Send a whole simulated timeline to ``sink`` as fast as it takes it; returns records sent.

    With a ``StreamLogSink`` this writes one file per ``batch_s`` of event time, in order.
    """
    n = 0
    for batch in timeline_batches(plan, start, duration_s, seed, batch_s, total):
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


# ---------------------------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------------------------


@dataclass
class SinkStats:
    """Counters of a sink. Nothing is dropped silently: every record sent ends up either
    acknowledged or failed (with its reason), and ``sent == acknowledged + failed`` once a
    send returns.

    sent: records handed to the sink. acknowledged: records the target confirmed.
    retried: re-sends of records the target rejected for a reason worth retrying.
    throttled: rejections for throughput (Kinesis ProvisionedThroughputExceeded and kin).
    failed: records given up on; ``failures`` keeps the last ``FAILURES_KEPT`` of them with
    their reason (the sink's ``failure_log``, if set, keeps them all).
    failure_reasons: every rejection by reason, retried or not.
    """

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    throttled: int = 0
    failed: int = 0
    batches: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> SinkStats:
        """A snapshot (the live loop hands these to other threads)."""
        return replace(self, failure_reasons=Counter(self.failure_reasons),
                       failures=list(self.failures))


FAILURES_KEPT = 50


@dataclass(frozen=True)
class Capacity:
    """What a sink can take: records/s and bytes/s (data plus partition key).

    strict: a hard limit (provisioned shards) rather than a starting point (on-demand).
    """

    records_per_s: float
    bytes_per_s: float
    what: str
    fix: str
    strict: bool = True


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

    ``target`` is a LabConfig (its input stream's folder) or a folder. A failed write (disk
    full, folder gone) counts the batch as failed with the reason, then raises.
    """

    def __init__(self, target: LabConfig | Path | str) -> None:
        if isinstance(target, LabConfig):
            target = target.stream_dir(target.input_stream)
        self.writer = StreamLogWriter(target)
        self.directory = self.writer.directory
        self.stats = SinkStats()

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Append ``lines`` as one complete file (keys are not needed on disk)."""
        if not lines:
            return
        self.stats.sent += len(lines)
        try:
            self.writer.append(lines)
        except OSError as err:
            reason = type(err).__name__
            self.stats.failed += len(lines)
            self.stats.failure_reasons[reason] += len(lines)
            self.stats.last_error = f"{reason}: {err}"
            _keep_failure(self.stats, reason, str(err), lines[0], len(lines))
            raise GeneratorError(f"Cannot write the stream log in {self.directory}: {err}",
                                 "free disk space or check the folder, then start again."
                                 ) from None
        self.stats.acknowledged += len(lines)
        self.stats.batches += 1

    def capacity(self) -> Capacity | None:
        """None: the stream log takes what one process can render (see bench/)."""
        return None


def _keep_failure(stats: SinkStats, reason: str, message: str, record: str,
                  count: int = 1) -> dict[str, Any]:
    entry = {"reason": reason, "message": message[:300], "record": record[:300],
             "count": count}
    stats.failures.append(entry)
    del stats.failures[:-FAILURES_KEPT]
    return entry


def _partition_key(line: str) -> str:
    try:
        site = json.loads(line).get("site")
    except (ValueError, AttributeError):
        site = None
    return site[:256] if isinstance(site, str) and site else "unknown"


class KinesisSink:
    """PutRecords into a Kinesis stream (``cfg.input_stream`` unless ``stream_name`` is given).

    Requests hold at most 500 records and 5 MiB. The partition key is the site; with
    ``spread=True`` (default) and several shards, records also get an ExplicitHashKey that
    goes round the shards, so one busy site does not pin one shard. Records the service
    rejects (throttling, internal failure) are sent again after an exponential backoff with
    jitter, up to ``max_attempts`` sends per record, then counted as failed with their reason
    (and written to ``failure_log``, a JSON-lines file, if given). ``client`` and ``sleep``
    can be injected (tests). ``check`` asks the stream for its shards first (a missing stream
    is an error that says how to create it).
    """

    def __init__(self, cfg: LabConfig | None = None, *, client: Any = None,
                 stream_name: str | None = None, max_attempts: int = 8,
                 base_delay_s: float = 0.1, max_delay_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 check: bool = True, spread: bool = True,
                 failure_log: Path | str | None = None) -> None:
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
        self.failure_log = Path(failure_log) if failure_log else None
        self.shards: int | None = None
        self.mode: str | None = None
        self._hash_keys: list[str] = []
        self._next_shard = 0
        if check:
            try:
                desc = self._call(self.client.describe_stream_summary,
                                  StreamName=self.stream_name)["StreamDescriptionSummary"]
                self.shards = desc.get("OpenShardCount")
                self.mode = desc.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
            except _Retry:
                pass  # throttled, so the stream exists; sending will retry
            if spread and (self.shards or 0) > 1:
                self._hash_keys = self._shard_hash_keys()

    def _shard_hash_keys(self) -> list[str]:
        # The middle of each open shard's hash key range: one ExplicitHashKey per shard.
        try:
            shards = self._call(self.client.list_shards, StreamName=self.stream_name,
                                ShardFilter={"Type": "AT_LATEST"})["Shards"]
        except (_Retry, GeneratorError):
            return []  # no ListShards permission: partition keys alone decide
        keys = []
        for sh in shards:
            rng = sh["HashKeyRange"]
            lo, hi = int(rng["StartingHashKey"]), int(rng["EndingHashKey"])
            keys.append(str((lo + hi) // 2))
        return keys

    def capacity(self) -> Capacity | None:
        """What the stream can take (None when its shards are unknown)."""
        if self.mode == "ON_DEMAND":
            return Capacity(ON_DEMAND_RECORDS_PER_S, ON_DEMAND_BYTES_PER_S,
                            f"on-demand Kinesis stream {self.stream_name!r} (at first; it "
                            "scales up with the traffic)", "wait for it to scale", strict=False)
        if not self.shards:
            return None
        n = self.shards
        return Capacity(n * SHARD_RECORDS_PER_S, n * SHARD_BYTES_PER_S,
                        f"Kinesis stream {self.stream_name!r} with {n} shard(s) "
                        f"({SHARD_RECORDS_PER_S:,} records/s and 1 MiB/s per shard)",
                        f"add shards (aws kinesis update-shard-count --stream-name "
                        f"{self.stream_name} --target-shard-count N --scaling-type "
                        "UNIFORM_SCALING)")

    def _missing(self) -> GeneratorError:
        return GeneratorError(
            f"Kinesis stream {self.stream_name!r} does not exist (region {self.region})",
            "deploy the lab's stack first (notebook 01_deploy, or `python -m labhelpers "
            "deploy`), and check that the config's prefix and region match it; or create the "
            f"stream yourself: aws kinesis create-stream --stream-name {self.stream_name} "
            f"--shard-count 1 --region {self.region}.")

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

    def _fail(self, entries: Sequence[dict[str, Any]], reason: str, message: str) -> None:
        """Give up on ``entries``: count them, keep the reason, log every record."""
        self.stats.failed += len(entries)
        self.stats.last_error = f"{reason}: {message}"
        if not entries:
            return
        _keep_failure(self.stats, reason, message, entries[0]["Data"].decode("utf-8", "replace"),
                      len(entries))
        if self.failure_log is not None:
            self.failure_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.failure_log, "a", encoding="utf-8") as fh:
                for e in entries:
                    fh.write(to_line({"reason": reason, "message": message,
                                      "record": e["Data"].decode("utf-8", "replace")}) + "\n")

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Send ``lines`` (partition keys ``keys``, default: each line's site)."""
        if keys is None:
            keys = [_partition_key(ln) for ln in lines]
        entries: list[dict[str, Any]] = []
        too_large: list[dict[str, Any]] = []
        hash_keys, n_shards = self._hash_keys, len(self._hash_keys)
        for line, key in zip(lines, keys, strict=True):
            data = line.encode("utf-8")
            key = key or "unknown"
            self.stats.sent += 1
            entry = {"Data": data, "PartitionKey": key}
            if len(data) + len(key.encode("utf-8")) > KINESIS_MAX_RECORD_CHARS:
                too_large.append(entry)
                continue
            if n_shards:
                entry["ExplicitHashKey"] = hash_keys[self._next_shard]
                self._next_shard = (self._next_shard + 1) % n_shards
            entries.append(entry)
        if too_large:
            self.stats.failure_reasons["RecordTooLarge"] += len(too_large)
            self._fail(too_large, "RecordTooLarge", "data plus partition key over 1 MiB")
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
                    code = r["ErrorCode"]
                    self.stats.failure_reasons[code] += 1
                    if code in _THROTTLE_CODES:
                        self.stats.throttled += 1
                    self.stats.last_error = f"{code}: {r.get('ErrorMessage', '')}"
                self.stats.acknowledged += len(entries) - len(failed)
                entries = [e for e, _ in failed]
                message = failed[-1][1].get("ErrorMessage", "") if failed else ""
                code = failed[-1][1]["ErrorCode"] if failed else ""
            except _Retry as err:
                code, message = err.code, "the whole request was rejected"
                self.stats.failure_reasons[code] += len(entries)
                if code in _THROTTLE_CODES:
                    self.stats.throttled += len(entries)
                self.stats.last_error = f"{code} (whole request)"
            except GeneratorError as err:  # not worth retrying: say so for every record
                self.stats.failure_reasons["RequestFailed"] += len(entries)
                self._fail(entries, "RequestFailed", err.what)
                raise
            if not entries:
                return
            if attempt >= self.max_attempts:
                self._fail(entries, code, f"{message} (gave up after {attempt} attempts)")
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


# ---------------------------------------------------------------------------------------------
# Live mode
# ---------------------------------------------------------------------------------------------

_MIB = 1024 * 1024
HISTORY_POINTS = 600  # samples kept in LiveStats.history (one per flush: 10 min at 1 s)


def _record_bytes(sender: Sender, site: str) -> float:
    """Average bytes of one record of ``sender`` for ``site`` on the wire (data + key)."""
    tpl = sender.template
    assert tpl is not None
    ts = "2026-01-01T00:00:00.000Z"
    if tpl.is_constant:
        rec = tpl.constant_record(site, sender.fields)
        rec["event_time"] = ts
        size = float(len(to_line(rec).encode("utf-8")))
    else:
        render = tpl.bind(site, sample_context(), sender.fields)
        size = sum(len(render(0, ts).encode("utf-8")) for _ in range(20)) / 20
    return size + len(site.encode("utf-8"))


def plan_load(plan: Plan) -> tuple[float, float]:
    """The plan's peak load: records/s and bytes/s (data plus partition key), all sites."""
    records = plan.peak_rate()
    per_site = sum(s.peak_rate for s in plan.senders)
    if not per_site:
        return 0.0, 0.0
    site = max(plan.sites, key=len)
    size = sum(s.peak_rate * _record_bytes(s, site) for s in plan.senders) / per_site
    return records, records * size


def check_capacity(plan: Plan, sink: Sink, *, over_limit: bool = False) -> str | None:
    """Compare the plan's peak load with what ``sink`` can take.

    Returns None when it fits, a warning when it does not but ``over_limit`` is set (or the
    limit is not a hard one); raises GeneratorError with the limit otherwise.
    """
    capacity = getattr(sink, "capacity", None)
    cap = capacity() if callable(capacity) else None
    if cap is None:
        return None
    records, size = plan_load(plan)
    if records <= cap.records_per_s and size <= cap.bytes_per_s:
        return None
    what = (f"The plan sends up to {records:,.0f} records/s ({size / _MIB:.2f} MiB/s) but "
            f"{cap.what} takes {cap.records_per_s:,.0f} records/s and "
            f"{cap.bytes_per_s / _MIB:g} MiB/s")
    if cap.strict and not over_limit:
        raise GeneratorError(what, f"lower the rates, or {cap.fix}; or pass over_limit=True "
                                   "to send anyway (records over the limit are throttled and "
                                   "retried).")
    return f"{what}: records over the limit are throttled and retried"


@dataclass
class LiveStats:
    """Counters of a live run; ``sink`` is a snapshot of the sink's own counters.

    rates: records/s per site of each template now (0: paused). history: one
    ``[elapsed_s, records, acknowledged]`` sample per flush (the last HISTORY_POINTS), from
    which the achieved rate is drawn. warning: the plan is above what the sink takes, or the
    generator is falling behind.
    """

    records: int = 0
    batches: int = 0
    spikes: int = 0
    elapsed_s: float = 0.0
    behind_ms: int = 0  # how late the last batch left after its last scheduled record
    last_event_time: str | None = None
    running: bool = False
    error: str | None = None
    total: int | None = None
    rates: dict[str, float] = field(default_factory=dict)
    warning: str | None = None
    history: list[list[float]] = field(default_factory=list)
    sink: SinkStats = field(default_factory=SinkStats)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _LiveRun:
    def __init__(self, plan: Plan, sink: Sink, duration_s: float | None,
                 stop_event: threading.Event | None, seed: int | None, flush_s: float,
                 total: int | None = None, over_limit: bool = False,
                 library: Mapping[str, Template] | None = None) -> None:
        if duration_s is None:
            duration_s = plan.duration_s
        self.duration_s = None if duration_s is None else _check_duration(plan, duration_s)
        self.total = _check_total(total)
        self.flush_ms = max(10, round(_check_number("flush_s", flush_s, allow_zero=False,
                                                    example="1.0 (seconds)") * 1000))
        self.plan, self.sink, self.seed = plan, sink, seed
        self.library = dict(library or {})
        self.stop_event = stop_event or threading.Event()
        self._ops: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self.stats = LiveStats(total=self.total)
        self._capacity_warning = check_capacity(plan, sink, over_limit=over_limit)
        self.stats.warning = self._capacity_warning
        self.stats.rates = {s.payload: 0.0 for s in plan.senders}
        for s in plan.senders:
            if s.seconds is None:
                self.stats.rates[s.payload] += s.rate * s.count

    def _template(self, payload: str | Template) -> Template:
        names = {s.payload: s.template for s in self.plan.senders}
        if isinstance(payload, str) and payload in names:
            return names[payload]  # type: ignore[return-value]
        return resolve(payload, self.library)

    def spike(self, payload: str | Template, extra_senders: int, seconds: float,
              rate: float | None) -> None:
        tpl = self._template(payload)
        Sender(tpl, rate=1.0 if rate is None else rate, seconds=seconds,
               count=extra_senders)  # check the values here, in the caller's thread
        with self._lock:
            self._ops.append(("spike", tpl, extra_senders, seconds, rate, _now_ms()))

    def set_rate(self, payload: str | Template, rate: float) -> None:
        tpl = self._template(payload)
        _check_number("rate", rate, allow_zero=True, example="2.0 (records/s per site; 0 "
                      "pauses the template)")
        if rate and not MIN_RATE <= rate <= MAX_RATE:
            raise GeneratorError(f"Parameter rate must be 0 or between {MIN_RATE:g} and "
                                 f"{MAX_RATE:g} records/s per site, got {rate:g}",
                                 "use e.g. rate=2.0.")
        self.library.setdefault(tpl.name, tpl)
        with self._lock:
            self._ops.append(("rate", tpl.name, float(rate), _now_ms()))
            # shown at once; the schedule applies it at the next flush
            self.stats.rates = {**self.stats.rates, tpl.name: float(rate)}

    def _apply(self, sched: _Schedule, ops: list[tuple[Any, ...]]) -> None:
        st = self.stats
        for op in ops:
            if op[0] == "spike":
                _, tpl, extra, seconds, rate, asked_ms = op
                senders = [s for groups in sched.open.values() for s, _ in groups]
                senders += list(sched.known.values())
                sched.add(spike_sender(senders, tpl, 0.0, seconds, extra, rate), asked_ms)
                st.spikes += 1
            else:
                _, name, rate, asked_ms = op
                sched.set_rate(name, rate, asked_ms, self.library)
        st.rates = sched.rates()
        cap_fn = getattr(self.sink, "capacity", None)
        cap = cap_fn() if callable(cap_fn) else None
        load = sched.load(_now_ms() / 1000)
        if cap is not None and load > cap.records_per_s:
            self._capacity_warning = (f"Now sending {load:,.0f} records/s, above the "
                                      f"{cap.records_per_s:,.0f} records/s that {cap.what} "
                                      "takes: records over it are throttled and retried")
        elif ops and not any(op[0] == "spike" for op in ops):
            self._capacity_warning = None

    def run(self, progress: bool) -> LiveStats:
        start_ms = _now_ms()
        end_ms = None if self.duration_s is None else start_ms + round(self.duration_s * 1000)
        sched = _Schedule(self.plan, start_ms, end_ms, self.seed)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = self.plan.expected_records(self.duration_s)
            if self.total is not None:
                total = min(total, self.total)
            bar = tqdm(total=None if total == float("inf") else round(total), unit="rec",
                       desc="sending", dynamic_ncols=True)
        st = self.stats
        st.running = True
        left = self.total
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
                    ops, self._ops = self._ops, []
                if ops:
                    self._apply(sched, ops)  # never before what is already sent
                # everything due up to now, so a slow sink makes bigger batches, not drift
                batch = sched.render(now, left)
                if batch.lines:
                    self.sink.send(batch.lines, batch.keys)
                    st.records += len(batch.lines)
                    st.batches += 1
                    if left is not None:
                        left -= len(batch.lines)
                if sched.last_ms is not None:
                    st.last_event_time = event_time_ms(sched.last_ms)
                after = _now_ms()
                st.behind_ms = max(0, after - batch.end_ms)
                st.elapsed_s = (after - start_ms) / 1000
                st.sink = self.sink.stats.copy()
                st.history.append([st.elapsed_s, st.records, st.sink.acknowledged])
                del st.history[:-HISTORY_POINTS]
                st.warning = self._behind_warning() or self._capacity_warning
                if bar is not None:
                    bar.update(len(batch.lines))
                    bar.set_postfix(acked=st.sink.acknowledged, retried=st.sink.retried,
                                    failed=st.sink.failed, refresh=False)
                if stopped or left == 0 or (end_ms is not None and sched.rendered_ms >= end_ms):
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

    def _behind_warning(self) -> str | None:
        st = self.stats
        if st.behind_ms <= max(2000, 2 * self.flush_ms):
            return None
        hist = [h for h in st.history if h[0] >= st.elapsed_s - 10] or st.history
        span = hist[-1][0] - hist[0][0]
        achieved = (hist[-1][2] - hist[0][2]) / span if span > 0 else 0.0
        return (f"Falling behind by {st.behind_ms / 1000:.1f} s: the target acknowledges "
                f"about {achieved:,.0f} records/s, less than the plan sends (see retried and "
                "throttled)")


def run_live(plan: Plan, sink: Sink, duration_s: float | None = None,
             stop_event: threading.Event | None = None, progress: bool = True, *,
             seed: int | None = 0, flush_s: float = 1.0, total: int | None = None,
             over_limit: bool = False, library: Mapping[str, Template] | None = None
             ) -> LiveStats:
    """Send the plan at real time until ``duration_s`` (default: the plan's), ``total``
    records, or a stop.

    Every ``flush_s`` the records scheduled since the last flush go to ``sink`` as one batch,
    stamped with their scheduled event time, so no record is ever from the future. Stops
    early when ``stop_event`` is set (from another thread) or on Ctrl-C / the notebook's stop
    button; records already due are still sent. Before it starts, the plan's peak rate is
    checked against the sink's limit (Kinesis: shards x 1,000 records/s and 1 MiB/s): above
    it is an error unless ``over_limit``. ``library``: more templates that ``set_rate`` and
    ``spike`` may name. Returns the run's counters.
    """
    return _LiveRun(plan, sink, duration_s, stop_event, seed, flush_s, total, over_limit,
                    library).run(progress)


class LiveHandle:
    """A live run in a background thread (``start_background``): stop it, watch it, spike it,
    change a template's rate."""

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
        return replace(st, sink=self._live.sink.stats.copy(), rates=dict(st.rates),
                       history=[list(h) for h in st.history])

    @property
    def rates(self) -> dict[str, float]:
        """Records/s per site of each template now (applied at the next flush)."""
        return dict(self._live.stats.rates)

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the run, if any."""
        return self._error

    def _check_running(self, what: str) -> None:
        if not self.running:
            raise GeneratorError(f"The generator is not running, so it cannot {what}",
                                 "start it again with start_background(...).")

    def spike(self, payload: str | Template = CLICK, extra_senders: int = 3,
              seconds: float = 20, rate: float | None = None) -> None:
        """Start ``extra_senders`` more senders of ``payload`` now, for ``seconds``: its rate
        times ``1 + extra_senders`` (copies of its sender: rate, curve, fields; ``rate``
        overrides, 1/s for a template the plan does not send)."""
        self._check_running("spike")
        self._live.spike(payload, extra_senders, seconds, rate)

    def set_rate(self, payload: str | Template, rate: float) -> None:
        """Send ``payload`` at ``rate`` records/s per site from now on (0 pauses it; a
        template the plan did not send starts). Spikes already running are left alone."""
        self._check_running("change a rate")
        self._live.set_rate(payload, rate)

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
                     flush_s: float = 1.0, total: int | None = None,
                     over_limit: bool = False,
                     library: Mapping[str, Template] | None = None) -> LiveHandle:
    """Like ``run_live``, in a daemon thread, so the notebook stays usable while it sends.

    Bad input and a plan above the sink's limit raise here, before the thread starts.
    """
    return LiveHandle(_LiveRun(plan, sink, duration_s, None, seed, flush_s, total,
                               over_limit, library), progress)
