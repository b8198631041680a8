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
from pathlib import Path
from typing import Any

from ..background import BackgroundProcess
from ..errors import AppError
from ..flinkenv import flink_env, local_runtime
from ..infra.config import LabConfig, load_config
from ..stream.log import read_all_lines
from .job import JobSettings, filesystem_sink, filesystem_source
from .params import JobParams

MARKER = "labhelpers.analytics.runner"  # in the background process's command line


def app_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "app"


def local_settings(cfg: LabConfig, params: JobParams) -> JobSettings:
    """Job settings for the live local app: stream logs in, stream logs out."""
    return JobSettings(
        input_connector=filesystem_source(cfg.stream_dir(cfg.input_stream), continuous=True),
        scores_connector=filesystem_sink(cfg.stream_dir(cfg.scores_stream)),
        dead_letter_connector=filesystem_sink(cfg.stream_dir(cfg.dead_letter_stream)),
        params=params,
        runtime=local_runtime(app_dir(cfg)),
    )


def process(cfg: LabConfig) -> BackgroundProcess:
    """The app's background process (state in ``<lab_dir>/app/app.json``)."""
    return BackgroundProcess(app_dir(cfg) / "app.json", MARKER, app_dir(cfg) / "app.log")


def start(
    cfg: LabConfig,
    params: JobParams | dict | None = None,
    *,
    alerts: bool = True,
    fresh: bool = False,
    wait_seconds: float = 90,
    **changes: Any,
) -> dict[str, Any]:
    """Start the app in the background (or return the one already running).

    params / changes: the app's parameters (``JobParams.of(params, **changes)``, e.g.
    ``window_seconds=5, threshold=2.5``). If an earlier run with the same parameters left a
    checkpoint (it was stopped, killed or crashed), the app resumes from it: the input is
    read on from where that checkpoint was, each forest continues from its saved state, and
    no window is lost or reported twice. Otherwise (or with ``fresh=True``, or changed
    parameters) it starts fresh: it clears the earlier outputs and reads the input stream
    from its beginning. ``alerts`` also runs the local alert poller (needs the stack
    deployed). Waits until the Flink job is running.
    """
    if process(cfg).running:
        print(f"The analytics app is already running (pid {process(cfg).pid}).")
        return status(cfg)
    settings = local_settings(cfg, JobParams.of(params, **changes))
    work = app_dir(cfg)
    props = work / "properties.json"
    checkpoint = None if fresh else latest_checkpoint(cfg)
    if checkpoint is not None and json.loads(props.read_text()) != settings.to_properties():
        print("The settings differ from the last run's, so its checkpoint cannot be used: "
              "starting fresh.")
        checkpoint = None
    if checkpoint is None:
        for old in (work, cfg.stream_dir(cfg.scores_stream),
                    cfg.stream_dir(cfg.dead_letter_stream)):
            shutil.rmtree(old, ignore_errors=True)
        (work / "log").mkdir(parents=True)
        props.write_text(json.dumps(settings.to_properties(), indent=2))
    else:
        print(f"Resuming from checkpoint {checkpoint.parent.name}/{checkpoint.name}.")
        shutil.rmtree(work / "tmp", ignore_errors=True)
        (work / "running").unlink(missing_ok=True)
    cfg.stream_dir(cfg.input_stream).mkdir(parents=True, exist_ok=True)
    env = flink_env(work)
    cmd = [sys.executable, "-m", "labhelpers.analytics.runner", "run", "--properties", str(props),
           "--prefix", cfg.prefix, "--home", str(cfg.home), "--port", str(cfg.emulator_port)]
    if not alerts:
        cmd.append("--no-alerts")
    if checkpoint is not None:
        cmd += ["--restore", str(checkpoint)]
    app = process(cfg)
    pid = app.start(cmd, env=env, cwd=work, properties=str(props), alerts=alerts,
                    resumed_from=str(checkpoint) if checkpoint else None)
    app.wait_ready(lambda: (work / "running").exists(), "the Flink job to run", wait_seconds,
                   lambda why: AppError(f"The analytics app did not start: {why}",
                                        "read the log above (python -m labhelpers app logs), "
                                        "fix the cause and start again; `python -m labhelpers "
                                        "doctor` checks Java."))
    print(f"Analytics app started (pid {pid}); log: {app.log}")
    return status(cfg)


def latest_checkpoint(cfg: LabConfig) -> Path | None:
    """The newest complete checkpoint of the app's earlier runs (a folder ``chk-N``), if any."""
    done = [m.parent for m in (app_dir(cfg) / "checkpoints").glob("*/chk-*/_metadata")]
    return max(done, key=lambda d: (d.stat().st_mtime, int(d.name[4:]))) if done else None


def settings(cfg: LabConfig) -> JobSettings:
    """The settings the app was last started with (window, lateness, forest parameters)."""
    path = app_dir(cfg) / "properties.json"
    if not path.exists():
        raise AppError("The analytics app has not been started",
                       "start it with notebook 03 or `python -m labhelpers app start`.")
    return JobSettings.from_properties(json.loads(path.read_text()))


def status(cfg: LabConfig) -> dict[str, Any]:
    """Is the app running, since when, and how much it has produced."""
    app = process(cfg)
    state, running = app.state(), app.running
    pid = state.get("pid")
    scores = read_all_lines(cfg.stream_dir(cfg.scores_stream))
    dead = read_all_lines(cfg.stream_dir(cfg.dead_letter_stream))
    last = json.loads(scores[-1]) if scores else None
    return {
        "running": running,
        "pid": pid if running else None,
        "uptime_s": round(time.time() - state["started"], 1) if running else 0.0,
        "windows_scored": len(scores),
        "anomalies": sum('"is_anomaly":true' in s for s in scores),
        "bad_records": len(dead),
        "last_window": (last or {}).get("window_end"),
        "resumed_from": state.get("resumed_from") if running else None,
        "log": state.get("log"),
    }


def stop(cfg: LabConfig, timeout: float = 20) -> bool:
    """Stop the app and its JVM (the whole process group). True if it was running."""
    app = process(cfg)
    pid = app.state().get("pid")
    was_running = app.stop(timeout)
    (app_dir(cfg) / "running").unlink(missing_ok=True)
    shutil.rmtree(app_dir(cfg) / "tmp", ignore_errors=True)
    if was_running:
        print(f"Analytics app stopped (pid {pid}).")
    return was_running


def logs(cfg: LabConfig, lines: int = 40) -> str:
    """The last ``lines`` lines of the app's log (its own output plus Flink's errors)."""
    if not process(cfg).log.exists():
        return "(no log yet: the app has not been started)"
    return process(cfg).log_tail(lines)


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
    result = job.run(settings, wait=False)
    (app_dir(cfg) / "running").write_text(str(os.getpid()))
    print(f"job submitted: {result.get_job_client().get_job_id()}", flush=True)
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
    run.add_argument("--prefix", required=True)
    run.add_argument("--home", required=True)
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--no-alerts", action="store_true")
    run.add_argument("--restore", default=None, help="checkpoint folder to resume from")
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
