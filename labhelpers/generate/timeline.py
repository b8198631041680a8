"""Records and lines: the schedule that turns a plan into records at exact ticks.

One schedule serves both modes: simulated time here (``timeline`` / ``timeline_batches``
render a whole timeline as fast as the CPU allows, for replays, tests and benchmarks,
deterministic for a seed; ``sinks.send_timeline`` sends one) and real time in
``labhelpers.generate.live``. Records are dicts; lines are strings (compact JSON, see
``to_line``); ``write_jsonl`` writes either to a file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import GeneratorError
from .placeholders import RenderContext
from .plan import MAX_STREAMS, Plan, RateCurve, Sender, _check_duration, _check_number
from .templates import Renderer, Template, resolve

# Schedule keys pack (ms offset in the chunk, stream index) into one int: sorting plain ints
# is several times faster than sorting tuples, and this sort is the generator's hot spot.
_STREAM_BITS = MAX_STREAMS.bit_length() - 1
_STREAM_MASK = MAX_STREAMS - 1
_MS_SUFFIX = tuple(f"{m:03d}Z" for m in range(1000))


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
