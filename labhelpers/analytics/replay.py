"""Replay: the analytics job over a file of click records, in event time, as fast as it can.

Runs the very same job (SQL + forest) as the live app, with a bounded file source, in a
child process (a JVM in a notebook kernel would outlive the cell), then turns the job's
output into ``scores.csv`` and ``dead_letters.jsonl``.

A replay runs without checkpoints. With checkpointing on, Flink ends a bounded job only after
a checkpoint completes once every task has finished its input; it triggers one at that
moment, and if that one is declined (a task that already had its final checkpoint is closing
at the same instant, "Checkpoint was declined (task is closing)") the job waits, idle, for
the next periodic checkpoint: ten minutes with the interval replays used (issue 16). Without
checkpoints no task waits for one, and the file sink commits its files when its input ends.
A replay keeps no state worth restoring (it starts from the beginning every time).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import AppError, ConfigError
from ..flinkenv import SMALL_JOB_RECORDS, flink_env, local_runtime
from ..job.contracts import REPLAY_CSV_COLUMNS
from ..job.params import JobParams
from ..job.pipeline import JobSettings, filesystem_sink, filesystem_source
from ..logs import logger
from ..stream.log import read_all_lines
from ..wait import WaitTimeout, wait_until

log = logger(__name__)

# The slow-replay warning: a replay should take about a job's start-up plus its records at the
# job's throughput; it warns above SLOW_FACTOR times that. The figures are generous: start-up
# is 15-30 s on an idle machine (90-165 s measured for small replays while other sessions kept
# both cores busy), and the job does ~14k records/s end to end for a day of traffic (README).
# So the warning means the job waited on something (issue 16: a lost final checkpoint), not
# that the machine was busy.
SLOW_STARTUP_S = 90.0
SLOW_RECORDS_PER_S = 10_000.0
SLOW_FACTOR = 3.0


def expected_seconds(records: int) -> float:
    """A generous estimate of a replay's time: start-up plus records at a low throughput."""
    return SLOW_STARTUP_S + records / SLOW_RECORDS_PER_S


def slow_warning(seconds: float, records: int, log: Path) -> str | None:
    """The warning for a replay that took more than SLOW_FACTOR times ``expected_seconds``
    (None if it did not); it names the Flink log to read."""
    limit = SLOW_FACTOR * expected_seconds(records)
    if seconds <= limit:
        return None
    return (f"the replay took {seconds:.0f} s for {records} records, more than "
            f"{SLOW_FACTOR:g} x the {expected_seconds(records):.0f} s it should need "
            f"(start-up + records); the job probably waited on something: read {log}")


def flink_log(log_dir: Path) -> Path:
    """The job's Flink log file in ``log_dir`` (the folder itself if there is none)."""
    logs = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_size)
    return logs[-1] if logs else log_dir


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _run_job(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float,
             progress: bool = True) -> subprocess.CompletedProcess:
    """Run the job in its own process group, so that a timeout stops its JVM as well; a
    progress line counts the seconds meanwhile (a replay takes from ~15 s to minutes)."""
    output: dict[str, str] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=str(cwd), start_new_session=True) as proc:
        def read() -> None:
            output["out"], output["err"] = proc.communicate()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_until(lambda: not reader.is_alive(), "the replay job (Flink)", timeout=timeout,
                       interval=0.5, progress=progress)
        except WaitTimeout:
            os.killpg(proc.pid, signal.SIGKILL)
            reader.join()
            raise AppError(
                f"The replay job did not end within {timeout:.0f} s",
                f"read the Flink log {flink_log(cwd / 'log')}, or give a longer timeout.",
            ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, output.get("out", ""),
                                       output.get("err", ""))


def replay(
    input_path: Path | str,
    out_dir: Path | str,
    params: JobParams | dict | None = None,
    *,
    timeout: float = 1800,
    jvm_args: str = "",
    progress: bool = True,
    report_from_ms: int | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Score ``input_path`` (JSON lines) and write ``out_dir/scores.csv``; returns a summary.
    params / changes: the app's parameters (``JobParams.of(params, **changes)``).
    ``jvm_args`` are added to the job's JVM options (diagnostics, the start-up cache).
    ``report_from_ms``: the forest warms up on the windows that end at or before it (read and
    learned, not reported), as the live app does from the records before its start position.
    The summary's ``warning`` (also printed) says when the job took far longer than its
    input needs (see ``slow_warning``); an AppError if it runs longer than ``timeout`` s."""
    src = Path(input_path).resolve()
    if not src.exists():
        raise ConfigError(f"Replay input {src} does not exist",
                          "give a JSON-lines file of click records (see README).")
    out = Path(out_dir).resolve()
    work = out / "_job"
    shutil.rmtree(work, ignore_errors=True)
    (work / "log").mkdir(parents=True)
    settings = JobSettings(
        input_connector=filesystem_source(src, continuous=False),
        scores_connector=filesystem_sink(work / "scores"),
        dead_letter_connector=filesystem_sink(work / "dead_letters"),
        params=JobParams.of(params, **changes),
        # no checkpoints: the file sink commits at the end of the input, and a final
        # checkpoint could be lost and stall the job for a checkpoint interval (see above)
        runtime=local_runtime(work, checkpoint_interval=None),
        report_from_ms=report_from_ms,
    )
    props = work / "properties.json"
    props.write_text(json.dumps(settings.to_properties(), indent=2))
    records = _count_lines(src)
    env = flink_env(work, small=records < SMALL_JOB_RECORDS, thread_mode=True)
    env["JVM_ARGS"] = f"{env['JVM_ARGS']} {jvm_args}".strip()
    started = time.perf_counter()
    proc = _run_job([sys.executable, "-m", "labhelpers.job.pipeline", "--properties",
                     str(props)], env, work, timeout, progress=progress)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-25:])
        raise AppError(f"The replay job failed (exit {proc.returncode}):\n{tail}",
                       f"read the log {flink_log(work / 'log')} and fix the input or settings.")
    rows = [json.loads(line) for line in read_all_lines(work / "scores")]
    rows.sort(key=lambda r: (r["window_start"], r["site"]))
    with open(out / "scores.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REPLAY_CSV_COLUMNS)
        for r in rows:
            writer.writerow(["" if r[c] is None else r[c] for c in REPLAY_CSV_COLUMNS])
    dead = read_all_lines(work / "dead_letters")
    (out / "dead_letters.jsonl").write_text("".join(f"{d}\n" for d in dead), encoding="utf-8")
    with open(out / "scores.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    shutil.rmtree(work / "tmp", ignore_errors=True)
    warning = slow_warning(seconds, records, flink_log(work / "log"))
    if warning:
        log.warning(f"WARNING: {warning}")
    return {
        "input": str(src),
        "windows": len(rows),
        "anomalies": sum(bool(r["is_anomaly"]) for r in rows),
        "bad_records": len(dead),
        "seconds": round(seconds, 2),
        "scores_csv": str(out / "scores.csv"),
        "warning": warning,
    }
