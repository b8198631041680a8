"""Reading a Kinesis stream (the aws backend's input, scores and dead-letter streams).

The lab's streams are small (thousands of records), so readers read a whole stream from its
oldest record (TRIM_HORIZON) or from a time, every shard, in arrival order.

A shard answers at most 5 GetRecords calls a second, shared by every reader of the stream
(the analytics app's source, Firehose, the alert function's trigger, these readers): a call
over the budget is refused with ProvisionedThroughputExceededException, and the reader waits
and tries again. Times sent to AWS are timezone-aware UTC: botocore takes a time without a
zone as UTC, so a local time would ask for records hours away from the intended ones.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ..errors import LabError
from ..infra.config import LabConfig

MAX_CALLS_PER_SHARD = 200  # a bound: a shard is read until it is caught up, or this many calls
THROTTLED = ("ProvisionedThroughputExceededException", "LimitExceededException")
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 4.0)  # ~12 s in all: a shard's budget renews every second


def _retrying(call, what: str, **kwargs) -> dict[str, Any]:
    """``call(**kwargs)``, waiting and trying again while the shard's budget is spent."""
    for pause in (*BACKOFF_S, None):
        try:
            return call(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in THROTTLED:
                raise
            if pause is None:
                raise LabError(
                    f"Kinesis kept refusing {what} ({code}) for {sum(BACKOFF_S):.0f} s: the "
                    "shard's read budget (5 calls a second, shared by every reader) is spent",
                    "read less often (stop other readers of the stream), then try again.") \
                    from err
            time.sleep(pause)
    raise AssertionError("unreachable")


def start_of(since_s: float | None, now: float | None = None) -> dict[str, Any]:
    """The shard iterator's start: TRIM_HORIZON, or AT_TIMESTAMP ``since_s`` seconds ago as a
    timezone-aware UTC time (never in the future: Kinesis refuses that)."""
    if since_s is None:
        return {"ShardIteratorType": "TRIM_HORIZON"}
    now = time.time() if now is None else now
    return {"ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": datetime.fromtimestamp(now - max(0.0, since_s), UTC)}


def read_stream(cfg: LabConfig, stream: str, since_s: float | None = None,
                limit: int | None = None) -> list[str]:
    """Every record of ``stream`` (or those that arrived in the last ``since_s`` seconds),
    oldest first by arrival; with ``limit``, only the newest ``limit``."""
    kinesis = cfg.client("kinesis")
    got: list[tuple[float, str]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        **start_of(since_s))["ShardIterator"]
        for _ in range(MAX_CALLS_PER_SHARD):
            resp = _retrying(kinesis.get_records, f"GetRecords on {stream}",
                             ShardIterator=it, Limit=10_000)
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
