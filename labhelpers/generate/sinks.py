"""Sinks: where the generator's lines go.

``StreamLogSink`` (the local on-disk stream), ``KinesisSink`` (PutRecords with batching
within the service limits, partition keys spread over shards, retries with backoff and
jitter, throttling counted, every failure kept with its reason), ``MemorySink`` (tests);
each backend gives its own (``labhelpers.backends``: ``input_sink``). ``send_timeline``
sends a whole simulated timeline to a sink. A sink's ``capacity()`` says what it can take
(Kinesis: 1,000 records/s and 1 MiB/s per shard); a live run checks the plan against it
before it starts.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..errors import GeneratorError, aws_error_code
from ..infra.config import LabConfig
from ..stream.log import StreamLogWriter
from .plan import Plan
from .timeline import timeline_batches, to_line

# Kinesis PutRecords limits (per request and per record, data plus partition key).
KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_MAX_RECORD_BYTES = 1024 * 1024
# Write limits of one provisioned shard, and of a new on-demand stream (which then scales).
SHARD_RECORDS_PER_S = 1000
SHARD_BYTES_PER_S = 1024 * 1024
ON_DEMAND_RECORDS_PER_S = 4000
ON_DEMAND_BYTES_PER_S = 4 * 1024 * 1024
_THROTTLE_CODES = {"ProvisionedThroughputExceededException", "ThrottlingException",
                   "LimitExceededException", "KMSThrottlingException"}
# Call-level errors worth retrying; any other error is reported at once.
_RETRYABLE_CALL_ERRORS = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
    "KMSThrottlingException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}


@dataclass
class SinkStats:
    """Counters of a sink. Nothing is dropped silently: every record sent ends up either
    acknowledged or failed (with its reason), and ``sent == acknowledged + failed`` once a
    send returns.

    sent: records handed to the sink. acknowledged: records the target confirmed.
    retried: re-sends of records the target rejected for a reason worth retrying.
    throttled: rejections for throughput (Kinesis ProvisionedThroughputExceeded and kin).
    failed: records given up on; ``failures`` keeps the last ``FAILURES_KEPT`` of them with
    their reason (the sink's ``failure_log``, if set, keeps them all).
    failure_reasons: every rejection by reason, retried or not.
    """

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    throttled: int = 0
    failed: int = 0
    batches: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def copy(self) -> SinkStats:
        """A snapshot (the live loop hands these to other threads)."""
        return replace(self, failure_reasons=Counter(self.failure_reasons),
                       failures=list(self.failures))


FAILURES_KEPT = 50


@dataclass(frozen=True)
class Capacity:
    """What a sink can take: records/s and bytes/s (data plus partition key).

    strict: a hard limit (provisioned shards) rather than a starting point (on-demand).
    """

    records_per_s: float
    bytes_per_s: float
    what: str
    fix: str
    strict: bool = True


class Sink(Protocol):
    """Where generated lines go. ``keys`` are partition keys (sites), one per line."""

    stats: SinkStats

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None: ...


class MemorySink:
    """Keeps every batch in memory (tests, small demos)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.stats = SinkStats()

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Keep a copy of ``lines`` as one batch."""
        if lines:
            self.batches.append(list(lines))
            self.stats.sent += len(lines)
            self.stats.acknowledged += len(lines)
            self.stats.batches += 1

    @property
    def lines(self) -> list[str]:
        """Every line received, in order."""
        return [ln for b in self.batches for ln in b]


class StreamLogSink:
    """The local input stream: one file per ``send`` in the on-disk stream log, in order.

    ``target`` is a LabConfig (its input stream's folder) or a folder. A failed write (disk
    full, folder gone) counts the batch as failed with the reason, then raises.
    """

    def __init__(self, target: LabConfig | Path | str) -> None:
        if isinstance(target, LabConfig):
            target = target.stream_dir(target.input_stream)
        self.writer = StreamLogWriter(target)
        self.directory = self.writer.directory
        self.stats = SinkStats()

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Append ``lines`` as one complete file (keys are not needed on disk)."""
        if not lines:
            return
        self.stats.sent += len(lines)
        try:
            self.writer.append(lines)
        except OSError as err:
            reason = type(err).__name__
            self.stats.failed += len(lines)
            self.stats.failure_reasons[reason] += len(lines)
            self.stats.last_error = f"{reason}: {err}"
            _keep_failure(self.stats, reason, str(err), lines[0], len(lines))
            raise GeneratorError(f"Cannot write the stream log in {self.directory}: {err}",
                                 "free disk space or check the folder, then start again."
                                 ) from None
        self.stats.acknowledged += len(lines)
        self.stats.batches += 1

    def capacity(self) -> Capacity | None:
        """None: the stream log takes what one process can render (see bench/)."""
        return None


def _keep_failure(stats: SinkStats, reason: str, message: str, record: str,
                  count: int = 1) -> dict[str, Any]:
    entry = {"reason": reason, "message": message[:300], "record": record[:300],
             "count": count}
    stats.failures.append(entry)
    del stats.failures[:-FAILURES_KEPT]
    return entry


def _partition_key(line: str) -> str:
    try:
        site = json.loads(line).get("site")
    except (ValueError, AttributeError):
        site = None
    return site[:256] if isinstance(site, str) and site else "unknown"


class KinesisSink:
    """PutRecords into a Kinesis stream (``cfg.input_stream`` unless ``stream_name`` is given).

    Requests hold at most 500 records and 5 MiB. The partition key is the site; with
    ``spread=True`` (default) and several shards, records also get an ExplicitHashKey that
    goes round the shards, so one busy site does not pin one shard. Records the service
    rejects (throttling, internal failure) are sent again after an exponential backoff with
    jitter, up to ``max_attempts`` sends per record, then counted as failed with their reason
    (and written to ``failure_log``, a JSON-lines file, if given). ``client`` and ``sleep``
    can be injected (tests). ``check`` asks the stream for its shards first (a missing stream
    is an error that says how to create it).
    """

    def __init__(self, cfg: LabConfig | None = None, *, client: Any = None,
                 stream_name: str | None = None, max_attempts: int = 8,
                 base_delay_s: float = 0.1, max_delay_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 check: bool = True, spread: bool = True,
                 failure_log: Path | str | None = None) -> None:
        if cfg is None and (client is None or stream_name is None):
            raise GeneratorError("KinesisSink needs a LabConfig, or both client and stream_name",
                                 "use KinesisSink(cfg) or KinesisSink(client=..., "
                                 "stream_name=...).")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise GeneratorError(f"Parameter max_attempts must be >= 1, got {max_attempts!r}",
                                 "use max_attempts=8.")
        self.stream_name = stream_name or cfg.input_stream  # type: ignore[union-attr]
        self.region = cfg.region if cfg else getattr(getattr(client, "meta", None),
                                                     "region_name", "?")
        self.client = client if client is not None else cfg.client("kinesis")  # type: ignore
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.stats = SinkStats()
        self.failure_log = Path(failure_log) if failure_log else None
        self.shards: int | None = None
        self.mode: str | None = None
        self._hash_keys: list[str] = []
        self._next_shard = 0
        if check:
            try:
                desc = self._call(self.client.describe_stream_summary,
                                  StreamName=self.stream_name)["StreamDescriptionSummary"]
                self.shards = desc.get("OpenShardCount")
                self.mode = desc.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
            except _Retry:
                pass  # throttled, so the stream exists; sending will retry
            if spread and (self.shards or 0) > 1:
                self._hash_keys = self._shard_hash_keys()

    def _shard_hash_keys(self) -> list[str]:
        # The middle of each open shard's hash key range: one ExplicitHashKey per shard.
        try:
            shards = self._call(self.client.list_shards, StreamName=self.stream_name,
                                ShardFilter={"Type": "AT_LATEST"})["Shards"]
        except (_Retry, GeneratorError):
            return []  # no ListShards permission: partition keys alone decide
        keys = []
        for sh in shards:
            rng = sh["HashKeyRange"]
            lo, hi = int(rng["StartingHashKey"]), int(rng["EndingHashKey"])
            keys.append(str((lo + hi) // 2))
        return keys

    def capacity(self) -> Capacity | None:
        """What the stream can take (None when its shards are unknown)."""
        if self.mode == "ON_DEMAND":
            return Capacity(ON_DEMAND_RECORDS_PER_S, ON_DEMAND_BYTES_PER_S,
                            f"on-demand Kinesis stream {self.stream_name!r} (at first; it "
                            "scales up with the traffic)", "wait for it to scale", strict=False)
        if not self.shards:
            return None
        n = self.shards
        return Capacity(n * SHARD_RECORDS_PER_S, n * SHARD_BYTES_PER_S,
                        f"Kinesis stream {self.stream_name!r} with {n} shard(s) "
                        f"({SHARD_RECORDS_PER_S:,} records/s and 1 MiB/s per shard)",
                        f"add shards (aws kinesis update-shard-count --stream-name "
                        f"{self.stream_name} --target-shard-count N --scaling-type "
                        "UNIFORM_SCALING)")

    def _missing(self) -> GeneratorError:
        return GeneratorError(
            f"Kinesis stream {self.stream_name!r} does not exist (region {self.region})",
            "deploy the lab's stack first (notebook 01_deploy, or `python -m labhelpers "
            "deploy`), and check that the config's prefix and region match it; or create the "
            f"stream yourself: aws kinesis create-stream --stream-name {self.stream_name} "
            f"--shard-count 1 --region {self.region}.")

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as err:
            code = aws_error_code(err)
            if code == "ResourceNotFoundException":
                raise self._missing() from None
            if code in _RETRYABLE_CALL_ERRORS:
                raise _Retry(code) from None
            raise GeneratorError(f"Kinesis {fn.__name__} on {self.stream_name!r} failed: "
                                 f"{code}: {err.response.get('Error', {}).get('Message', '')}",
                                 "check the credentials' permissions and the stream, then "
                                 "send again.") from None
        except BotoCoreError as err:
            raise GeneratorError(f"Cannot reach Kinesis for {self.stream_name!r}: {err}",
                                 "start the local emulator (backend local) or check the "
                                 "network and region (backend aws).") from None

    def _backoff(self, attempt: int) -> None:
        # "Equal jitter": never less than half the exponential delay, so a throttled shard
        # gets real relief, and never in lockstep with other senders.
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        self._sleep(cap / 2 + self._rng.uniform(0, cap / 2))

    def _fail(self, entries: Sequence[dict[str, Any]], reason: str, message: str) -> None:
        """Give up on ``entries``: count them, keep the reason, log every record."""
        self.stats.failed += len(entries)
        self.stats.last_error = f"{reason}: {message}"
        if not entries:
            return
        _keep_failure(self.stats, reason, message, entries[0]["Data"].decode("utf-8", "replace"),
                      len(entries))
        if self.failure_log is not None:
            self.failure_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.failure_log, "a", encoding="utf-8") as fh:
                for e in entries:
                    fh.write(to_line({"reason": reason, "message": message,
                                      "record": e["Data"].decode("utf-8", "replace")}) + "\n")

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        """Send ``lines`` (partition keys ``keys``, default: each line's site)."""
        if keys is None:
            keys = [_partition_key(ln) for ln in lines]
        entries: list[dict[str, Any]] = []
        too_large: list[dict[str, Any]] = []
        hash_keys, n_shards = self._hash_keys, len(self._hash_keys)
        for line, key in zip(lines, keys, strict=True):
            data = line.encode("utf-8")
            key = key or "unknown"
            self.stats.sent += 1
            entry = {"Data": data, "PartitionKey": key}
            if len(data) + len(key.encode("utf-8")) > KINESIS_MAX_RECORD_BYTES:
                too_large.append(entry)
                continue
            if n_shards:
                entry["ExplicitHashKey"] = hash_keys[self._next_shard]
                self._next_shard = (self._next_shard + 1) % n_shards
            entries.append(entry)
        if too_large:
            self.stats.failure_reasons["RecordTooLarge"] += len(too_large)
            self._fail(too_large, "RecordTooLarge", "data plus partition key over 1 MiB")
        for chunk in _chunks(entries):
            self._put(chunk)

    def _put(self, entries: list[dict[str, Any]]) -> None:
        attempt = 1
        while True:
            self.stats.batches += 1
            try:
                resp = self._call(self.client.put_records, StreamName=self.stream_name,
                                  Records=entries)
                failed = [(e, r) for e, r in zip(entries, resp["Records"], strict=True)
                          if r.get("ErrorCode")]
                for _, r in failed:
                    code = r["ErrorCode"]
                    self.stats.failure_reasons[code] += 1
                    if code in _THROTTLE_CODES:
                        self.stats.throttled += 1
                    self.stats.last_error = f"{code}: {r.get('ErrorMessage', '')}"
                self.stats.acknowledged += len(entries) - len(failed)
                entries = [e for e, _ in failed]
                message = failed[-1][1].get("ErrorMessage", "") if failed else ""
                code = failed[-1][1]["ErrorCode"] if failed else ""
            except _Retry as err:
                code, message = err.code, "the whole request was rejected"
                self.stats.failure_reasons[code] += len(entries)
                if code in _THROTTLE_CODES:
                    self.stats.throttled += len(entries)
                self.stats.last_error = f"{code} (whole request)"
            except GeneratorError as err:  # not worth retrying: say so for every record
                self.stats.failure_reasons["RequestFailed"] += len(entries)
                self._fail(entries, "RequestFailed", err.what)
                raise
            if not entries:
                return
            if attempt >= self.max_attempts:
                self._fail(entries, code, f"{message} (gave up after {attempt} attempts)")
                return
            self.stats.retried += len(entries)
            self._backoff(attempt)
            attempt += 1


class _Retry(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _chunks(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for e in entries:
        n = len(e["Data"]) + len(e["PartitionKey"].encode("utf-8"))
        if chunk and (len(chunk) >= KINESIS_MAX_RECORDS or size + n > KINESIS_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(e)
        size += n
    if chunk:
        yield chunk


def send_timeline(plan: Plan, sink: Sink, start: datetime | float,
                  duration_s: float | None = None, seed: int | None = 0,
                  batch_s: float = 1.0, total: int | None = None) -> int:
    """Send a whole simulated timeline to ``sink`` as fast as it takes it; returns records sent.

    With a ``StreamLogSink`` this writes one file per ``batch_s`` of event time, in order.
    """
    n = 0
    for batch in timeline_batches(plan, start, duration_s, seed, batch_s, total):
        sink.send(batch.lines, batch.keys)
        n += len(batch.lines)
    return n
