"""Live mode: send a plan at real time, in the foreground or in a background thread.

``run_live`` / ``start_background`` send one batch per ``flush_s``, every record stamped with
its scheduled event time (all of it already in the past). A live run can change a template's
rate (``LiveHandle.set_rate``) and spike it. It stops after ``duration_s`` and/or ``total``
records, whichever comes first. Before it starts, ``check_capacity`` compares the plan's
rate with what the sink can take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import GeneratorError
from ..job.contracts import CLICK
from .placeholders import sample_context
from .plan import (
    MAX_RATE,
    MIN_RATE,
    Plan,
    Sender,
    _check_duration,
    _check_number,
    spike_sender,
)
from .sinks import Sink, SinkStats
from .templates import Template, resolve
from .timeline import _check_total, _Schedule, event_time_ms, to_line

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
