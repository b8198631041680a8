"""Reading a Kinesis stream (the aws backend's input, scores and dead-letter streams).

The lab's streams are small (thousands of records), so readers read a whole stream from its
oldest record (TRIM_HORIZON) or from a time, every shard, in arrival order.
"""

from __future__ import annotations

import time
from datetime import datetime

from ..infra.config import LabConfig

MAX_CALLS_PER_SHARD = 200  # a bound: a shard is read until it is caught up, or this many calls


def read_stream(cfg: LabConfig, stream: str, since_s: float | None = None,
                limit: int | None = None) -> list[str]:
    """Every record of ``stream`` (or those that arrived in the last ``since_s`` seconds),
    oldest first by arrival; with ``limit``, only the newest ``limit``."""
    kinesis = cfg.client("kinesis")
    got: list[tuple[float, str]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        start = ({"ShardIteratorType": "AT_TIMESTAMP",
                  "Timestamp": datetime.fromtimestamp(time.time() - since_s)}
                 if since_s is not None else {"ShardIteratorType": "TRIM_HORIZON"})
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        **start)["ShardIterator"]
        for _ in range(MAX_CALLS_PER_SHARD):
            resp = kinesis.get_records(ShardIterator=it, Limit=10_000)
            for rec in resp.get("Records", []):
                stamp = rec.get("ApproximateArrivalTimestamp")
                when = stamp.timestamp() if isinstance(stamp, datetime) else 0.0
                got.append((when, rec["Data"].decode("utf-8", errors="replace")))
            it = resp.get("NextShardIterator")
            if not it or not resp.get("Records") or resp.get("MillisBehindLatest", 0) == 0:
                break
    got.sort(key=lambda pair: pair[0])
    lines = [line for _, line in got if line.strip()]
    return lines[-limit:] if limit else lines
