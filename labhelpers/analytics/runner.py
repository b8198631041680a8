"""The analytics application on the local backend: the Flink job in a background process.

``start`` launches ``python -m labhelpers.analytics.runner run`` detached from the notebook
kernel, so it keeps running when you move to the next notebook; any notebook finds it again
through the state file in ``<lab_dir>/app``. The same process runs the local stand-in for the alert
Lambda's event source mapping (labhelpers.alerts.poller.LocalPoller).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..background import BackgroundProcess
from ..errors import AppError
from ..flinkenv import flink_env, local_runtime
from ..infra.config import LabConfig
from ..job.contracts import (
    CLICK,
    IMPRESSION,
    LATE,
    check_record,
    format_event_time,
    parse_event_time,
)
from ..job.params import JobParams
from ..job.pipeline import JobSettings, filesystem_sink, filesystem_source
from ..logs import logger
from ..stream.log import Feeder, count_lines, read_all_lines

log = logger(__name__)

MARKER = "labhelpers.analytics.runner"  # in the background process's command line
# "warm": report from the latest position, but first read the records already in the stream
# so that the forest learns them (not reported: pipeline.JobSettings.report_from_ms)
START_POSITIONS = ("latest", "earliest", "warm")


def app_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "app"


def feed_dir(cfg: LabConfig) -> Path:
    """The folder the job reads: the input stream log, moved there in order by the Feeder."""
    return app_dir(cfg) / "feed"


def local_settings(cfg: LabConfig, params: JobParams) -> JobSettings:
    """Job settings for the live local app: stream logs in (through the feeder), out."""
    return JobSettings(
        input_connector=filesystem_source(feed_dir(cfg), continuous=True),
        scores_connector=filesystem_sink(cfg.stream_dir(cfg.scores_stream)),
        dead_letter_connector=filesystem_sink(cfg.stream_dir(cfg.dead_letter_stream)),
        params=params,
        runtime=local_runtime(app_dir(cfg)),
    )


def process(cfg: LabConfig) -> BackgroundProcess:
    """The app's background process (state in ``<lab_dir>/app/app.json``)."""
    return BackgroundProcess(app_dir(cfg) / "app.json", MARKER, app_dir(cfg) / "app.log")


def _start_point(cfg: LabConfig, position: str, window_seconds: int) -> dict[str, Any]:
    """Where a fresh start reads from, and how many earlier records it does not read."""
    src = cfg.stream_dir(cfg.input_stream)
    if position == "earliest":
        return {"start_position": position, "start_ms": None, "skip_through": None,
                "not_read": 0}
    now_ms = int(time.time() * 1000)
    step = int(window_seconds) * 1000
    start_ms = -(-now_ms // step) * step  # the next window boundary at or after now
    if position == "warm":
        # the feeder feeds every record; the job learns the windows before start_ms
        return {"start_position": position, "start_ms": None, "skip_through": None,
                "not_read": 0, "report_from_ms": start_ms, "warm_up_records": count_lines(src)}
    names = sorted(p.name for p in src.glob("*.jsonl")) if src.is_dir() else []
    return {"start_position": position, "start_ms": start_ms,
            "skip_through": names[-1] if names else None, "not_read": count_lines(src)}


def start(
    cfg: LabConfig,
    params: JobParams | dict | None = None,
    *,
    alerts: bool = True,
    fresh: bool = False,
    wait_seconds: float = 90,
    start_position: str = "latest",
    **changes: Any,
) -> dict[str, Any]:
    """Start the app in the background; say what it reads and from where.

    params / changes: the app's parameters (``JobParams.of(params, **changes)``, e.g.
    ``window_seconds=5, threshold=2.5``); left out (None), the last run's parameters are
    kept, so ``start(cfg)`` alone never changes them.

    A fresh start reads the input stream from ``start_position``: ``"latest"`` (default: the
    next window boundary from now, so the first window is complete), ``"earliest"`` (every
    record in the stream) or ``"warm"`` (reports from the latest position, but first reads
    the records already in the stream so that each site's forest learns their windows: they
    are not reported, scored nor alerted on), then on in order; it prints how many earlier
    records it does not read (or learns from). If an earlier run with the same parameters
    left a checkpoint (stopped, killed or crashed), the app resumes from it instead: it
    reads everything that arrived meanwhile, in order, each forest continues from its saved
    state, and no window is lost or reported twice. Called again while running: with the
    same parameters it says so and returns; with other ones it stops the app and starts it
    with the new ones, saying what changed. Changed parameters (or ``fresh=True``) start
    fresh: earlier outputs are cleared, because a new window or forest cannot continue from
    the old state. ``alerts`` also runs the local alert poller (needs the stack deployed).
    Waits until the Flink job is running.
    """
    if start_position not in START_POSITIONS:
        raise AppError(f"start_position={start_position!r} is not a start position",
                       f"use one of {', '.join(START_POSITIONS)}.")
    work = app_dir(cfg)
    props = work / "properties.json"
    last = settings(cfg).params if props.exists() else None
    wanted = JobParams.of(params if params is not None else last, **changes)
    changed = wanted.changes_from(last) if last is not None else []
    app = process(cfg)
    if app.running:
        if not changed and not fresh:
            log.info(f"The analytics app is already running with these settings "
                     f"(pid {app.pid}).")
            return status(cfg)
        why = f"the parameters changed: {', '.join(changed)}" if changed else "fresh=True"
        log.info(f"The analytics app is running (pid {app.pid}) and {why}: restarting it.")
        stop(cfg)
    job = local_settings(cfg, wanted)
    checkpoint = None if fresh else latest_checkpoint(cfg)
    if checkpoint is not None and changed:
        log.info(f"The parameters differ from the last run's ({', '.join(changed)}): its "
                 f"checkpoint holds windows and forests of the old parameters and cannot be "
                 f"used, so the app starts fresh from the {start_position} position.")
        checkpoint = None
    if checkpoint is None:
        for old in (work, cfg.stream_dir(cfg.scores_stream),
                    cfg.stream_dir(cfg.dead_letter_stream)):
            shutil.rmtree(old, ignore_errors=True)
        (work / "log").mkdir(parents=True)
        point = _start_point(cfg, start_position, wanted.window_seconds)
        job.report_from_ms = point.get("report_from_ms")
        props.write_text(json.dumps(job.to_properties(), indent=2))
        (work / "start.json").write_text(json.dumps(point))
        if start_position == "warm":
            first = datetime.fromtimestamp(point["report_from_ms"] / 1000, UTC)
            log.info(f"Reading from the latest position, warmed up: the first window reported "
                     f"starts at {first:%H:%M:%S} UTC; the {point['warm_up_records']} earlier "
                     f"record(s) in the stream are read first and the forest learns their "
                     f"windows (not reported, not scored: app_status()['warm_up_windows'] "
                     f"counts them per site).")
        elif start_position == "latest":
            first = datetime.fromtimestamp(point["start_ms"] / 1000, UTC)
            log.info(f"Reading from the latest position: the first window starts at "
                     f"{first:%H:%M:%S} UTC; {point['not_read']} earlier record(s) in the "
                     f"stream are not read (start_position='earliest' reads them).")
        else:
            log.info("Reading from the earliest position: every record in the stream, in "
                     "order (0 earlier records not read).")
    else:
        point = _read_json(work / "start.json")
        log.info(f"Resuming from checkpoint {checkpoint.parent.name}/{checkpoint.name}: "
                 f"everything that arrived since is read, in order "
                 f"(start position of this run: {point.get('start_position')}).")
        shutil.rmtree(work / "tmp", ignore_errors=True)
        (work / "running").unlink(missing_ok=True)
    cfg.stream_dir(cfg.input_stream).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", MARKER, "run", "--properties", str(props), *cfg.to_args()]
    if not alerts:
        cmd.append("--no-alerts")
    if checkpoint is not None:
        cmd += ["--restore", str(checkpoint)]
    pid = app.start(cmd, env=flink_env(work, small=True, thread_mode=True), cwd=work,
                    properties=str(props), alerts=alerts,
                    resumed_from=str(checkpoint) if checkpoint else None)
    app.wait_ready(lambda: (work / "running").exists(), "the Flink job to run", wait_seconds,
                   lambda why: AppError(f"The analytics app did not start: {why}",
                                        "read the log above (python -m labhelpers app logs), "
                                        "fix the cause and start again; `python -m labhelpers "
                                        "doctor` checks Java."))
    log.info(f"Analytics app started (pid {pid}); log: {app.log}")
    return status(cfg)


def latest_checkpoint(cfg: LabConfig) -> Path | None:
    """The newest complete checkpoint of the app's earlier runs (a folder ``chk-N``), if any."""
    done = [m.parent for m in (app_dir(cfg) / "checkpoints").glob("*/chk-*/_metadata")]
    return max(done, key=lambda d: (d.stat().st_mtime, int(d.name[4:]))) if done else None


def _checkpoint_after(cfg: LabConfig, checkpoint_id: int) -> bool:
    """Has a checkpoint newer than ``checkpoint_id`` completed (the restored job is running
    and its source has taken back the files it had)?"""
    return any(int(m.parent.name[4:]) > checkpoint_id
               for m in (app_dir(cfg) / "checkpoints").glob("*/chk-*/_metadata"))


def settings(cfg: LabConfig) -> JobSettings:
    """The settings the app was last started with (``.params``: window, lateness, forest)."""
    path = app_dir(cfg) / "properties.json"
    if not path.exists():
        raise AppError("The analytics app has not been started",
                       "start it with notebook 03 or `python -m labhelpers app start`.")
    return JobSettings.from_properties(json.loads(path.read_text()))


def status(cfg: LabConfig) -> dict[str, Any]:
    """Is the app running, since when, and how much it has produced: windows scored,
    anomalies, bad records and late records (both in the dead-letter stream), the start
    position and the records not read before it, and the app's ``parameters``."""
    app = process(cfg)
    state, running = app.state(), app.running
    pid = state.get("pid")
    scores = read_all_lines(cfg.stream_dir(cfg.scores_stream))
    dead = read_all_lines(cfg.stream_dir(cfg.dead_letter_stream))
    late = sum(f'"reason":"{LATE}"' in d for d in dead)
    last = json.loads(scores[-1]) if scores else None
    fed = _feeder_counts(cfg)
    props = app_dir(cfg) / "properties.json"
    warm = warm_up_windows(cfg)
    return {
        "running": running,
        "pid": pid if running else None,
        "uptime_s": round(time.time() - state["started"], 1) if running else 0.0,
        "windows_scored": len(scores),
        "anomalies": sum('"is_anomaly":true' in s for s in scores),
        "bad_records": len(dead) - late,
        "late_records": late,
        "last_window": (last or {}).get("window_end"),
        "start_position": _read_json(app_dir(cfg) / "start.json").get("start_position"),
        "parameters": settings(cfg).params.to_dict() if props.exists() else None,
        "records_fed": fed["fed"],
        "not_read_before_start": fed["skipped"],
        "warm_up_records": _read_json(app_dir(cfg) / "start.json").get("warm_up_records", 0),
        "warm_up_windows": min(warm.values()) if warm else 0,
        "warm_up_windows_per_site": warm,
        "resumed_from": state.get("resumed_from") if running else None,
        "log": state.get("log"),
    }


def warm_up_windows(cfg: LabConfig) -> dict[str, int]:
    """A "warm" start: per site, the windows the forest learned before the start position
    (read, learned, not reported): the windows with records of that site in the input stream
    before ``report_from_ms``. Empty for the other start positions. Kept in ``start.json`` once
    every record before the start position has arrived (a window and the lateness later)."""
    path = app_dir(cfg) / "start.json"
    point = _read_json(path)
    if point.get("report_from_ms") is None:
        return {}
    if "warm_up_windows" in point:
        return point["warm_up_windows"]
    rows, settled = _warm_up(cfg, point["report_from_ms"])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["site"]] = counts.get(row["site"], 0) + 1
    if settled:
        path.write_text(json.dumps({**point, "warm_up_windows": counts}))
    return counts


def warm_up_rows(cfg: LabConfig) -> list[dict[str, Any]]:
    """The windows a "warm" start learned before reporting (window_start, window_end, site,
    clicks, impressions, ctr as the job's SQL counts them), oldest first; empty for the other
    start positions. Re-scoring the reported rows (``teach.run_rule.sums_frame``) feeds these
    first, as the job did."""
    report_from = _read_json(app_dir(cfg) / "start.json").get("report_from_ms")
    return [] if report_from is None else _warm_up(cfg, report_from)[0]


def _warm_up(cfg: LabConfig, report_from: int) -> tuple[list[dict[str, Any]], bool]:
    """The warm-up windows' counts from the input stream, and whether every record before
    the start position has arrived by now (a window and the lateness later)."""
    props = _read_json(app_dir(cfg) / "properties.json")
    params = JobSettings.from_properties(props).params if props else JobParams()
    step = int(params.window_seconds) * 1000
    counts: dict[tuple[int, str], list[int]] = {}
    for line in read_all_lines(cfg.stream_dir(cfg.input_stream)):
        rec, _ = check_record(line)
        if rec is None or rec["browseraction"] not in (CLICK, IMPRESSION):
            continue
        ms = int(parse_event_time(rec["event_time"]).timestamp() * 1000)
        if ms < report_from:
            pair = counts.setdefault((ms // step, rec["site"]), [0, 0])
            pair[rec["browseraction"] == IMPRESSION] += 1
    rows = [{"window_start": format_event_time(w * step / 1000),
             "window_end": format_event_time((w + 1) * step / 1000), "site": site,
             "clicks": c, "impressions": i, "ctr": 100.0 * c / i if i else None}
            for (w, site), (c, i) in sorted(counts.items())]
    settled = time.time() * 1000 > report_from + step + int(params.lateness_seconds) * 1000
    return rows, settled


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _feeder_counts(cfg: LabConfig) -> dict[str, int]:
    """Records fed to the job and skipped before the start position (the newest manifest)."""
    manifests = sorted((feed_dir(cfg) / "_manifests").glob("*.json"))
    info = _read_json(manifests[-1]) if manifests else {}
    return {"fed": info.get("fed_total", 0), "skipped": info.get("skipped_total", 0)}


def stop(cfg: LabConfig, timeout: float = 20) -> bool:
    """Stop the app and its JVM (the whole process group). True if it was running."""
    app = process(cfg)
    pid = app.state().get("pid")
    was_running = app.stop(timeout)
    (app_dir(cfg) / "running").unlink(missing_ok=True)
    shutil.rmtree(app_dir(cfg) / "tmp", ignore_errors=True)
    if was_running:
        log.info(f"Analytics app stopped (pid {pid}).")
    return was_running


def logs(cfg: LabConfig, lines: int = 40) -> str:
    """The last ``lines`` lines of the app's log (its own output plus Flink's errors)."""
    if not process(cfg).log.exists():
        return "(no log yet: the app has not been started)"
    return process(cfg).log_tail(lines)


def _run(args: argparse.Namespace) -> int:
    """Body of the background process: alert poller thread + the Flink job (blocking)."""
    from ..job import pipeline as job

    cfg = LabConfig.from_args(args)
    settings = JobSettings.from_properties(json.loads(Path(args.properties).read_text()))
    if args.restore:
        settings.runtime["execution.state-recovery.path"] = args.restore
    stop_event = threading.Event()
    poller_thread = None
    if not args.no_alerts:
        from ..alerts.poller import LocalPoller

        poller = LocalPoller(cfg)
        poller_thread = threading.Thread(
            target=poller.run_forever, args=(stop_event,), name="alert-poller", daemon=True
        )
        poller_thread.start()

    def _terminate(signum, frame):  # noqa: ARG001
        stop_event.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    point = _read_json(app_dir(cfg) / "start.json")
    feeder = Feeder(cfg.stream_dir(cfg.input_stream), feed_dir(cfg),
                    start_ms=point.get("start_ms"), skip_through=point.get("skip_through"))
    if args.restore:
        restored = int(Path(args.restore).name.removeprefix("chk-"))
        taken = feeder.take_back_unknown(Path(args.restore))
        feeder.gate = lambda: _checkpoint_after(cfg, restored)
        if taken:
            log.info(f"feeder: {len(taken)} feed file(s) newer than the checkpoint fed again, "
                     "merged")
    if not feeder.use_atime:
        log.info("feeder: this file system keeps no access times; feeding one file per 3 s")
    threading.Thread(target=feeder.run_forever, args=(stop_event,), name="feeder",
                     daemon=True).start()
    result = job.run(settings, wait=False)
    (app_dir(cfg) / "running").write_text(str(os.getpid()))
    log.info(f"job submitted: {result.get_job_client().get_job_id()}")
    try:
        result.wait()
    finally:
        stop_event.set()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labhelpers.analytics.runner")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the app in the foreground (used by start)")
    run.add_argument("--properties", required=True)
    LabConfig.add_arguments(run)
    run.add_argument("--no-alerts", action="store_true")
    run.add_argument("--restore", default=None, help="checkpoint folder to resume from")
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
