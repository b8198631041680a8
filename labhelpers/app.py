"""The analytics application on the local backend: the Flink job in a background process.

``start`` launches ``python -m labhelpers.app run`` detached from the notebook kernel, so it
keeps running when you move to the next notebook; any notebook finds it again through the
state file in ``<lab_dir>/app``. The same process runs the local stand-in for the alert
Lambda's event source mapping (labhelpers.alerts.LocalPoller).
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

from .config import LabConfig, load_config
from .contracts import LATE
from .errors import AppError
from .forest import ForestParams
from .java import java_env
from .job import JobSettings, filesystem_sink, filesystem_source
from .jvm_cache import startup_env
from .procs import alive, spawn, stop_group
from .streamlog import Feeder, count_lines, read_all_lines

CHECKPOINT_INTERVAL = "2s"
START_POSITIONS = ("latest", "earliest")
MARKER = "labhelpers.app"  # in the background process's command line
# The JVM's heap: the local mini-cluster's default (1/4 of RAM) is far more than it needs.
JVM_ARGS = "-Xmx1g -XX:+UseSerialGC"


def app_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "app"


def local_runtime(work: Path, checkpoint_interval: str = CHECKPOINT_INTERVAL) -> dict[str, str]:
    """Flink settings for the embedded mini-cluster: loopback only, files under ``work``."""
    return {
        "execution.checkpointing.interval": checkpoint_interval,
        "execution.checkpointing.dir": (work / "checkpoints").as_uri(),
        # keep the last checkpoints when the app is stopped or killed: start() resumes there
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "io.tmp.dirs": str(work / "tmp"),
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.rpc.address": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "parallelism.default": "1",
        # the forest runs inside the JVM (pemja) instead of a separate Python worker:
        # measured 106 s instead of 131 s for a day of traffic (bench/bench_replay.py)
        "python.execution-mode": "thread",
    }


def flink_env(work: Path) -> dict[str, str]:
    """Environment of a process that runs the job: Java, JVM heap, Flink's log folder, the
    Python path the JVM's embedded interpreter needs (thread mode reads no .pth files), and
    the start-up cache when it is built (labhelpers.jvm_cache)."""
    import site

    from .config import REPO_ROOT

    env = java_env()
    paths = [*site.getsitepackages(), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env.update(JVM_ARGS=JVM_ARGS, FLINK_LOG_DIR=str(work / "log"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in paths if p))
    return startup_env(env)


def feed_dir(cfg: LabConfig) -> Path:
    """The folder the job reads: the input stream log, moved there in order by the Feeder."""
    return app_dir(cfg) / "feed"


def local_settings(
    cfg: LabConfig,
    forest: ForestParams | dict | None = None,
    window_seconds: int = 10,
    lateness_seconds: int = 5,
) -> JobSettings:
    """Job settings for the live local app: stream logs in, stream logs out."""
    if isinstance(forest, dict):
        forest = ForestParams.from_dict(forest)
    return JobSettings(
        input_connector=filesystem_source(feed_dir(cfg), continuous=True),
        scores_connector=filesystem_sink(cfg.stream_dir(cfg.scores_stream)),
        dead_letter_connector=filesystem_sink(cfg.stream_dir(cfg.dead_letter_stream)),
        window_seconds=window_seconds,
        lateness_seconds=lateness_seconds,
        forest=forest or ForestParams(),
        runtime=local_runtime(app_dir(cfg)),
    )


def _state_file(cfg: LabConfig) -> Path:
    return app_dir(cfg) / "app.json"


def _read_state(cfg: LabConfig) -> dict[str, Any] | None:
    path = _state_file(cfg)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def parameters(job: JobSettings) -> dict[str, Any]:
    """The app's parameters as one flat dict: window_seconds, lateness_seconds and the forest's
    (the names of notebook 03's parameters cell, lower case)."""
    return {"window_seconds": int(job.window_seconds),
            "lateness_seconds": int(job.lateness_seconds), **job.forest.to_dict()}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)}


def _say_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())


def _start_point(cfg: LabConfig, position: str, window_seconds: int) -> dict[str, Any]:
    """Where a fresh start reads from, and how many earlier records it does not read."""
    src = cfg.stream_dir(cfg.input_stream)
    if position == "earliest":
        return {"start_position": position, "start_ms": None, "skip_through": None,
                "not_read": 0}
    now_ms = int(time.time() * 1000)
    step = int(window_seconds) * 1000
    start_ms = -(-now_ms // step) * step  # the next window boundary at or after now
    names = sorted(p.name for p in src.glob("*.jsonl")) if src.is_dir() else []
    return {"start_position": position, "start_ms": start_ms,
            "skip_through": names[-1] if names else None, "not_read": count_lines(src)}


def start(
    cfg: LabConfig,
    forest: ForestParams | dict | None = None,
    window_seconds: int | None = None,
    lateness_seconds: int | None = None,
    alerts: bool = True,
    fresh: bool = False,
    wait_seconds: float = 90,
    start_position: str = "latest",
) -> dict[str, Any]:
    """Start the app in the background; say what it reads and from where.

    A fresh start reads the input stream from ``start_position``: ``"latest"`` (default: the
    next window boundary from now, so the first window is complete) or ``"earliest"`` (every
    record in the stream), then on in order; it prints how many earlier records it does not
    read. If an earlier run with the same settings left a checkpoint (stopped, killed or
    crashed), the app resumes from it instead: it reads everything that arrived meanwhile,
    in order, each forest continues from its saved state, and no window is lost or reported
    twice. Called again while running: with the same settings it says so and returns; with
    other settings it stops the app and starts it with the new ones, saying what changed.
    Changed settings (or ``fresh=True``) start fresh: earlier outputs are cleared, because a
    new window or forest cannot continue from the old state. ``alerts`` also runs the local
    alert poller (needs the stack deployed). Waits until the Flink job is running.
    A setting left out (None) keeps the last run's value (else the default: 10-s windows,
    5 s lateness, the default forest), so ``start(cfg)`` alone never changes settings.
    """
    if cfg.backend != "local":
        raise AppError(
            "app.start runs the local mini-cluster only",
            "on the aws backend use labhelpers.cloud_app (managed Flink).",
        )
    if start_position not in START_POSITIONS:
        raise AppError(f"start_position={start_position!r} is not a start position",
                       f"use one of {', '.join(START_POSITIONS)}.")
    work = app_dir(cfg)
    props = work / "properties.json"
    last = JobSettings.from_properties(json.loads(props.read_text())) if (
        props.exists()) else None
    settings = local_settings(
        cfg, forest if forest is not None else (last.forest if last else None),
        window_seconds if window_seconds is not None else (last.window_seconds if last else 10),
        lateness_seconds if lateness_seconds is not None else (
            last.lateness_seconds if last else 5))
    before = parameters(last) if last else None
    changes = _changes(before, parameters(settings)) if before is not None else {}
    current = status(cfg)
    if current["running"]:
        if not changes and not fresh:
            print(f"The analytics app is already running with these settings "
                  f"(pid {current['pid']}).")
            return current
        why = f"the settings changed: {_say_changes(changes)}" if changes else "fresh=True"
        print(f"The analytics app is running (pid {current['pid']}) and {why}: restarting it.")
        stop(cfg)
    checkpoint = None if fresh else latest_checkpoint(cfg)
    if checkpoint is not None and changes:
        print(f"The settings differ from the last run's ({_say_changes(changes)}): its "
              f"checkpoint holds windows and forests of the old settings and cannot be "
              f"used, so the app starts fresh from the {start_position} position.")
        checkpoint = None
    if checkpoint is None:
        for old in (work, cfg.stream_dir(cfg.scores_stream),
                    cfg.stream_dir(cfg.dead_letter_stream)):
            shutil.rmtree(old, ignore_errors=True)
        (work / "log").mkdir(parents=True)
        props.write_text(json.dumps(settings.to_properties(), indent=2))
        point = _start_point(cfg, start_position, settings.window_seconds)
        (work / "start.json").write_text(json.dumps(point))
        if start_position == "latest":
            first = datetime.fromtimestamp(point["start_ms"] / 1000, UTC)
            print(f"Reading from the latest position: the first window starts at "
                  f"{first:%H:%M:%S} UTC; {point['not_read']} earlier record(s) in the "
                  f"stream are not read (start_position='earliest' reads them).")
        else:
            print("Reading from the earliest position: every record in the stream, in "
                  "order (0 earlier records not read).")
    else:
        point = json.loads((work / "start.json").read_text())
        print(f"Resuming from checkpoint {checkpoint.parent.name}/{checkpoint.name}: "
              f"everything that arrived since is read, in order "
              f"(start position of this run: {point['start_position']}).")
        shutil.rmtree(work / "tmp", ignore_errors=True)
        (work / "running").unlink(missing_ok=True)
    cfg.stream_dir(cfg.input_stream).mkdir(parents=True, exist_ok=True)
    env = flink_env(work)
    cmd = [sys.executable, "-m", "labhelpers.app", "run", "--properties", str(props),
           "--prefix", cfg.prefix, "--home", str(cfg.home), "--port", str(cfg.emulator_port)]
    if not alerts:
        cmd.append("--no-alerts")
    if checkpoint is not None:
        cmd += ["--restore", str(checkpoint)]
    proc = spawn(cmd, work / "app.log", env=env, cwd=work)
    state = {"pid": proc.pid, "started": time.time(), "properties": str(props),
             "log": str(work / "app.log"), "alerts": alerts,
             "resumed_from": str(checkpoint) if checkpoint else None}
    _state_file(cfg).write_text(json.dumps(state))
    deadline = time.time() + wait_seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AppError(
                f"The analytics app exited at start (code {proc.returncode}); last log lines:\n"
                + logs(cfg, 15),
                "read the log above (labhelpers.app.logs), fix the cause and start again.",
            )
        if (work / "running").exists():
            print(f"Analytics app started (pid {proc.pid}); log: {work / 'app.log'}")
            return status(cfg)
        time.sleep(0.5)
    stop(cfg)
    raise AppError(
        f"The analytics app did not start within {wait_seconds:.0f} s",
        "check `python -m labhelpers app logs` and that Java works (python -m labhelpers doctor).",
    )


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
    """The settings the app was last started with (window, lateness, forest parameters);
    ``parameters(settings(cfg))`` is the same as a flat dict."""
    path = app_dir(cfg) / "properties.json"
    if not path.exists():
        raise AppError("The analytics app has not been started",
                       "start it with notebook 03 or `python -m labhelpers app start`.")
    return JobSettings.from_properties(json.loads(path.read_text()))


def status(cfg: LabConfig) -> dict[str, Any]:
    """Is the app running, since when, and how much it has produced: windows scored,
    anomalies, bad records and late records (both in the dead-letter stream), the start
    position and the records not read before it, and the app's ``parameters`` (window,
    lateness and forest settings it was started with; None before the first start)."""
    state = _read_state(cfg) or {}
    pid = state.get("pid")
    running = alive(pid, MARKER)
    scores = read_all_lines(cfg.stream_dir(cfg.scores_stream))
    dead = read_all_lines(cfg.stream_dir(cfg.dead_letter_stream))
    late = sum(f'"reason":"{LATE}"' in d for d in dead)
    last = json.loads(scores[-1]) if scores else None
    point = _read_json(app_dir(cfg) / "start.json")
    fed = _feeder_counts(cfg)
    return {
        "running": running,
        "pid": pid if running else None,
        "uptime_s": round(time.time() - state["started"], 1) if running else 0.0,
        "windows_scored": len(scores),
        "anomalies": sum('"is_anomaly":true' in s for s in scores),
        "bad_records": len(dead) - late,
        "late_records": late,
        "last_window": (last or {}).get("window_end"),
        "start_position": point.get("start_position"),
        "parameters": _parameters_if_any(cfg),
        "records_fed": fed["fed"],
        "not_read_before_start": fed["skipped"],
        "resumed_from": state.get("resumed_from") if running else None,
        "log": state.get("log"),
    }


def _parameters_if_any(cfg: LabConfig) -> dict[str, Any] | None:
    props = _read_json(app_dir(cfg) / "properties.json")
    return parameters(JobSettings.from_properties(props)) if props else None


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
    state = _read_state(cfg)
    if not state:
        return False
    pid = state["pid"]
    was_running = stop_group(pid, timeout, MARKER)
    _state_file(cfg).unlink(missing_ok=True)
    (app_dir(cfg) / "running").unlink(missing_ok=True)
    shutil.rmtree(app_dir(cfg) / "tmp", ignore_errors=True)
    if was_running:
        print(f"Analytics app stopped (pid {pid}).")
    return was_running


def logs(cfg: LabConfig, lines: int = 40) -> str:
    """The last ``lines`` lines of the app's log (its own output plus Flink's errors)."""
    path = app_dir(cfg) / "app.log"
    if not path.exists():
        return "(no log yet: the app has not been started)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_scores(cfg: LabConfig, count: int = 1, timeout: float = 180) -> list[dict]:
    """Block until at least ``count`` score rows exist; AppError if the app dies or times out."""
    deadline = time.time() + timeout
    while True:
        rows = [json.loads(s) for s in read_all_lines(cfg.stream_dir(cfg.scores_stream))]
        if len(rows) >= count:
            return rows
        if not status(cfg)["running"]:
            raise AppError("The analytics app is not running; last log lines:\n" + logs(cfg, 15),
                           "start it with notebook 03 or `python -m labhelpers app start`.")
        if time.time() > deadline:
            raise AppError(f"No {count} score rows after {timeout:.0f} s",
                           "check that the generator is sending (notebook 02) and the app log.")
        time.sleep(1)


def _run(args: argparse.Namespace) -> int:
    """Body of the background process: alert poller thread + the Flink job (blocking)."""
    from . import job

    cfg = load_config(prefix=args.prefix, home=args.home, emulator_port=args.port)
    settings = JobSettings.from_properties(json.loads(Path(args.properties).read_text()))
    if args.restore:
        settings.runtime["execution.state-recovery.path"] = args.restore
    stop_event = threading.Event()
    poller_thread = None
    if not args.no_alerts:
        from .alerts import LocalPoller

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
            print(f"feeder: {len(taken)} feed file(s) newer than the checkpoint fed again, "
                  "merged", flush=True)
    if not feeder.use_atime:
        print("feeder: this file system keeps no access times; feeding one file per 3 s",
              flush=True)
    feeder_thread = threading.Thread(target=feeder.run_forever, args=(stop_event,),
                                     name="feeder", daemon=True)
    feeder_thread.start()
    result = job.run(settings, wait=False)
    (app_dir(cfg) / "running").write_text(str(os.getpid()))
    print(f"job submitted: {result.get_job_client().get_job_id()}", flush=True)
    try:
        result.wait()
    finally:
        stop_event.set()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labhelpers.app")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the app in the foreground (used by start)")
    run.add_argument("--properties", required=True)
    run.add_argument("--prefix", required=True)
    run.add_argument("--home", required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--no-alerts", action="store_true")
    run.add_argument("--restore", default=None, help="checkpoint folder to resume from")
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
