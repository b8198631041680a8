"""Run the analytics job with its cloud configuration (Kinesis in, Kinesis out) on the local
mini-cluster against the local emulator, and read the scores back from the scores stream.

    .venv/bin/python cloud/prove_kinesis_local.py [--jar cloud/target/pyflink-dependencies.jar]

Steps: start a moto server on a free loopback port, deploy the lab's stack to it, put the
lab's test traffic (event time, a spike) into the input Kinesis stream, run cloud/main.py with
the property groups that cloud_app.emulator_settings builds (the connector options used on AWS
plus the emulator endpoint and fake keys), then read the scores stream. Prints a JSON summary;
exit code 0 only when score rows came out of the scores stream.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labhelpers.analytics import managed as cloud_app  # noqa: E402
from labhelpers.analytics import packaging  # noqa: E402
from labhelpers.flinkenv import java_env  # noqa: E402
from labhelpers.infra import emulator, stack  # noqa: E402
from labhelpers.infra.config import LabConfig  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(n_normal_s: int = 300) -> list[bytes]:
    from labhelpers.generate import traffic

    path = Path(tempfile.mkdtemp()) / "timeline.jsonl"
    traffic.write_lab_timeline(path, warmup_s=n_normal_s, sites=["example.com"])
    return [line.encode() for line in path.read_text().splitlines() if line.strip()]


def _read_stream(kinesis, name: str) -> list[dict]:
    rows = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            rows += [json.loads(r["Data"]) for r in page["Records"]]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jar", type=Path, default=packaging.BUILT_JAR)
    parser.add_argument("--seconds", type=float, default=240, help="how long to let the job run")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kinesis-proof-"))
    cfg = LabConfig(home=home, emulator_port=_free_port(), prefix="kproof")
    summary: dict = {"jar": str(args.jar), "jar_exists": args.jar.exists()}
    emulator.start(cfg)
    try:
        outs = stack.deploy(cfg, progress=False)
        kinesis = cfg.client("kinesis")
        records = _records()
        for i in range(0, len(records), 500):
            kinesis.put_records(StreamName=outs["InputStreamName"], Records=[
                {"Data": r, "PartitionKey": "example.com"} for r in records[i:i + 500]])
        summary["records_put"] = len(records)
        work = home / "job"
        settings = cloud_app.emulator_settings(cfg, outs, args.jar, work)
        props = work / "properties.json"
        work.mkdir(parents=True, exist_ok=True)
        props.write_text(json.dumps(settings.to_properties(), indent=2))
        env = java_env()
        # The AWS SDK v2 talks CBOR to Kinesis by default; the emulator speaks JSON.
        env.update(JVM_ARGS="-Xmx1g -Daws.cborEnabled=false", FLINK_LOG_DIR=str(work / "log"),
                   PYTHONUNBUFFERED="1")
        log = work / "job.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, str(packaging.MAIN_SOURCE), "--properties",
                                     str(props), "--wait"], stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=work, start_new_session=True)
        deadline = time.time() + args.seconds
        scores: list[dict] = []
        while time.time() < deadline and proc.poll() is None:
            time.sleep(5)
            scores = _read_stream(kinesis, outs["ScoresStreamName"])
            if any(r.get("is_anomaly") for r in scores):
                break
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        summary.update(
            exit_code=proc.returncode,
            score_rows=len(scores),
            anomalies=sum(bool(r.get("is_anomaly")) for r in scores),
            dead_letters=len(_read_stream(kinesis, outs["DeadLetterStreamName"])),
            error_lines=[ln for ln in log.read_text(errors="replace").splitlines()
                         if "Exception" in ln or "Error" in ln][:8],
            log=str(log),
        )
        stack.delete(cfg, progress=False)
    finally:
        emulator.stop(cfg)
    print(json.dumps(summary, indent=2))
    return 0 if summary.get("score_rows") else 1


if __name__ == "__main__":
    sys.exit(main())
