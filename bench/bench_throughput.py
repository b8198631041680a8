"""Throughput of the lab's job against a plain PyFlink job, on a dense and a sparse day.

    .venv/bin/python bench/bench_throughput.py [--records 1000000] [--days dense,sparse]
                                               [--repeat 1] [--jvm-args "..."]

dense : the records over 1 hour for 4 sites (1,440 windows: the per-record SQL dominates);
sparse: the records over 24 hours for 4 sites (34,560 windows: the forest's share grows).

For each day, in the same run and one after the other: the lab's replay (labhelpers.analytics
.replay: the lab's SQL with its checks and dead letters, the forest, the file sinks) and the
baseline, a plain PyFlink job with the same windows (bench/_plain_job.py: Flink's JSON format,
no checks, no forest), both as child processes with the same mini-cluster settings. Prints
each one's seconds and records/s, the ratio lab/plain (speed, > 1 = the lab is faster), whether
issue 26's target for the day is met (dense: >= 0.9 x plain; sparse: >= 60,000 records/s) with
the machine's load at that moment, and checks that the lab's window counts equal a DuckDB
recount of the same file exactly. The machine may be shared: only the ratio of two figures from
one run means something.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peak import TreeCPU  # noqa: E402
from _recount import recount  # noqa: E402

DAYS = {"dense": 3_600, "sparse": 86_400}
SITES = tuple(f"site{i}.example" for i in range(4))
# Issue 26's targets: on the dense day the lab's job at least this fraction of the plain job's
# speed, on the sparse day at least this many records/s (the lab's job, whole replay).
TARGET_DENSE_RATIO = 0.9
TARGET_SPARSE_RECORDS_S = 60_000


def load() -> str:
    """The machine's load (1-min average of runnable processes) against its cores: figures
    taken on a busy machine are slower, most of all the wall times."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min: {five:.1f}) on {os.cpu_count()} cores"


def verdict(day: str, lab_s: float, plain_s: float, records: int) -> str:
    """'target met' or 'target NOT met' for the day's figure, with the figure and its target."""
    if day == "dense":
        figure, target = plain_s / lab_s, TARGET_DENSE_RATIO
        text = f"speed {figure:.2f} x plain, target >= {target}"
    elif day == "sparse":
        figure, target = records / lab_s, TARGET_SPARSE_RECORDS_S
        text = f"{figure:,.0f} records/s, target >= {target:,}"
    else:
        return "no target"
    return f"{'target met' if figure >= target else 'target NOT met'} ({text})"


def make_day(path: Path, records: int, seconds: int) -> int:
    """``records`` clicks and impressions (equal rates) over ``seconds`` for SITES."""
    from labhelpers.generate.plan import Plan, Sender
    from labhelpers.generate.timeline import timeline, write_jsonl

    rate = records / (seconds * len(SITES) * 2)
    plan = Plan((Sender("Impression", rate), Sender("Click", rate)), sites=SITES)
    return write_jsonl(timeline(plan, datetime(2026, 11, 27, tzinfo=UTC), seconds), path)


def run_plain(src: Path, work: Path) -> tuple[float, float, dict]:
    """The plain job in a child process with the lab's Flink environment (the replay's: no
    Beam worker pool in the driver); (seconds, CPU seconds, counts)."""
    from labhelpers.flinkenv import flink_env
    from labhelpers.stream.log import read_all_lines

    out, job = work / "plain-out", work / "plain-job"
    (job / "log").mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with TreeCPU() as cpu:
        subprocess.run([sys.executable, str(Path(__file__).with_name("_plain_job.py")),
                        str(src), str(out), str(job)], env=flink_env(job, thread_mode=True),
                       check=True, cwd=job, capture_output=True)
    seconds = time.perf_counter() - t
    counts = {}
    for line in read_all_lines(out):
        r = json.loads(line)
        counts[(r["window_start"], r["site"])] = (r["clicks"], r["impressions"])
    return seconds, cpu.seconds, counts


def run_lab(src: Path, work: Path, jvm_args: str) -> tuple[float, float, dict]:
    """The lab's replay (the whole job); (seconds, CPU seconds, counts of its windows)."""
    from labhelpers.analytics.replay import replay

    t = time.perf_counter()
    with TreeCPU() as cpu:
        replay(src, work / "lab-out", progress=False, jvm_args=jvm_args)
    seconds = time.perf_counter() - t
    with open(work / "lab-out" / "scores.csv") as fh:
        # the zero windows the job makes for a silent site have no records to recount
        counts = {(r["window_start"], r["site"]): (int(r["clicks"]), int(r["impressions"]))
                  for r in csv.DictReader(fh) if r["clicks"] != "0" or r["impressions"] != "0"}
    return seconds, cpu.seconds, counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", default="dense,sparse")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jvm-args", default="", help="extra JVM options for the lab's job")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    print(f"start: {load()}")
    ok = True
    for day in args.days.split(","):
        src = work / f"{day}.jsonl"
        n = make_day(src, args.records, DAYS[day])
        reference = recount(src)
        print(f"{day} day: {n:,} records, {len(reference):,} windows, {len(SITES)} sites "
              f"over {DAYS[day] // 3600} h")
        for i in range(args.repeat):
            # the order alternates, so that neither job always runs at the busier moment
            first = (run_lab, run_plain) if i % 2 == 0 else (run_plain, run_lab)
            res = {}
            for fn in first:
                res[fn] = (fn(src, work / f"{day}-{i}", args.jvm_args) if fn is run_lab
                           else fn(src, work / f"{day}-{i}"))
            (lab_s, lab_cpu, lab), (plain_s, plain_cpu, plain) = res[run_lab], res[run_plain]
            same = lab == reference
            ok = ok and same and plain == reference
            print(f"  lab   {lab_s:6.1f} s {n / lab_s:9,.0f} records/s  CPU {lab_cpu:6.1f} s  "
                  f"counts == DuckDB recount: {same}")
            print(f"  plain {plain_s:6.1f} s {n / plain_s:9,.0f} records/s  "
                  f"CPU {plain_cpu:6.1f} s  counts == DuckDB recount: {plain == reference}")
            print(f"  ratio lab/plain: speed {plain_s / lab_s:.2f}, CPU {plain_cpu / lab_cpu:.2f}")
            print(f"  {day}: {verdict(day, lab_s, plain_s, n)}; {load()}")
    print("(whole child processes, start-up included; the machine may be shared with other "
          "work: compare the two figures of one run)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
