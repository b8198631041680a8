"""Traffic in the background: the generator as a process that outlives notebook kernels.

Notebook 02 starts it (and its panel changes rates), notebook 04 asks it for a spike, and
cleanup stops it. Requests reach it as small files in its control folder (``*.request``,
written under another name and renamed, applied in the order they were made). It writes its
counters to ``stats.json`` every half second, and every record the target refused for good,
with the reason, to ``failures.jsonl``. On the local backend it also copies every batch into
the raw bucket under ``weblogs/raw/YYYY/MM/DD/HH/`` (the job Firehose does on AWS), when the
stack exists (the local backend's RawArchiveSink).

What it sends is a plan spec (JSON, see ``plan_spec``): sites, a rate per template (the
lab's Click and Impression by default), templates of your own, a time-of-day curve, a total
or a duration.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..background import BackgroundProcess
from ..errors import GeneratorError, LabError
from ..infra.config import LabConfig
from ..job.contracts import CLICK, IMPRESSION
from ..logs import logger
from .live import start_background
from .plan import Plan, RateCurve, Sender, _check_number, curve_from, lab_test_plan
from .templates import Template, load_templates, resolve
from .timeline import _check_total, timeline, write_jsonl

log = logger(__name__)

# The background process's module, also the marker in its command line: it gives run_child
# the backend's sink, so it lives above the seam.
MARKER = "labhelpers.run.traffic_child"
MAX_PAST_S = 3600  # past traffic written at start (traffic.start(past_seconds=...))


def traffic_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "traffic"


def process(cfg: LabConfig) -> BackgroundProcess:
    """The generator's background process (state in ``<lab_dir>/traffic/process.json``)."""
    d = traffic_dir(cfg)
    return BackgroundProcess(d / "process.json", MARKER, d / "traffic.log")


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def status(cfg: LabConfig) -> dict[str, Any]:
    """Is traffic being sent, and the generator's counters (updated every half second):
    records, rates per template, warning, history ``[elapsed_s, records, acknowledged]``,
    and ``sink`` (sent, acknowledged, retried, throttled, failed, failure reasons)."""
    d = traffic_dir(cfg)
    gen = process(cfg)
    state, stats, running = gen.state(), _read(d / "stats.json"), gen.running
    # the process's liveness wins over the "running" of the last counters it wrote
    return {**stats, "running": running, "pid": state.get("pid") if running else None,
            "plan": state.get("plan"), "failure_log": str(d / "failures.jsonl")}


def plan_spec(
    sites: Sequence[str] | str = ("example.com",),
    click_rate: float = 1.0,
    impression_rate: float = 1.0,
    duration_s: float | None = None,
    *,
    rates: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | Path | str | None = None,
    curve: RateCurve | str | Mapping[str, Any] | None = None,
    total: int | None = None,
    seed: int | None = 0,
    over_limit: bool = False,
    past_s: float = 0,
) -> dict[str, Any]:
    """The JSON form of what to send (see ``start``), checked: bad input raises here."""
    past_s = _check_number("past_seconds", past_s, allow_zero=True, example="240 (seconds)")
    if past_s > MAX_PAST_S:
        raise GeneratorError(f"Parameter past_seconds must be at most {MAX_PAST_S} s, got "
                             f"{past_s:g}", "use e.g. past_seconds=240 (4 minutes).")
    if isinstance(templates, Path | str):
        templates = load_templates(templates)
    curve_obj = curve_from(curve)
    spec = {
        "sites": [sites] if isinstance(sites, str) else list(sites),
        "click_rate": click_rate, "impression_rate": impression_rate,
        "duration_s": duration_s,
        "rates": dict(rates) if rates is not None else None,
        "templates": [{"name": t.name, "text": t.text, "source": t.source,
                       "first_line": t.first_line} for t in (templates or {}).values()],
        "curve": curve_obj.to_dict() if curve_obj else None,
        "total": total, "seed": seed, "over_limit": bool(over_limit), "past_s": past_s,
    }
    build_plan(spec)
    return spec


def build_plan(spec: Mapping[str, Any]) -> tuple[Plan, dict[str, Template]]:
    """The Plan of a spec, and the spec's own templates (by name)."""
    library = {t["name"]: Template(**t) for t in spec.get("templates") or []}
    rates = spec.get("rates")
    if rates is None:  # the lab's traffic
        rates = {IMPRESSION: spec.get("impression_rate", 1.0),
                 CLICK: spec.get("click_rate", 1.0)}
    if not isinstance(rates, Mapping) or not rates:
        raise GeneratorError(f"Parameter rates must map template names to records/s, got "
                             f"{rates!r}", "use e.g. rates={'Impression': 1.0, 'Click': 1.0}.")
    curve = curve_from(spec.get("curve"))
    senders = []
    for name, rate in rates.items():
        rate = _check_number(f"rates[{name!r}]", rate, allow_zero=True,
                             example="1.0 (records/s per site; 0 = paused)")
        tpl = resolve(name, library)
        library.setdefault(name, tpl)
        if rate > 0:
            senders.append(Sender(tpl, rate=rate, curve=curve))
    if not senders:
        raise GeneratorError("Every template has rate 0, so nothing would be sent",
                             "give at least one template a rate > 0.")
    _check_total(spec.get("total"))
    plan = Plan(tuple(senders), sites=tuple(spec.get("sites") or ("example.com",)),
                duration_s=spec.get("duration_s"))
    return plan, library


def start(
    cfg: LabConfig,
    sites: Sequence[str] = ("example.com",),
    click_rate: float = 1.0,
    impression_rate: float = 1.0,
    duration_s: float | None = None,
    wait_seconds: float = 30,
    *,
    rates: Mapping[str, float] | None = None,
    templates: Mapping[str, Template] | Path | str | None = None,
    curve: RateCurve | str | Mapping[str, Any] | None = None,
    total: int | None = None,
    seed: int | None = 0,
    over_limit: bool = False,
    past_seconds: float = 0,
) -> dict[str, Any]:
    """Start sending in the background: Impression and Click records for every
    site at the given rates, or the templates in ``rates`` (name -> records/s per site; 0 =
    known but paused, e.g. for the panel's sliders).

    templates: your own templates (a dict from ``load_templates``, or the file's path).
    curve: a time-of-day RateCurve for every template (or a name in ``plan.CURVES``).
    duration_s / total: stop after that many seconds / records (None: run until ``stop``).
    over_limit: send even above what the target stream takes (Kinesis: shards x 1,000
    records/s and 1 MiB/s); otherwise that is an error at start.
    past_seconds: first write that many seconds of the same traffic with event times in the
    past, ending where the live traffic begins, as if the sites had been sending already (up
    to MAX_PAST_S; a warm start of the app, notebook 03, learns from it).
    Called again while traffic runs: the same plan returns the running one; another plan
    (e.g. a second site) stops it and starts the new one, saying what changed.
    """
    # validate here, not in the child
    plan = plan_spec(sites, click_rate, impression_rate, duration_s, rates=rates,
                     templates=templates, curve=curve, total=total, seed=seed,
                     over_limit=over_limit, past_s=past_seconds)
    current = status(cfg)
    if current["running"]:
        old = current.get("plan") or {}
        # past traffic is written when the generator starts: not a reason to restart it
        changed = {k: (old.get(k), v) for k, v in plan.items()
                   if k != "past_s" and old.get(k) != v}
        if not changed:
            log.info(f"Traffic is already being sent with this plan (pid {current['pid']}); "
                     "change rates with set_rate.")
            return current
        said = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        log.info(f"Traffic is being sent with another plan ({said}): restarting it with the "
                 "new plan. Records already sent stay in the stream.")
        stop(cfg)
    d = traffic_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    for old in [*d.glob("*.json"), *d.glob("*.request"), *d.glob("failures.jsonl")]:
        old.unlink()
    cmd = [sys.executable, "-m", MARKER, *cfg.to_args(), "--plan", json.dumps(plan)]
    gen = process(cfg)
    pid = gen.start(cmd, plan=plan)
    gen.wait_ready(lambda: (d / "stats.json").exists(), "the generator's first counters",
                   wait_seconds,
                   lambda why: GeneratorError(f"The traffic generator did not start: {why}",
                                              "fix the cause shown above and start it again."))
    st = status(cfg)
    shown = ", ".join(f"{k} {v:g}/s" for k, v in (st.get("rates") or {}).items())
    log.info(f"Sending traffic to {', '.join(plan['sites'])}: {shown} per site (pid {pid}).")
    if st.get("past_records"):
        log.info(f"First wrote {st['past_records']} records of past traffic (the "
                 f"{plan['past_s']:g} s before the live traffic began).")
    if st.get("warning"):
        log.info(f"Warning: {st['warning']}")
    return st


def _running_library(cfg: LabConfig, what: str) -> dict[str, Template]:
    st = status(cfg)
    if not st["running"]:
        raise GeneratorError(f"No traffic is being sent, so there is nothing to {what}",
                             "start it first (notebook 02 or `python -m labhelpers generate "
                             "start`).")
    return build_plan(st["plan"])[1] if st.get("plan") else {}


def _request(cfg: LabConfig, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    request = {"kind": kind, **request, "asked": time.time()}
    d = traffic_dir(cfg)
    name = f"{time.time_ns():020d}-{kind}-{uuid.uuid4().hex[:8]}"
    tmp = d / f".{name}.tmp"  # renamed when complete: the generator never reads half a file
    tmp.write_text(json.dumps(request))
    os.replace(tmp, d / f"{name}.request")
    return request


def spike(cfg: LabConfig, extra_senders: int = 3, seconds: float = 20,
          payload: str = CLICK, rate: float | None = None) -> dict[str, Any]:
    """Ask the running generator for ``extra_senders`` more senders of ``payload`` now, for
    ``seconds``: its rate times ``1 + extra_senders`` (``rate`` sets the extra senders' rate
    instead of the template's own)."""
    library = _running_library(cfg, "spike")
    Sender(resolve(payload, library), rate=1.0 if rate is None else rate, seconds=seconds,
           count=extra_senders)  # bad values fail here, not in the generator
    request = _request(cfg, "spike", {"payload": payload, "extra_senders": extra_senders,
                                      "seconds": seconds, "rate": rate})
    log.info(f"Spike requested: {extra_senders} extra {payload} sender(s) for {seconds:g} s.")
    return request


def set_rate(cfg: LabConfig, payload: str, rate: float) -> dict[str, Any]:
    """Ask the running generator to send ``payload`` at ``rate`` records/s per site from now
    on (0 pauses it). Applied within a second; ``status(cfg)["rates"]`` shows it."""
    library = _running_library(cfg, "change")
    resolve(payload, library)
    rate = _check_number("rate", rate, allow_zero=True, example="2.0 (records/s per site)")
    request = _request(cfg, "rate", {"payload": payload, "rate": rate})
    log.info(f"Rate change requested: {payload} at {rate:g}/s per site.")
    return request


def stop(cfg: LabConfig, timeout: float = 15) -> dict[str, Any]:
    """Stop the traffic (idempotent); returns the final counters."""
    gen = process(cfg)
    pid = gen.state().get("pid")
    if gen.stop(timeout):
        log.info(f"Traffic stopped (pid {pid}).")
    return status(cfg)


def describe_templates(templates: Mapping[str, Template] | Path | str | None = None
                       ) -> dict[str, Any]:
    """Every template by name: its action, fields and placeholders (built-ins and yours)."""
    from .templates import BUILTIN_TEMPLATES

    if isinstance(templates, Path | str):
        templates = load_templates(templates)
    merged = {**BUILTIN_TEMPLATES, **(templates or {})}
    return {name: {"browseraction": t.browseraction, "fields": t.fields,
                   "placeholders": list(t.placeholders), "source": t.source}
            for name, t in merged.items()}


def preview(names: Sequence[str] | Mapping[str, float] = (IMPRESSION, CLICK),
            templates: Mapping[str, Template] | Path | str | None = None, n: int = 3,
            sites: Sequence[str] = ("example.com",), seed: int | None = 0
            ) -> list[dict[str, Any]]:
    """``n`` rendered records of each named template (first site), to look at before sending."""
    from .templates import preview as render_preview

    if isinstance(templates, Path | str):
        templates = load_templates(templates)
    return render_preview(list(names), n=n, site=sites[0], seed=seed, library=templates)


def send(cfg: LabConfig, sites: Sequence[str] = ("example.com",), click_rate: float = 1.0,
         impression_rate: float = 1.0, duration_s: float | None = None, *,
         rates: Mapping[str, float] | None = None,
         templates: Mapping[str, Template] | Path | str | None = None,
         curve: RateCurve | str | Mapping[str, Any] | None = None, total: int | None = None,
         seed: int | None = 0, over_limit: bool = False, simulated: bool = False,
         out: Path | str | None = None, start_time: datetime | None = None,
         progress: bool = True, sink: Any = None) -> dict[str, Any]:
    """Send in the foreground (headless runs, the command line): the same plan as ``start``.

    Live by default, until ``duration_s`` / ``total`` / Ctrl-C, into ``sink`` (the backend's
    input stream: ``backend_for(cfg).input_sink()``). ``simulated``: render the timeline
    from ``start_time`` (default now) as fast as possible, into ``out`` (a JSON-lines file)
    or ``sink``. Returns the counters.
    """
    from .sinks import send_timeline
    from .timeline import timeline_batches

    spec = plan_spec(sites, click_rate, impression_rate, duration_s, rates=rates,
                     templates=templates, curve=curve, total=total, seed=seed,
                     over_limit=over_limit)
    plan, library = build_plan(spec)
    if sink is None and not (simulated and out is not None):
        raise GeneratorError("No sink to send to",
                             "pass sink=backend_for(cfg).input_sink(), or out=FILE.")
    if simulated:
        start_at = start_time or datetime.now(UTC)
        t0 = time.perf_counter()
        if out is not None:
            lines = (ln for b in timeline_batches(plan, start_at, duration_s, seed,
                                                  total=total) for ln in b.lines)
            n = write_jsonl(lines, out)
            result: dict[str, Any] = {"records": n, "out": str(out)}
        else:
            n = send_timeline(plan, sink, start_at, duration_s, seed, total=total)
            result = {"records": n, "sink": asdict(sink.stats)}
        took = time.perf_counter() - t0
        result.update(seconds=round(took, 3), records_per_s=round(n / took) if took else None)
        return result
    from .live import run_live

    stats = run_live(plan, sink, duration_s, progress=progress, seed=seed, total=total,
                     over_limit=over_limit, library=library)
    result = asdict(stats)
    result.pop("history", None)
    return result


def write_lab_timeline(path: Path | str, warmup_s: float = 900, sites: Sequence[str] = (
        "example.com",), start: datetime | None = None, seed: int = 0) -> dict[str, Any]:
    """The lab's test in simulated time, as a JSON-lines file for ``replay`` (seconds to run).

    Starts at a whole minute so the spike's 20 s fill exactly two 10-s windows.
    """
    start = start or datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    plan = lab_test_plan(warmup_s=warmup_s, sites=sites)
    n = write_jsonl(timeline(plan, start, seed=seed), path)
    return {"path": str(path), "records": n, "spike_start": start.timestamp() + warmup_s}


def _handle_request(handle: Any, req: Path) -> None:
    try:
        r = json.loads(req.read_text())
        if r.get("kind", "spike") == "spike":
            handle.spike(payload=r["payload"], extra_senders=r["extra_senders"],
                         seconds=r["seconds"], rate=r.get("rate"))
        else:
            handle.set_rate(r["payload"], r["rate"])
        log.info(f"{r.get('kind', 'spike')}: {r}")
    except (LabError, ValueError, KeyError) as err:  # say so, keep going
        log.info(f"request {req.name} refused: {err}")
    finally:
        req.unlink(missing_ok=True)


def _send_past(plan: Plan, sink: Any, past_s: float, seed: int | None) -> int:
    """Write ``past_s`` seconds of ``plan``'s traffic ending at the next whole second but one,
    wait until then and return the records written: the live traffic starts there, with the
    same seed, so its senders tick on where the past ones stopped (no gap, no overlap)."""
    if not past_s:
        return 0
    from .sinks import send_timeline

    live_from = time.time_ns() // 10**9 + 2
    n = send_timeline(plan, sink, live_from - past_s, past_s, seed, batch_s=10.0)
    time.sleep(max(0.0, live_from - time.time()))
    return n


def run_child(cfg: LabConfig, spec: Mapping[str, Any], sink: Any) -> int:
    """Body of the background process (``labhelpers.run.traffic_child`` gives it the
    backend's sink): send ``spec`` into ``sink``, apply the requests that arrive, keep the
    counters in ``stats.json``; returns the exit code."""
    plan, library = build_plan(spec)
    d = traffic_dir(cfg)
    archive = sink if hasattr(sink, "archived") else None
    past = _send_past(plan, sink, float(spec.get("past_s") or 0), spec.get("seed", 0))
    handle = start_background(plan, sink, spec.get("duration_s"), seed=spec.get("seed", 0),
                              total=spec.get("total"), over_limit=spec.get("over_limit", False),
                              library=library)
    for name, rate in (spec.get("rates") or {}).items():
        if not rate:  # known but paused: listed in the rates, ready for set_rate
            handle.set_rate(name, 0)
    stopping = False

    def _terminate(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _terminate)
    while True:
        for req in sorted(d.glob("*.request")):  # names start with the time asked
            _handle_request(handle, req)
        if stopping:
            try:
                handle.stop()
            except Exception as err:  # the error that ended the thread; reported below
                log.info(f"generator stopped with an error: {err}")
        # asked before the counters are read: the last counters written are then the final
        # ones (read first, a run that ended between the two left its last batch unwritten:
        # a counted run of 30 records once reported 0)
        done = stopping or not handle.running
        st = asdict(handle.stats)
        st["past_records"] = past
        if archive is not None:
            st.update(archived_batches=archive.archived, archive_errors=archive.archive_errors,
                      last_archive_error=archive.last_archive_error)
        tmp = d / ".stats.tmp"
        tmp.write_text(json.dumps(st, default=str))
        os.replace(tmp, d / "stats.json")
        if done:
            break
        time.sleep(0.5)
    if handle.error is not None:
        log.info(f"generator failed: {handle.error}")
        return 1
    return 0
