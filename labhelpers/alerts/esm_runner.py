"""The stand-in for Lambda's Kinesis event source mapping when the aws backend is rehearsed
against the local emulator (where Lambda code does not run without Docker).

``EsmRunner`` reads the scores Kinesis stream on the emulator and calls the SAME handler the
deployed function runs (``labhelpers.alerts.handler.handler``), in-process, with Kinesis-shaped
events, applying the deployed mapping's and function's own settings as read from the emulator:

- ``BatchSize``, ``StartingPosition`` (TRIM_HORIZON / LATEST), ``MaximumRecordAgeInSeconds``;
- ``FunctionResponseTypes: [ReportBatchItemFailures]``: the records before the first reported
  failure are checkpointed and the batch is retried from it (an empty or unknown identifier
  fails the whole batch); without it the response is ignored and only an exception fails;
- ``BisectBatchOnFunctionError``: a failed batch of two or more records is split in halves,
  which are tried in order (splitting does not count as a retry, as on Lambda);
- ``MaximumRetryAttempts`` (-1: until the record age limit; capped here at 10,000): then the
  batch's description goes to the ``DestinationConfig.OnFailure`` queue (or topic), shaped as
  Lambda writes it (``requestContext``, ``responseContext``, ``KinesisBatchInfo``), and the
  runner moves past it;
- the function's environment variables (TOPIC_ARN, PROCESSED_BUCKET) and timeout.

Not applied: MaximumBatchingWindowInSeconds (a poll hands over what the stream holds, up to
BatchSize), ParallelizationFactor and tumbling windows (the lab's mapping uses neither).

The position (last checkpointed sequence number per shard, per stream and its creation time)
is kept in ``cfg.lab_dir / esm-runner.position.json``, so a runner in a new kernel or process
continues where the last one stopped, and a stack deployed again starts from its new stream's
StartingPosition. Every client uses the emulator's endpoint and fake keys: nothing
here can reach AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..background import BackgroundProcess
from ..errors import AlertError, LabError
from ..infra.config import LOCAL_CREDENTIALS, LabConfig
from .poller import LambdaContext, function_env

LOG = logging.getLogger(__name__)
POSITION_FILE = "esm-runner.position.json"
RETRY_CAP = 10_000  # MaximumRetryAttempts -1 means "until the record expires"
_LOOPBACK = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")
COUNT_KEYS = ("batches", "invocations", "records", "ok", "failed_invocations", "bisected",
              "retries", "partial_failures", "sent_to_on_failure", "expired", "alerts_sent")

Handler = Callable[[dict[str, Any], Any], Any]


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value or time.time())


class EsmRunner:
    """Feed the scores stream to the alert handler with the deployed mapping's settings.

    cfg: the lab config (its prefix finds the function); endpoint: the emulator's URL (default
    ``cfg.endpoint_url``; an aws-backend config rehearsed against the emulator passes it);
    handler: what to call (default: the deployed function's, alerts.handler.handler).
    """

    def __init__(self, cfg: LabConfig, *, endpoint: str | None = None,
                 function_name: str | None = None, handler: Handler | None = None,
                 position_file: Path | None = None) -> None:
        endpoint = endpoint or cfg.endpoint_url
        if not endpoint or not endpoint.startswith(_LOOPBACK):
            raise AlertError(f"Endpoint {endpoint!r} is not a local emulator",
                             "the event-source-mapping stand-in runs against the emulator only "
                             "(http://127.0.0.1:PORT); on AWS Lambda reads the stream itself.")
        import boto3

        self.cfg = cfg
        self.endpoint = endpoint
        self.function_name = function_name or f"{cfg.prefix}-alert"
        if handler is None:
            from .handler import handler as alert_handler

            handler = alert_handler
        self.handler = handler
        self.position_file = position_file or cfg.lab_dir / POSITION_FILE
        self._session = boto3.Session(region_name=cfg.region, **LOCAL_CREDENTIALS)
        self._clients: dict[str, Any] = {}
        self.totals = dict.fromkeys(COUNT_KEYS, 0)
        self.settings: dict[str, Any] | None = None

    # ------------------------------------------------------------ settings from the emulator
    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    def load_settings(self) -> dict[str, Any]:
        """The deployed mapping's and function's settings (AlertError if there is none)."""
        lam = self.client("lambda")
        try:
            fn = lam.get_function_configuration(FunctionName=self.function_name)
            maps = lam.list_event_source_mappings(
                FunctionName=self.function_name)["EventSourceMappings"]
        except ClientError as err:
            raise AlertError(f"The alert function {self.function_name} is not deployed "
                             f"({err.response.get('Error', {}).get('Code')})",
                             "deploy the stack first (notebook 01).") from err
        kinesis_maps = [m for m in maps if ":kinesis:" in m.get("EventSourceArn", "")]
        if not kinesis_maps:
            raise AlertError(f"The function {self.function_name} has no Kinesis event source "
                             "mapping", "deploy the current template (notebook 01).")
        m = kinesis_maps[0]
        on_failure = ((m.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination")
        self.settings = {
            "stream_arn": m["EventSourceArn"],
            "batch_size": int(m.get("BatchSize") or 100),
            "starting_position": m.get("StartingPosition") or "TRIM_HORIZON",
            "bisect": bool(m.get("BisectBatchOnFunctionError")),
            "report_item_failures": "ReportBatchItemFailures" in (
                m.get("FunctionResponseTypes") or []),
            "max_retries": int(m["MaximumRetryAttempts"]) if m.get(
                "MaximumRetryAttempts") is not None else -1,
            "max_record_age_s": int(m["MaximumRecordAgeInSeconds"]) if m.get(
                "MaximumRecordAgeInSeconds") is not None else -1,
            "on_failure": on_failure,
            "enabled": m.get("State", "Enabled") == "Enabled",
            "function_arn": fn["FunctionArn"],
            "timeout_s": float(fn.get("Timeout") or 3),
            "memory_mb": int(fn.get("MemorySize") or 128),
            "environment": dict((fn.get("Environment") or {}).get("Variables") or {}),
        }
        return self.settings

    # ------------------------------------------------------------ position
    def _positions(self) -> dict[str, dict[str, str]]:
        if self.position_file.exists():
            return json.loads(self.position_file.read_text())
        return {}

    def _stream_key(self) -> str:
        """The stream's ARN, plus its creation time when the stream exists: a stack deployed
        again has a new stream under the same ARN, whose sequence numbers start afresh."""
        if "stream_key" not in self.settings:
            arn = self.settings["stream_arn"]
            try:
                created = self.client("kinesis").describe_stream_summary(
                    StreamName=arn.split("/", 1)[1])["StreamDescriptionSummary"][
                    "StreamCreationTimestamp"]
                self.settings["stream_key"] = f"{arn}@{_epoch(created):.0f}"
            except (ClientError, KeyError):
                self.settings["stream_key"] = arn
        return self.settings["stream_key"]

    def _commit(self, shard_id: str, sequence: str) -> None:
        positions = self._positions()
        positions.setdefault(self._stream_key(), {})[shard_id] = sequence
        self.position_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.position_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(positions))
        tmp.replace(self.position_file)

    def _iterator(self, kinesis, shard_id: str) -> str:
        arn = self.settings["stream_arn"]
        last = self._positions().get(self._stream_key(), {}).get(shard_id)
        name = arn.split("/", 1)[1]
        if last:
            return kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard_id, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=last)["ShardIterator"]
        kind = self.settings["starting_position"]
        if kind not in ("TRIM_HORIZON", "LATEST"):
            kind = "TRIM_HORIZON"
        return kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                          ShardIteratorType=kind)["ShardIterator"]

    # ------------------------------------------------------------ invoking
    def _event(self, shard_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        s = self.settings
        account = s["stream_arn"].split(":")[4]
        return {"Records": [{
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": _epoch(r.get("ApproximateArrivalTimestamp")),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{account}:role/{self.function_name}",
            "awsRegion": self.cfg.region,
            "eventSourceARN": s["stream_arn"],
        } for r in records]}

    @contextmanager
    def _function_env(self) -> Iterator[None]:
        """The function's own environment, plus the emulator's endpoint and fake keys."""
        values = {**self.settings["environment"],
                  "AWS_ENDPOINT_URL": self.endpoint,
                  "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                  "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                  "AWS_REGION": self.cfg.region, "AWS_DEFAULT_REGION": self.cfg.region,
                  "AWS_LAMBDA_FUNCTION_NAME": self.function_name}
        with function_env(values):
            yield

    def invoke(self, shard_id: str, records: list[dict[str, Any]]) -> int | None:
        """Call the handler with ``records``; None on success, else the index of the first
        record to retry from (0 for a whole-batch failure)."""
        s = self.settings
        self.totals["invocations"] += 1
        context = LambdaContext(self.function_name, s["function_arn"], s["timeout_s"],
                                s["memory_mb"], log_stream="esm-runner")
        try:
            with self._function_env():
                result = self.handler(self._event(shard_id, records), context)
        except Exception as err:  # noqa: BLE001  (a function error, whatever it is)
            LOG.warning("alert function failed on %d record(s): %s", len(records), err)
            self.totals["failed_invocations"] += 1
            return 0
        if isinstance(result, dict):
            self.totals["alerts_sent"] += int((result.get("counts") or {}).get("alerts_sent", 0))
        if not s["report_item_failures"] or not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures") or []
        if not failures:
            return None
        self.totals["partial_failures"] += 1
        seqs = [r["SequenceNumber"] for r in records]
        ids = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        if any(i not in seqs for i in ids):
            return 0  # empty or unknown identifier: Lambda retries the whole batch
        return min(seqs.index(i) for i in ids)

    def _send_on_failure(self, shard_id: str, records: list[dict[str, Any]], condition: str,
                         attempts: int) -> None:
        s = self.settings
        self.totals["sent_to_on_failure"] += len(records)
        destination = s["on_failure"]
        if not destination:
            LOG.warning("dropping %d record(s) (%s): the mapping has no on-failure destination",
                        len(records), condition)
            return
        body = json.dumps({
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": s["function_arn"],
                               "condition": condition, "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": datetime.fromtimestamp(
                    _epoch(records[0].get("ApproximateArrivalTimestamp")), UTC).isoformat(),
                "approximateArrivalOfLastRecord": datetime.fromtimestamp(
                    _epoch(records[-1].get("ApproximateArrivalTimestamp")), UTC).isoformat(),
                "batchSize": len(records),
                "streamArn": s["stream_arn"],
            },
        })
        if ":sqs:" in destination:
            sqs = self.client("sqs")
            name = destination.rsplit(":", 1)[1]
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif ":sns:" in destination:
            self.client("sns").publish(TopicArn=destination, Message=body)
        else:
            LOG.warning("on-failure destination %s is not SQS or SNS; dropped", destination)

    def process_batch(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Handle one batch as the mapping would: retries, partial failures, bisecting, the
        on-failure destination; the position moves past the batch in the end."""
        s = self.settings
        max_retries = RETRY_CAP if s["max_retries"] < 0 else s["max_retries"]
        self.totals["batches"] += 1
        if s["max_record_age_s"] >= 0:
            now = time.time()
            fresh = [r for r in records
                     if now - _epoch(r.get("ApproximateArrivalTimestamp")) <= s["max_record_age_s"]]
            if len(fresh) < len(records):
                old = [r for r in records if r not in fresh]
                self.totals["expired"] += len(old)
                self._send_on_failure(shard_id, old, "RecordAgeExceeded", 0)
                self._commit(shard_id, old[-1]["SequenceNumber"])
            records = fresh
        pending = [records] if records else []
        attempts = 0
        while pending:
            part = pending[0]
            failed_at = self.invoke(shard_id, part)
            attempts += 1
            if failed_at is None:
                self.totals["ok"] += len(part)
                self._commit(shard_id, part[-1]["SequenceNumber"])
                pending.pop(0)
                attempts = 0
                continue
            if failed_at > 0:
                self.totals["ok"] += failed_at
                self._commit(shard_id, part[failed_at - 1]["SequenceNumber"])
                part = pending[0] = part[failed_at:]
            if s["bisect"] and len(part) > 1:
                mid = len(part) // 2
                pending[0:1] = [part[:mid], part[mid:]]
                self.totals["bisected"] += 1
                attempts = 0  # splitting does not use up the retries (as on Lambda)
                continue
            if attempts > max_retries:
                self._send_on_failure(shard_id, part, "RetryAttemptsExhausted", attempts)
                self._commit(shard_id, part[-1]["SequenceNumber"])
                pending.pop(0)
                attempts = 0
                continue
            self.totals["retries"] += 1

    def poll_once(self) -> dict[str, int]:
        """Read what is new on every shard and hand it over in batches; the totals so far."""
        if self.settings is None:
            self.load_settings()
        if not self.settings["enabled"]:
            return dict(self.totals)
        kinesis = self.client("kinesis")
        name = self.settings["stream_arn"].split("/", 1)[1]
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            shard_id = shard["ShardId"]
            iterator = self._iterator(kinesis, shard_id)
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator,
                                           Limit=self.settings["batch_size"])
                records = page.get("Records") or []
                if not records:
                    break
                self.totals["records"] += len(records)
                self.process_batch(shard_id, records)
                iterator = page.get("NextShardIterator")
        return dict(self.totals)

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> dict[str, int]:
        """Poll every ``interval`` s until ``stop_event`` is set; errors are logged once and
        polling goes on (the emulator or the stack may come back)."""
        last = None
        while not stop_event.is_set():
            try:
                self.poll_once()
                last = None
            except (LabError, ClientError, BotoCoreError, OSError) as err:
                if str(err) != last:
                    LOG.warning("event source mapping stand-in: %s", err)
                    last = str(err)
                self.settings = None  # re-read: the stack may have been redeployed
            stop_event.wait(interval)
        return dict(self.totals)


# ---------------------------------------------------------------- as a background process
MARKER = "labhelpers.alerts.esm_runner"


def process(cfg: LabConfig) -> BackgroundProcess:
    """The stand-in's background process (one per prefix)."""
    return BackgroundProcess(cfg.lab_dir / "esm-runner.json", MARKER,
                             cfg.lab_dir / "esm-runner.log")


def start(cfg: LabConfig, endpoint: str | None = None) -> dict[str, Any]:
    """Run the stand-in in a background process (one per prefix); its status."""
    runner = process(cfg)
    if runner.running:
        return status(cfg)
    endpoint = endpoint or cfg.endpoint_url or ""
    EsmRunner(cfg, endpoint=endpoint)  # validates the endpoint before anything starts
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", MARKER, *cfg.to_args(), "--endpoint", endpoint]
    runner.start(cmd, env=dict(os.environ), cwd=cfg.lab_dir)
    return status(cfg)


def status(cfg: LabConfig) -> dict[str, Any]:
    """``{running, pid, log}`` of the background stand-in."""
    runner = process(cfg)
    return {"running": runner.running, "pid": runner.pid, "log": str(runner.log)}


def stop(cfg: LabConfig) -> bool:
    """Stop the background stand-in; True if it ran. Its position file stays."""
    return process(cfg).stop(10)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog=f"python -m {MARKER}")
    LabConfig.add_arguments(parser)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = LabConfig.from_args(args)
    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    runner = EsmRunner(cfg, endpoint=args.endpoint)
    totals = runner.run_forever(stop_event)
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
