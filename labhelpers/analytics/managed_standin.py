"""The stand-in for Managed Service for Apache Flink when the aws backend is rehearsed against
the local emulator: the PACKAGED application runs on the local mini-cluster.

What the service would do with the zip, done here with the same inputs:

- the zip (``python -m labhelpers package``) is unpacked; its run options (property group
  ``kinesis.analytics.flink.run.options``, built by ``managed_config.application_properties``) name
  the entry point (``python``), the Python folder (``pyFiles``) and the connector (``jarfile``);
- the property groups are the ones the service would get
  (``managed_config.application_properties`` of ``managed_config.emulator_settings``): the
  Kinesis connector options of the stack's streams plus
  the emulator's endpoint, ``aws.http.protocol.version=HTTP1_1`` and its fake keys, and a
  ``lab.runtime`` group with the local mini-cluster's settings and the zip's jar as
  ``pipeline.jars`` (on the service that group is absent);
- the entry point runs in a background process with ``-Daws.cborEnabled=false`` (the emulator
  answers HTTP 500 to the SDK's CBOR requests) and the unpacked ``dep/`` plus PyFlink's
  site-packages on ``PYTHONPATH`` (thread mode's embedded interpreter reads no .pth files: without
  them it fails with "No module named 'pemja'"); the repository's own ``labhelpers`` is NOT on
  the path, so the run proves the zip's code.

``start`` / ``status`` / ``stop`` / ``logs`` / ``error_lines``; one stand-in per lab prefix, found
again from its state file by any notebook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from ..background import BackgroundProcess
from ..errors import AppError
from ..flinkenv import PACKAGE_PARENT, flink_env
from ..infra.config import LabConfig
from ..job.params import JobParams
from ..logs import logger

log = logger(__name__)

STANDIN_DIRNAME = "managed-standin"
# A log4j line below ERROR ("2026-12-01 10:00:00,000 INFO ...") is not an error line, even if
# it names an exception (Flink logs "Hadoop FS is not available: NoClassDefFoundError" at INFO),
# unless a Python module is missing: thread mode's worker reports that only there.
_LOG4J_QUIET = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+\s+(TRACE|DEBUG|INFO|WARN)\b")
_ALWAYS = ("ModuleNotFoundError", "ImportError", "No module named")
JVM_EXTRA = "-Daws.cborEnabled=false"
PROPERTIES_FILE = "application_properties.json"
_ERROR_WORDS = ("Exception", "Error", "ERROR", "Traceback", "FAILED")


def standin_dir(cfg: LabConfig) -> Path:
    """Where the stand-in keeps the unpacked zip, its properties, logs and state."""
    return cfg.lab_dir / STANDIN_DIRNAME


def process(cfg: LabConfig) -> BackgroundProcess:
    """The stand-in's background process (its marker: the stand-in's folder in its path)."""
    return BackgroundProcess(standin_dir(cfg) / "standin.json", STANDIN_DIRNAME,
                             standin_dir(cfg) / "standin.log")


def _run_options(groups: list[dict[str, Any]]) -> dict[str, str]:
    from .managed_config import RUN_OPTIONS_GROUP

    for g in groups:
        if g["PropertyGroupId"] == RUN_OPTIONS_GROUP:
            return dict(g["PropertyMap"])
    raise AppError(f"The application properties have no {RUN_OPTIONS_GROUP} group",
                   "build them with labhelpers.analytics.managed.application_properties.")


def unpack(zip_path: Path, dest: Path) -> Path:
    """Check and unpack the application zip into ``dest`` (emptied first); ``dest``."""
    from .packaging import check_zip

    check_zip(Path(zip_path))
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def standin_env(work: Path, dep: Path) -> dict[str, str]:
    """The process environment: labhelpers.flinkenv.flink_env (Java, heap, Flink's log folder,
    site-packages for thread mode, the JVM start-up cache) with the zip's ``dep/`` first on
    the Python path instead of the repository, and the JVM told to speak JSON to Kinesis."""
    env = flink_env(work)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).resolve() != PACKAGE_PARENT.resolve()]
    env["PYTHONPATH"] = os.pathsep.join([str(dep), *paths])
    env["JVM_ARGS"] = f"{env.get('JVM_ARGS', '')} {JVM_EXTRA}".strip()
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_groups(cfg: LabConfig, groups: list[dict[str, Any]], app: Path, work: Path, *,
                 endpoint: str | None = None, restore: str | None = None
                 ) -> list[dict[str, Any]]:
    """The property groups the SERVICE would get, made runnable on the local mini-cluster:
    the emulator's endpoint and fake keys added to each connector, and a ``lab.runtime`` group
    (local folders, the zip's jar as ``pipeline.jars``, a REST port for snapshots, and the
    snapshot to restore from). What the lab sent the service is otherwise unchanged."""
    from ..flinkenv import local_runtime
    from ..infra.config import LOCAL_CREDENTIALS
    from ..job.pipeline import JobSettings
    from . import managed_config

    endpoint = endpoint or cfg.endpoint_url
    job_groups = [g for g in groups if g["PropertyGroupId"] != managed_config.RUN_OPTIONS_GROUP]
    settings = JobSettings.from_properties(job_groups)
    extra = managed_config._endpoint_options(endpoint, dict(LOCAL_CREDENTIALS))
    for conn in (settings.input_connector, settings.scores_connector,
                 settings.dead_letter_connector):
        conn.update(extra)
    # see managed_config.emulator_settings: the emulator's first shard discovery can be slow
    settings.input_connector["source.shard.discovery.interval"] = \
        managed_config.EMULATOR_DISCOVERY_INTERVAL
    run = _run_options(groups)
    jar = (app / run["jarfile"]).resolve()
    settings.runtime = {**local_runtime(work), "pipeline.jars": jar.as_uri(),
                        "rest.port": str(_free_port())}
    if restore:
        settings.runtime["execution.state-recovery.path"] = restore
    return managed_config.application_properties(settings)


def launch(cfg: LabConfig, zip_path: Path | str, groups: list[dict[str, Any]], *,
           endpoint: str | None = None, restore: str | None = None) -> BackgroundProcess:
    """Start the packaged application in the background with the service's property groups
    (``local_groups`` adds what the mini-cluster needs); its process. Returns at once: the
    job is submitted when ``submitted_job`` names it."""
    work = standin_dir(cfg)
    shutil.rmtree(work, ignore_errors=True)
    (work / "log").mkdir(parents=True)
    app = unpack(Path(zip_path), work / "app")
    props_groups = local_groups(cfg, groups, app, work, endpoint=endpoint, restore=restore)
    props = work / PROPERTIES_FILE
    props.write_text(json.dumps(props_groups, indent=2))
    run = _run_options(props_groups)
    entry = app / run["python"]
    dep = app / run["pyFiles"].rstrip("/")
    runtime = next(g["PropertyMap"] for g in props_groups
                   if g["PropertyGroupId"] == "lab.runtime")
    # The marker in the command line (the stand-in's folder) tells it from a recycled pid.
    cmd = [sys.executable, str(entry), "--properties", str(props), "--wait"]
    standin = process(cfg)
    standin.start(cmd, env=standin_env(work, dep), cwd=app, zip=str(zip_path),
                  properties=str(props), submitted=None, job_id=None,
                  rest_port=int(runtime["rest.port"]), restored_from=restore)
    return standin


def submitted_job(cfg: LabConfig) -> str | None:
    """The Flink job id once the packaged application has submitted its job, else None."""
    log = process(cfg).log
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.split("job submitted:", 1)[1].split()[0] if "job submitted:" in text else None


def take_snapshot(cfg: LabConfig, target: Path, timeout: float = 120) -> str | None:
    """Stop the running job with a savepoint in ``target`` (Flink's REST API: what the service
    does when it takes a snapshot at stop); the savepoint's location, or None when there is no
    job to snapshot. The job ends; its sinks have flushed what they hold."""
    import urllib.request

    state = process(cfg).state()
    job, port = submitted_job(cfg), state.get("rest_port")
    if not (job and port and process(cfg).running):
        return None
    base = f"http://127.0.0.1:{port}/jobs/{job}"
    body = json.dumps({"targetDirectory": Path(target).resolve().as_uri(),
                       "drain": False}).encode()
    req = urllib.request.Request(f"{base}/stop", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        trigger = json.load(resp)["request-id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/savepoints/{trigger}", timeout=30) as resp:
                doc = json.load(resp)
        except OSError:  # incl. RemoteDisconnected: the job ended, its cluster is going away
            if done := _completed_savepoint(Path(target)):
                return done
            if not process(cfg).running:
                raise AppError("The stand-in's job ended before its snapshot completed",
                               "start it again, then stop it again (or force-stop it and "
                               "start fresh).") from None
            time.sleep(0.5)
            continue
        if doc.get("status", {}).get("id") == "COMPLETED":
            op = doc.get("operation") or {}
            if "location" in op:
                return str(op["location"])
            raise AppError(f"The snapshot of the stand-in's job failed: "
                           f"{str(op.get('failure-cause', op))[:300]}",
                           "stop it without a snapshot (force) and start it fresh.")
        time.sleep(0.5)
    raise AppError(f"The snapshot of the stand-in's job took more than {timeout:.0f} s",
                   "stop it without a snapshot (force) and start it fresh.")


def _completed_savepoint(target: Path) -> str | None:
    """The newest complete savepoint in ``target`` (Flink writes ``_metadata`` last), as a
    URI, or None. Read when the job's REST endpoint went away as the stop finished: on an
    idle machine the mini-cluster can close before the last status poll."""
    done = sorted((p.parent for p in target.glob("savepoint-*/_metadata")),
                  key=lambda p: p.stat().st_mtime)
    return done[-1].resolve().as_uri() if done else None


def start(cfg: LabConfig, zip_path: Path | str, outputs: dict[str, str], *,
          endpoint: str | None = None, params: JobParams | dict | None = None,
          start_position: str = "TRIM_HORIZON", wait_seconds: float = 180,
          progress: bool = True) -> dict[str, Any]:
    """Run the packaged application on the local mini-cluster against the emulator's streams.

    zip_path: the package; outputs: the stack outputs (stream ARNs); endpoint: the emulator's
    URL (default ``cfg.endpoint_url``; an aws-backend config rehearsed against the emulator
    passes it). Returns ``status`` once the job is submitted; AppError with the error lines
    (including Flink's own log) if the process exits or nothing is submitted in time. A
    stand-in already running is returned as it is.
    """
    from . import managed_config

    current = status(cfg)
    if current["running"]:
        if progress:
            log.info(f"The managed-service stand-in is already running (pid {current['pid']}).")
        return current
    settings = managed_config.cloud_settings(cfg, outputs, params,
                                             start_position=start_position)
    groups = managed_config.application_properties(settings)
    standin = launch(cfg, zip_path, groups, endpoint=endpoint)
    pid = standin.pid
    work = standin_dir(cfg)
    started = standin.state()["started"]
    if progress:
        log.info(f"Starting the managed-service stand-in (pid {pid}): the packaged app on the "
                 "local mini-cluster, Kinesis on the emulator ...")

    def failed(why: str) -> AppError:
        lines = "\n".join(f"    {ln}" for ln in error_lines(cfg)) or "    (none)"
        # the error lines below (Flink's log included) say more than the log's tail
        reason = why.split("; last log lines")[0]
        return AppError(f"The managed-service stand-in did not start: {reason}; error lines:"
                        f"\n{lines}",
                        f"read {standin.log} and Flink's log in {work / 'log'}, fix the cause, "
                        "rebuild the package and start again (a busy machine: a larger "
                        "wait_seconds).")

    job_id = standin.wait_ready(lambda: submitted_job(cfg), "the packaged job to be submitted",
                                wait_seconds, failed, interval=0.5)
    standin.write_state(submitted=time.time(), job_id=job_id)
    if progress:
        log.info(f"  RUNNING after {time.time() - started:.1f} s (job {job_id})")
    return status(cfg)


def status(cfg: LabConfig) -> dict[str, Any]:
    """``{running, pid, uptime_s, job_id, seconds_to_submit, log}`` of the stand-in."""
    standin = process(cfg)
    state, running = standin.state(), standin.running
    pid = state.get("pid")
    submitted = state.get("submitted")
    return {
        "running": running,
        "pid": pid if running else None,
        "uptime_s": round(time.time() - state["started"], 1) if running else 0.0,
        "job_id": state.get("job_id"),
        "started": state.get("started"),
        "seconds_to_submit": (round(submitted - state["started"], 1)
                              if submitted and state.get("started") else None),
        "log": state.get("log"),
    }


def stop(cfg: LabConfig, timeout: float = 20, progress: bool = True) -> bool:
    """Stop the stand-in (its process group: Python, JVM, workers); True if it was running."""
    standin = process(cfg)
    state = standin.state()
    was = standin.stop(timeout)
    shutil.rmtree(standin_dir(cfg) / "tmp", ignore_errors=True)
    if was and progress:
        log.info(f"Managed-service stand-in stopped (pid {state['pid']}).")
    return was


def _flink_logs(cfg: LabConfig) -> list[Path]:
    return sorted((standin_dir(cfg) / "log").glob("*.log"))


def error_lines(cfg: LabConfig, limit: int = 12) -> list[str]:
    """Error lines of the stand-in's output AND of Flink's own log (where a failing Python
    worker's "ModuleNotFoundError" only shows), first seen first, without repeats."""
    seen: dict[str, None] = {}
    files = [standin_dir(cfg) / "standin.log", *_flink_logs(cfg)]
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            text = line.strip()
            if text.startswith("at ") or not any(w in text for w in _ERROR_WORDS):
                continue
            if _LOG4J_QUIET.match(text) and not any(w in text for w in _ALWAYS):
                continue
            seen.setdefault(text[:400], None)
    return list(seen)[:limit]


def logs(cfg: LabConfig, lines: int = 40) -> str:
    """The last ``lines`` lines of the stand-in's output, then the error lines of Flink's log."""
    path = standin_dir(cfg) / "standin.log"
    if not path.exists():
        return "(no log yet: the stand-in has not been started)"
    out = path.read_text(errors="replace").splitlines()[-lines:]
    flink_errors = [ln for ln in error_lines(cfg, limit=lines) if ln not in out]
    if flink_errors:
        out += ["--- error lines of Flink's log ---", *flink_errors]
    return "\n".join(out)
