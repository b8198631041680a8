"""Plans: what the traffic generator sends.

A ``Plan`` lists ``Sender``s (a template at a rate in records/s per site, optionally only for
a while: that is how a spike is written, optionally following a ``RateCurve`` over the day)
and the sites. Templates (``labhelpers.generate.templates``) are the lab's payloads or your own
JSON with Faker placeholders. ``timeline`` (simulated time) and ``run_live`` (real time) turn
a plan into records; ``steady_plan`` and ``lab_test_plan`` build the lab's own plans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import GeneratorError
from ..job.contracts import CLICK, IMPRESSION, MAX_SITE_CHARS
from .templates import Template, resolve

DEFAULT_SITES = ("example.com",)
_RESERVED_FIELDS = ("browseraction", "site", "event_time")
# The schedule (``timeline._Schedule``) packs a stream index into the low 20 bits of its sort
# keys; that bounds the sender streams (senders x count x sites) of a plan.
MAX_STREAMS = 1 << 20
# Rates are kept as exact fractions (ticks never drift); these bounds keep them small.
MIN_RATE = 0.001
MAX_RATE = 1_000_000.0


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
            json.dumps(dict(self.fields))  # what every sink will write (``timeline.to_line``)
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
