"""Time from `app.start` to the first complete window on a 10-minute backlog, per start position.

    .venv/bin/python bench/bench_start_position.py [--backlog 600]

For each start position: a fresh LAB_HOME; the lab's traffic (1 Click + 1 Impression per
second, one site) rendered for the last ``--backlog`` seconds into the input stream (one file
per second, as the live generator writes them), then live traffic in the background and
`app.start(..., start_position=...)`. Prints the seconds to the first score row, that row,
whether its counts equal a recount of the stream, and the records not read.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime


def run(position: str, backlog_s: float) -> dict:
    os.environ["LAB_HOME"] = tempfile.mkdtemp(prefix=f"bench-start-{position}-")
    from labhelpers import load_config
    from labhelpers.analytics import runner as app
    from labhelpers.backends import for_config
    from labhelpers.generate import traffic
    from labhelpers.generate.sinks import StreamLogSink, send_timeline
    from labhelpers.stream.log import read_all_lines

    cfg = load_config(prefix="benchstart")
    plan, _ = traffic.build_plan(traffic.plan_spec())
    now = time.time()
    sent = send_timeline(plan, StreamLogSink(cfg), now - backlog_s, duration_s=backlog_s)
    traffic.start(cfg)
    try:
        t0 = time.perf_counter()
        app.start(cfg, alerts=False, start_position=position, wait_seconds=600)
        started = time.perf_counter() - t0
        rows = for_config(cfg).wait_for_scores(count=1, timeout=300)
        first = time.perf_counter() - t0
        row = min(rows, key=lambda r: r["window_start"])
        counts: Counter = Counter()
        for line in read_all_lines(cfg.stream_dir(cfg.input_stream)):
            rec = json.loads(line)
            ts = datetime.fromisoformat(rec["event_time"].replace("Z", "+00:00"))
            start = datetime.fromtimestamp(ts.timestamp() // 10 * 10, UTC)
            counts[(start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), rec["browseraction"])] += 1
        recount = (counts[(row["window_start"], "Click")],
                   counts[(row["window_start"], "Impression")])
        return {"start_position": position, "backlog_records": sent,
                "seconds_to_job_running": round(started, 1),
                "seconds_to_first_window": round(first, 1),
                "first_window": row["window_start"],
                "clicks_impressions": (row["clicks"], row["impressions"]),
                "equals_recount": (row["clicks"], row["impressions"]) == recount,
                "not_read": app.status(cfg)["not_read_before_start"]}
    finally:
        app.stop(cfg)
        traffic.stop(cfg)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=float, default=600)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for position in ("latest", "earliest"):
        print(json.dumps(run(position, args.backlog)))


if __name__ == "__main__":
    main()
