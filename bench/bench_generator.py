"""Generator throughput: timeline rendering and writing into a stream log.

Usage: python bench/bench_generator.py [--records 1000000] [--sites 100]

Prints records/s (wall) and CPU microseconds per record for:
  dicts      timeline(): records as dicts
  lines      timeline_batches(): records as compact JSON lines
  stream log send_timeline() into a StreamLogSink (one file per second of event time)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labhelpers.generator import (  # noqa: E402
    StreamLogSink,
    send_timeline,
    steady_plan,
    timeline,
    timeline_batches,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def measure(label: str, fn) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<11} {n:>10,} records  {wall:6.2f} s  {n / wall:>10,.0f} rec/s  "
          f"{cpu / n * 1e6:5.2f} CPU us/rec")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=100)
    args = ap.parse_args()
    # Impression and Click at 50/s per site each: 100 sites -> 10,000 records per second.
    sites = [f"site{i:03d}.example.com" for i in range(args.sites)]
    plan = steady_plan(sites, impression_rate=50, click_rate=50)
    duration = args.records / (100 * args.sites)
    print(f"plan: {len(sites)} sites x (Impression 50/s + Click 50/s), {duration:g} s of "
          "event time")
    measure("dicts", lambda: sum(1 for _ in timeline(plan, START, duration)))
    measure("lines", lambda: sum(len(b.lines) for b in timeline_batches(plan, START, duration)))
    with tempfile.TemporaryDirectory() as tmp:
        sink = StreamLogSink(Path(tmp) / "stream")
        measure("stream log", lambda: send_timeline(plan, sink, START, duration))
        files = list(sink.directory.glob("*.jsonl"))
        size = sum(f.stat().st_size for f in files)
        print(f"stream log: {len(files)} files, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
