"""Replay throughput: N records through the whole job (source to scores), against DuckDB.

    .venv/bin/python bench/bench_replay.py [N]      (default 1,000,000 = one day of traffic)

Prints the start-up time (launch to first scores written, a minute of traffic) with the JVM
start-up cache (labhelpers.analytics.jvm_cache) and without it (LAB_JVM_CACHE=off), then
records/s end to end (including start-up) and after start-up, the same window counts computed by
DuckDB over the same file as a batch baseline (the counts must agree exactly), the ratio of
the two speeds, and the peak memory of the job's process tree.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _peak import PeakRSS  # noqa: E402
from _recount import recount  # noqa: E402


def main(n: int) -> None:
    import psutil

    from labhelpers.analytics.replay import replay
    from labhelpers.generate.plan import Plan, Sender
    from labhelpers.generate.timeline import timeline, write_jsonl

    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    # ~n records over one day: 10 sites, Impression and Click senders at equal rates
    sites = tuple(f"site{i}.example" for i in range(10))
    rate = n / (86_400 * len(sites) * 2)
    plan = Plan((Sender("Impression", rate), Sender("Click", rate)), sites=sites)
    src = work / "day.jsonl"
    t = time.perf_counter()
    count = write_jsonl(timeline(plan, datetime(2026, 11, 27, tzinfo=UTC), 86_400), src)
    print(f"generated {count:,} records in {time.perf_counter() - t:.1f} s ({src})")

    # start-up: the same job over one minute of traffic (~700 records), whole process: JVM
    # start, SQL planning, the first windows scored and written, shutdown
    small = work / "minute.jsonl"
    write_jsonl(timeline(plan, datetime(2026, 11, 27, tzinfo=UTC), 60), small)
    startup = {}
    for cache in ("off", "on"):
        os.environ["LAB_JVM_CACHE"] = cache
        t = time.perf_counter()
        first = replay(small, work / "out-small")
        startup[cache] = time.perf_counter() - t
        print(f"start-up     : {startup[cache]:6.1f} s  from launch to the scores of "
              f"{first['windows']} windows written (a minute of traffic), cache {cache}")
    print(f"start-up ratio cache on/off: {startup['on'] / startup['off']:.2f}")

    me = psutil.Process()
    with PeakRSS(me.pid) as peak:
        t = time.perf_counter()
        summary = replay(src, work / "out")
        flink_s = time.perf_counter() - t
    print(f"flink replay : {flink_s:6.1f} s  {count / flink_s:10,.0f} records/s  "
          f"({summary['windows']:,} windows, peak tree RSS {peak.peak_mb:,.0f} MB)")
    steady = flink_s - startup["on"]
    print(f"after start-up: {steady:5.1f} s  {count / steady:10,.0f} records/s  "
          f"(the replay minus the minute-of-traffic run)")

    t = time.perf_counter()
    duck = recount(src)
    duck_s = time.perf_counter() - t
    print(f"duckdb batch : {duck_s:6.1f} s  {count / duck_s:10,.0f} records/s  "
          f"({len(duck):,} windows)")
    with open(work / "out" / "scores.csv") as fh:
        flink = {(r["window_start"], r["site"]): (int(r["clicks"]), int(r["impressions"]))
                 for r in csv.DictReader(fh)}
    same = duck == flink
    print(f"window counts identical: {same}")
    print(f"speed ratio flink/duckdb: {duck_s / flink_s:.3f}")
    if not same:
        diff = set(duck.items()) ^ set(flink.items())
        raise SystemExit(f"counts differ in {len(diff)} windows, e.g. {sorted(diff)[:3]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
