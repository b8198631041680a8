"""Traffic in the background: the generator as a process that outlives notebook kernels.

Notebook 02 starts it, notebook 04 asks it for a spike (a control file it watches), and
cleanup stops it. On the local backend it also copies every batch into the raw bucket
under ``weblogs/raw/YYYY/MM/DD/HH/`` (the job Firehose does on AWS), when the stack exists.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import LabConfig, load_config
from .contracts import CLICK
from .errors import GeneratorError
from .generator import (
    Sink,
    lab_test_plan,
    make_sink,
    start_background,
    steady_plan,
    timeline,
    write_jsonl,
)
from .procs import alive, spawn, stop_group

MARKER = "labhelpers.traffic"  # in the background process's command line


def traffic_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "traffic"


class RawArchiveSink:
    """Wraps a sink and copies each batch, gzipped, into the raw bucket (best effort:
    an archive failure is counted and shown, it never stops the traffic)."""

    def __init__(self, inner: Sink, s3, bucket: str) -> None:
        self.inner, self.s3, self.bucket = inner, s3, bucket
        self.archived = 0
        self.archive_errors = 0
        self.last_archive_error: str | None = None

    @property
    def stats(self):
        return self.inner.stats

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        self.inner.send(lines, keys)
        if not lines:
            return
        now = datetime.now(UTC)
        key = f"weblogs/raw/{now:%Y/%m/%d/%H}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl.gz"
        try:
            body = gzip.compress("".join(f"{ln}\n" for ln in lines).encode())
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            self.archived += 1
        except Exception as err:  # the stream is the source of truth; the archive is a copy
            self.archive_errors += 1
            self.last_archive_error = str(err)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def status(cfg: LabConfig) -> dict[str, Any]:
    """Is traffic being sent, and the generator's counters (updated every half second)."""
    d = traffic_dir(cfg)
    state = _read(d / "process.json")
    stats = _read(d / "stats.json")
    running = alive(state.get("pid"), MARKER)
    return {"running": running, "pid": state.get("pid") if running else None,
            "plan": state.get("plan"), **stats}


def start(
    cfg: LabConfig,
    sites: Sequence[str] = ("example.com",),
    click_rate: float = 1.0,
    impression_rate: float = 1.0,
    duration_s: float | None = None,
    wait_seconds: float = 30,
) -> dict[str, Any]:
    """Start sending Impression and Click records for every site (idempotent)."""
    current = status(cfg)
    if current["running"]:
        print(f"Traffic is already being sent (pid {current['pid']}); stop it to change rates.")
        return current
    steady_plan(sites, impression_rate, click_rate, duration_s)  # validate here, not in the child
    d = traffic_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.json"):
        old.unlink()
    plan = {"sites": list(sites), "click_rate": click_rate, "impression_rate": impression_rate,
            "duration_s": duration_s}
    cmd = [sys.executable, "-m", "labhelpers.traffic", "--prefix", cfg.prefix,
           "--home", str(cfg.home), "--port", str(cfg.emulator_port),
           "--backend", cfg.backend, "--region", cfg.region, "--plan", json.dumps(plan)]
    proc = spawn(cmd, d / "traffic.log")
    (d / "process.json").write_text(json.dumps({"pid": proc.pid, "plan": plan}))
    deadline = time.time() + wait_seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = (d / "traffic.log").read_text(errors="replace").splitlines()[-10:]
            raise GeneratorError("The traffic generator exited at start:\n" + "\n".join(tail),
                                 "fix the cause shown above and start it again.")
        if (d / "stats.json").exists():
            print(f"Sending traffic to {', '.join(sites)}: Impression {impression_rate}/s, "
                  f"Click {click_rate}/s per site (pid {proc.pid}).")
            return status(cfg)
        time.sleep(0.2)
    raise GeneratorError(f"The traffic generator did not report within {wait_seconds:.0f} s",
                         f"read {d / 'traffic.log'}.")


def spike(cfg: LabConfig, extra_senders: int = 3, seconds: float = 20,
          payload: str = CLICK) -> dict[str, Any]:
    """Ask the running generator for ``extra_senders`` more senders of ``payload`` now."""
    if not status(cfg)["running"]:
        raise GeneratorError("No traffic is being sent, so there is nothing to spike",
                             "start it first (notebook 02 or `python -m labhelpers generate "
                             "start`).")
    request = {"payload": payload, "extra_senders": extra_senders, "seconds": seconds,
               "asked": time.time()}
    path = traffic_dir(cfg) / f"spike-{uuid.uuid4().hex}.request"
    path.write_text(json.dumps(request))
    print(f"Spike requested: {extra_senders} extra {payload} sender(s) for {seconds:g} s.")
    return request


def stop(cfg: LabConfig, timeout: float = 15) -> dict[str, Any]:
    """Stop the traffic (idempotent); returns the final counters."""
    state = _read(traffic_dir(cfg) / "process.json")
    pid = state.get("pid")
    if stop_group(pid, timeout, MARKER):
        print(f"Traffic stopped (pid {pid}).")
    return status(cfg)


def write_lab_timeline(path: Path | str, warmup_s: float = 900, sites: Sequence[str] = (
        "example.com",), start: datetime | None = None, seed: int = 0) -> dict[str, Any]:
    """The lab's test in simulated time, as a JSON-lines file for ``replay`` (seconds to run).

    Starts at a whole minute so the spike's 20 s fill exactly two 10-s windows.
    """
    start = start or datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    plan = lab_test_plan(warmup_s=warmup_s, sites=sites)
    n = write_jsonl(timeline(plan, start, seed=seed), path)
    return {"path": str(path), "records": n, "spike_start": start.timestamp() + warmup_s}


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(prefix=args.prefix, home=args.home, emulator_port=args.port,
                      backend=args.backend, region=args.region)
    plan_args = json.loads(args.plan)
    plan = steady_plan(plan_args["sites"], plan_args["impression_rate"],
                       plan_args["click_rate"], plan_args["duration_s"])
    sink: Any = make_sink(cfg)
    archive = None
    if cfg.backend == "local":
        try:
            from .stack import outputs

            bucket = outputs(cfg)["RawBucketName"]
            archive = sink = RawArchiveSink(sink, cfg.client("s3"), bucket)
        except Exception as err:  # no stack yet: the stream works without the archive
            print(f"raw archive off: {err}", flush=True)
    handle = start_background(plan, sink, plan_args["duration_s"])
    d = traffic_dir(cfg)
    stopping = False

    def _terminate(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _terminate)
    while True:
        for req in sorted(d.glob("spike-*.request")):
            r = json.loads(req.read_text())
            req.unlink()
            try:
                handle.spike(payload=r["payload"], extra_senders=r["extra_senders"],
                             seconds=r["seconds"])
                print(f"spike: {r}", flush=True)
            except GeneratorError as err:  # the run ended meanwhile: say so, keep going
                print(f"spike refused: {err}", flush=True)
        if stopping:
            try:
                handle.stop()
            except Exception as err:  # the error that ended the thread; reported below
                print(f"generator stopped with an error: {err}", flush=True)
        st = asdict(handle.stats)
        if archive is not None:
            st.update(archived_batches=archive.archived, archive_errors=archive.archive_errors,
                      last_archive_error=archive.last_archive_error)
        tmp = d / ".stats.tmp"
        tmp.write_text(json.dumps(st, default=str))
        os.replace(tmp, d / "stats.json")
        if stopping or not handle.running:
            break
        time.sleep(0.5)
    if handle.error is not None:
        print(f"generator failed: {handle.error}", flush=True)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labhelpers.traffic")
    for name in ("--prefix", "--home", "--backend", "--region", "--plan"):
        p.add_argument(name, required=True)
    p.add_argument("--port", type=int, required=True)
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
