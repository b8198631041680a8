"""Kinesis under throttling: a one-shard stream pushed at three times its write limit.

Usage: python bench/bench_kinesis_throttle.py [--seconds 10] [--factor 3] [--shards 1]

The emulator (moto) does not throttle, so this runs the generator's live mode and its
``KinesisSink`` against ``ShardLimitedKinesis``, a stand-in client that enforces the
service's per-shard write limits (1,000 records/s and 1 MiB/s per shard, per second) and
answers excess records the way PutRecords does: a per-record
``ProvisionedThroughputExceededException`` in a partly failed response.

Prints: records generated, arrived, duplicates, missing; retries and throttled rejections;
achieved rate against the limit; how long the backlog took to drain.
``tests/test_generator.py`` uses the same stand-in with a simulated clock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HASH_SPACE = 2**128
SHARD_RECORDS_PER_S = 1000
SHARD_BYTES_PER_S = 1024 * 1024


class ShardLimitedKinesis:
    """A Kinesis client stand-in (describe_stream_summary, list_shards, put_records) that
    enforces per-shard write limits in one-second windows of ``clock``.

    Records map to shards as in Kinesis: by ExplicitHashKey if given, else by the MD5 of the
    partition key, over shards that split the 128-bit hash range evenly. ``delivered`` keeps
    every accepted record's data; ``accepted_at`` the clock time of each acceptance.
    """

    def __init__(self, shards: int = 1, stream_name: str = "throttled",
                 records_per_s: int = SHARD_RECORDS_PER_S,
                 bytes_per_s: int = SHARD_BYTES_PER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shards, self.stream_name, self.clock = shards, stream_name, clock
        self.records_per_s, self.bytes_per_s = records_per_s, bytes_per_s
        step = HASH_SPACE // shards
        self.ranges = [(i * step, HASH_SPACE - 1 if i == shards - 1 else (i + 1) * step - 1)
                       for i in range(shards)]
        self._window: list[list[int]] = [[-1, 0, 0] for _ in range(shards)]  # sec, n, bytes
        self.delivered: list[bytes] = []
        self.accepted_at: list[float] = []
        self.per_shard: Counter[int] = Counter()
        self.calls = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def _check(self, name: str) -> None:
        if name != self.stream_name:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": f"Stream {name} not found"}}, "Kinesis")

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:  # noqa: N803
        self._check(StreamName)
        return {"StreamDescriptionSummary": {
            "StreamName": StreamName, "OpenShardCount": self.shards,
            "StreamModeDetails": {"StreamMode": "PROVISIONED"}}}

    def list_shards(self, StreamName: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        self._check(StreamName)
        return {"Shards": [{"ShardId": f"shardId-{i:012d}",
                            "HashKeyRange": {"StartingHashKey": str(lo),
                                             "EndingHashKey": str(hi)}}
                           for i, (lo, hi) in enumerate(self.ranges)]}

    def _shard(self, record: dict[str, Any]) -> int:
        if record.get("ExplicitHashKey"):
            h = int(record["ExplicitHashKey"])
        else:
            h = int(hashlib.md5(record["PartitionKey"].encode()).hexdigest(), 16)
        return min(h // (HASH_SPACE // self.shards), self.shards - 1)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]  # noqa: N803
                    ) -> dict[str, Any]:
        self._check(StreamName)
        with self._lock:
            self.calls += 1
            now = self.clock()
            sec = int(now)
            out, failed = [], 0
            for r in Records:
                shard = self._shard(r)
                size = len(r["Data"]) + len(r["PartitionKey"].encode())
                w = self._window[shard]
                if w[0] != sec:
                    w[:] = [sec, 0, 0]
                if w[1] + 1 > self.records_per_s or w[2] + size > self.bytes_per_s:
                    failed += 1
                    self.rejected += 1
                    out.append({"ErrorCode": "ProvisionedThroughputExceededException",
                                "ErrorMessage": f"Rate exceeded for shard shardId-{shard:012d} "
                                f"in stream {StreamName} under account 123456789012."})
                    continue
                w[1] += 1
                w[2] += size
                self.per_shard[shard] += 1
                self.delivered.append(r["Data"])
                self.accepted_at.append(now)
                out.append({"SequenceNumber": str(len(self.delivered)),
                            "ShardId": f"shardId-{shard:012d}"})
            return {"FailedRecordCount": failed, "Records": out}


def main() -> None:
    from labhelpers.generate.live import run_live
    from labhelpers.generate.plan import Plan, Sender
    from labhelpers.generate.sinks import KinesisSink
    from labhelpers.generate.templates import Template

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10, help="how long the generator sends")
    ap.add_argument("--factor", type=float, default=3, help="planned rate / stream limit")
    ap.add_argument("--shards", type=int, default=1)
    args = ap.parse_args()
    limit = args.shards * SHARD_RECORDS_PER_S
    rate = args.factor * limit
    fake = ShardLimitedKinesis(shards=args.shards)
    sink = KinesisSink(client=fake, stream_name=fake.stream_name, seed=1)
    # a running number per template makes every record distinct, so duplicates would show
    click = Template("ClickN", '{"browseraction": "Click", "n": {{seq}}}')
    impression = Template("ImpressionN", '{"browseraction": "Impression", "n": {{seq}}}')
    plan = Plan((Sender(click, rate=rate / 2), Sender(impression, rate=rate / 2)),
                sites=("example.com",))
    print(f"{args.shards} shard(s): limit {limit:,} records/s; plan {rate:,.0f} records/s "
          f"({args.factor:g}x) for {args.seconds:g} s")
    t0 = time.monotonic()
    stats = run_live(plan, sink, duration_s=args.seconds, progress=False, over_limit=True)
    took = time.monotonic() - t0
    s = sink.stats
    counts = Counter(fake.delivered)
    generated = stats.records
    ids = {json.dumps(json.loads(d), sort_keys=True) for d in fake.delivered}
    per_second = Counter(int(t) for t in fake.accepted_at)
    full = [n for sec, n in per_second.items()
            if min(per_second) < sec < max(per_second)]  # whole seconds only
    print(f"generated          {generated:>10,}")
    print(f"arrived            {len(fake.delivered):>10,}  (distinct {len(ids):,}, "
          f"sent twice {sum(1 for c in counts.values() if c > 1):,})")
    print(f"missing            {generated - len(ids):>10,}")
    print(f"acknowledged       {s.acknowledged:>10,}   failed {s.failed:,}")
    print(f"retried            {s.retried:>10,}   ({s.retried / max(generated, 1):.2f} per "
          "record)")
    print(f"throttled          {s.throttled:>10,}   PutRecords calls {fake.calls:,}")
    if full:
        mean = sum(full) / len(full)
        print(f"achieved           {mean:>10,.0f} records/s on average over {len(full)} whole "
              f"seconds ({mean / limit:.0%} of the limit; best second {max(full):,})")
    print(f"wall time          {took:>10.1f} s  (generator {args.seconds:g} s; the rest is "
          "the backlog draining)")
    print(f"warning shown      {stats.warning}")


if __name__ == "__main__":
    main()
