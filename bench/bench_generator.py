"""Generator throughput: rendering, the local stream log (simulated and live), templates, and
the emulator's Kinesis.

Usage: python bench/bench_generator.py [--records 1000000] [--sites 100] [--live-rate 100000]
       [--live-seconds 10] [--kinesis-records 20000] [--no-kinesis]

Prints records/s (wall) and CPU microseconds per record for:
  dicts        timeline(): records as dicts
  lines        timeline_batches(): records as compact JSON lines
  stream log   send_timeline() into a StreamLogSink (one file per second of event time)
  live         run_live() at --live-rate records/s into a StreamLogSink, in real time: the
               rate achieved and how far behind the schedule it fell
  templates    CPU per record of ClickDetail (uuid, ipv4, user agent, weighted choice, ...)
               and of each placeholder alone
  kinesis      send_timeline() into the local emulator's Kinesis (moto server, 1 shard), as
               fast as it takes records (moto does not throttle)
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labhelpers.generate.live import run_live  # noqa: E402
from labhelpers.generate.placeholders import RenderContext  # noqa: E402
from labhelpers.generate.plan import Plan, Sender, steady_plan  # noqa: E402
from labhelpers.generate.sinks import KinesisSink, StreamLogSink, send_timeline  # noqa: E402
from labhelpers.generate.templates import Template, resolve  # noqa: E402
from labhelpers.generate.timeline import timeline, timeline_batches  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def measure(label: str, fn) -> float:
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<13} {n:>10,} records  {wall:6.2f} s  {n / wall:>10,.0f} rec/s  "
          f"{cpu / n * 1e6:6.2f} CPU us/rec")
    return n / wall


def bench_live(rate: float, seconds: float) -> None:
    # 100 sites x (Impression + Click) at rate / 200 each
    sites = [f"site{i:03d}.example.com" for i in range(100)]
    per = rate / 200
    plan = steady_plan(sites, impression_rate=per, click_rate=per)
    with tempfile.TemporaryDirectory() as tmp:
        sink = StreamLogSink(Path(tmp) / "stream")
        cpu = time.process_time()
        stats = run_live(plan, sink, duration_s=seconds, progress=False, flush_s=0.5)
        cpu = time.process_time() - cpu
    print(f"{'live':<13} {stats.records:>10,} records  {stats.elapsed_s:6.2f} s  "
          f"{stats.records / stats.elapsed_s:>10,.0f} rec/s  {cpu / stats.records * 1e6:6.2f}"
          f" CPU us/rec  (planned {rate:,.0f}/s; last batch {stats.behind_ms} ms behind; "
          f"CPU {cpu / stats.elapsed_s:.0%} of one core)")


def bench_templates(n: int) -> None:
    ctx = RenderContext(seed=1)
    cases = {"ClickDetail (built-in)": resolve("ClickDetail")}
    for expr in ("number(1, 500)", "float(1, 200, 2)", "choice('a', 'b', 'c')",
                 "weighted({'a': 6, 'b': 3, 'c': 1})", "uuid", "ipv4", "user_agent", "name",
                 "timestamp"):
        cases[f"{{{{{expr}}}}}"] = Template("T", '{"browseraction": "Click", "x": "{{' + expr
                                            + '}}"}')
    fresh = RenderContext(seed=1, pool_size=0)
    base = Template("Const", '{"browseraction": "Click"}')
    for label, tpl in [("constant", base), *cases.items(),
                       ("{{name}} pool_size=0", cases["{{name}}"])]:
        render = tpl.bind("example.com", fresh if "pool_size=0" in label else ctx) \
            if not tpl.is_constant else None
        k = n // 20 if "pool_size=0" in label else n
        if render is None:
            line = '{"browseraction":"Click","site":"example.com","event_time":"'
            t0 = time.process_time()
            for _ in range(k):
                line + "2026-01-01T00:00:00.000Z" + '"}'  # noqa: B018
            cpu = time.process_time() - t0
        else:
            for _ in range(1000):  # fill the pools first: the steady state is what counts
                render(0, "2026-01-01T00:00:00.000Z")
            t0 = time.process_time()
            for _ in range(k):
                render(0, "2026-01-01T00:00:00.000Z")
            cpu = time.process_time() - t0
        print(f"  {label:<38} {cpu / k * 1e6:7.2f} CPU us/record")
    plan = Plan([Sender("ClickDetail", rate=500), Sender("ImpressionDetail", rate=500)],
                sites=[f"site{i:02d}" for i in range(10)])
    with tempfile.TemporaryDirectory() as tmp:
        sink = StreamLogSink(Path(tmp) / "s")
        measure("detail log", lambda: send_timeline(plan, sink, START, n / 10_000))


def bench_kinesis(records: int) -> None:
    from labhelpers.infra import emulator
    from labhelpers.infra.config import LabConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        cfg = LabConfig(home=Path(home), emulator_port=port, prefix="benchgen")
        emulator.start(cfg)
        try:
            client = cfg.client("kinesis")
            client.create_stream(StreamName="benchgen-clicks", ShardCount=1)
            client.get_waiter("stream_exists").wait(StreamName="benchgen-clicks")
            sink = KinesisSink(client=client, stream_name="benchgen-clicks")
            plan = steady_plan([f"site{i:02d}" for i in range(10)], 500, 500)
            measure("kinesis", lambda: send_timeline(plan, sink, START,
                                                     records / 10_000))
            st = sink.stats
            print(f"              acknowledged {st.acknowledged:,}, PutRecords calls "
                  f"{st.batches:,}, failed {st.failed}")
        finally:
            emulator.stop(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--live-rate", type=float, default=100_000)
    ap.add_argument("--live-seconds", type=float, default=10)
    ap.add_argument("--template-records", type=int, default=100_000)
    ap.add_argument("--kinesis-records", type=int, default=20_000)
    ap.add_argument("--no-kinesis", action="store_true")
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
    bench_live(args.live_rate, args.live_seconds)
    print("templates (steady state, Faker providers pooled unless pool_size=0):")
    bench_templates(args.template_records)
    if not args.no_kinesis:
        bench_kinesis(args.kinesis_records)


if __name__ == "__main__":
    main()
