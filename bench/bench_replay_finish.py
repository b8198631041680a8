"""How long a bounded replay takes, and how long its job waits after its input ends (issue 16).

Runs ``replay`` several times over one generated file, alternating checkpoint settings:
``none`` (replays since issue 16: no checkpoints) and e.g. ``10min`` (before: a 10-minute
interval, whose final checkpoint could be declined and stall the job for 10 minutes).
Per run: wall time, CPU of the job's processes (JVM included), seconds from the last source
finishing its input to the job's end (from Flink's log), checkpoints declined.

    python bench/bench_replay_finish.py --records 46080 --runs 8 --variants none,10min
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peak import TreeCPU  # noqa: E402

from labhelpers.analytics import replay as replay_module  # noqa: E402
from labhelpers.errors import AppError  # noqa: E402
from labhelpers.generate.plan import steady_plan  # noqa: E402
from labhelpers.generate.timeline import timeline, write_jsonl  # noqa: E402

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def _stamp(line: str) -> datetime | None:
    m = _STAMP.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") if m else None


def log_facts(log: Path) -> dict:
    """Seconds from the last source's end of input to the job's end; checkpoint counts."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = text.splitlines()
    finished = [_stamp(ln) for ln in lines if "to DATA_FINISHED" in ln]
    ended = [_stamp(ln) for ln in lines if "switched from state RUNNING to FINISHED" in ln]
    wait = (ended[-1] - finished[-1]).total_seconds() if finished and ended else None
    return {"input_end_to_job_end_s": wait, "declined": text.count("was declined"),
            "checkpoints": text.count("Completed checkpoint")}


def run_once(variant: str, src: Path, out: Path, timeout: float) -> dict:
    real = replay_module.local_runtime

    def runtime(work, checkpoint_interval=None):
        return real(work, checkpoint_interval=None if variant == "none" else variant)

    replay_module.local_runtime = runtime
    started = time.perf_counter()
    try:
        with TreeCPU() as cpu:
            summary = replay_module.replay(src, out, timeout=timeout)
        error = None
    except AppError as exc:
        summary, error = {}, str(exc).splitlines()[0]
    finally:
        replay_module.local_runtime = real
    return {"variant": variant, "wall_s": round(time.perf_counter() - started, 1),
            "cpu_s": round(cpu.seconds, 1), "windows": summary.get("windows"), "error": error,
            **log_facts(replay_module.flink_log(out / "_job" / "log"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=46080)
    ap.add_argument("--sites", default="example.com")
    ap.add_argument("--runs", type=int, default=4, help="runs per variant")
    ap.add_argument("--variants", default="none,10min")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_replay_finish_"))
    sites = args.sites.split(",")
    rate = args.records / 7200 / len(sites) / 2  # two hours of Impression + Click per site
    plan = steady_plan(sites, impression_rate=rate, click_rate=rate, duration_s=7200)
    src = work / "input.jsonl"
    n = write_jsonl(timeline(plan, datetime(2026, 11, 27, 10, tzinfo=UTC), seed=1), src)
    print(json.dumps({"records": n, "sites": sites, "work": str(work)}), flush=True)
    variants = args.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(args.runs):
        for v in variants:
            row = run_once(v, src, work / f"out-{v}-{i}", args.timeout)
            results[v].append(row)
            print(json.dumps({"run": i, **row}), flush=True)
    for v, rows in results.items():
        walls = sorted(r["wall_s"] for r in rows)
        cpus = [r["cpu_s"] for r in rows]
        waits = [r["input_end_to_job_end_s"] for r in rows if r["input_end_to_job_end_s"]]
        print(json.dumps({
            "variant": v, "runs": len(rows), "wall_s": walls,
            "wall_median_s": statistics.median(walls), "cpu_median_s": statistics.median(cpus),
            "input_end_to_job_end_max_s": max(waits) if waits else None,
            "declined": sum(r["declined"] for r in rows),
            "errors": sum(bool(r["error"]) for r in rows)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
