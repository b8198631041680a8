"""Run the PACKAGED analytics application with its cloud configuration (Kinesis in, Kinesis
out) on the local mini-cluster against the local emulator, through the managed-service
stand-in (labhelpers.analytics.managed_standin), and read the scores back from the scores stream.

    .venv/bin/python cloud/prove_kinesis_local.py [--zip cloud/dist/clickstream-app.zip]

Steps: start a moto server on a free loopback port, deploy the lab's stack to it, put the
lab's test traffic (event time, a spike) into the input Kinesis stream, start the stand-in with
the zip (its main.py, its dep/ code, its connector jar; the property groups
cloud_app.application_properties builds, pointed at the emulator), then read the scores stream.
Prints a JSON summary (with the error lines of the app's output and of Flink's own log, and
the seconds from the stand-in's start to its first score row); exit code 0 only when score
rows came out of the scores stream.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labhelpers.analytics import managed_standin, packaging  # noqa: E402
from labhelpers.infra import emulator, stack  # noqa: E402
from labhelpers.infra.config import LabConfig  # noqa: E402
from labhelpers.stream.kinesis import read_stream  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(n_normal_s: int = 300) -> list[bytes]:
    from labhelpers.generate import traffic

    path = Path(tempfile.mkdtemp()) / "timeline.jsonl"
    traffic.write_lab_timeline(path, warmup_s=n_normal_s, sites=["example.com"])
    return [line.encode() for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", type=Path, default=None,
                        help="the application package (default: cloud/dist's, else built)")
    parser.add_argument("--seconds", type=float, default=240, help="how long to let the job run")
    args = parser.parse_args()
    zip_path = args.zip or packaging.DIST_DIR / packaging.ZIP_NAME
    if not zip_path.exists():
        zip_path = packaging.package()
    home = Path(tempfile.mkdtemp(prefix="kinesis-proof-"))
    cfg = LabConfig(home=home, emulator_port=_free_port(), prefix="kproof")
    summary: dict = {"zip": str(zip_path), "zip_bytes": zip_path.stat().st_size}
    emulator.start(cfg)
    try:
        outs = stack.deploy(cfg, progress=False)
        kinesis = cfg.client("kinesis")
        records = _records()
        for i in range(0, len(records), 500):
            kinesis.put_records(StreamName=outs["InputStreamName"], Records=[
                {"Data": r, "PartitionKey": "example.com"} for r in records[i:i + 500]])
        summary["records_put"] = len(records)
        scores: list[dict] = []
        first_score_s = None
        try:
            info = managed_standin.start(cfg, zip_path, outs, progress=False)
            started = info["started"]
            summary["seconds_to_submit"] = info["seconds_to_submit"]
            deadline = time.time() + args.seconds
            while time.time() < deadline and managed_standin.status(cfg)["running"]:
                time.sleep(2)
                scores = [json.loads(r) for r in read_stream(cfg, outs["ScoresStreamName"])]
                if scores and first_score_s is None:
                    first_score_s = round(time.time() - started, 1)
                if any(r.get("is_anomaly") for r in scores):
                    break
            summary["still_running"] = managed_standin.status(cfg)["running"]
        finally:
            managed_standin.stop(cfg, progress=False)
        summary.update(
            score_rows=len(scores),
            anomalies=sum(bool(r.get("is_anomaly")) for r in scores),
            seconds_to_first_score=first_score_s,
            dead_letters=len(read_stream(cfg, outs["DeadLetterStreamName"])),
            error_lines=managed_standin.error_lines(cfg, limit=8),
            log=str(managed_standin.standin_dir(cfg) / "standin.log"),
        )
        stack.delete(cfg, progress=False)
    except Exception as err:  # the summary says what failed, with the error lines
        summary.update(failed=f"{type(err).__name__}: {err}",
                       error_lines=managed_standin.error_lines(cfg, limit=8))
    finally:
        emulator.stop(cfg)
    print(json.dumps(summary, indent=2))
    return 0 if summary.get("score_rows") else 1


if __name__ == "__main__":
    sys.exit(main())
