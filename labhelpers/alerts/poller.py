"""The local alert runtime (the stand-in for Lambda's Kinesis trigger) and the alert inbox.

``LocalPoller`` reads new score files from the on-disk scores stream, copies each file to the
processed bucket under ``scores/`` (what Firehose does on AWS) and calls the very same
``alert_handler.handler`` that AWS Lambda runs, with a Kinesis-shaped event, pointed at the
emulator. ``read_inbox`` / ``inbox`` read the alert messages that SNS delivered to the SQS
inbox queue (the local stand-in for e-mail and SMS) and keep them in ``inbox.jsonl``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AlertError, LabError
from ..infra import emulator, stack
from ..infra.config import LOCAL_CREDENTIALS, LabConfig
from ..stream.log import StreamLogReader
from . import handler as alert_handler

LOG = logging.getLogger(__name__)
POSITION_FILE = "alert-poller.position.json"
INBOX_FILE = "inbox.jsonl"
BATCH_SIZE = 100  # the event source mapping's BatchSize in cfn/clickstream.yaml
MAX_ATTEMPTS = 3  # like the mapping's retries: a file that keeps failing is given up
COUNT_KEYS = ("files", "rows", "malformed", "normal", "anomalies", "alerts_sent",
              "duplicates", "failed", "uploaded", "retry_later", "gave_up")

# os.environ is process-wide: one handler call at a time changes it.
_ENV_LOCK = threading.Lock()
_SEQ_LOCK = threading.Lock()
_last_seq = 0


def _next_sequence(n: int) -> int:
    """First of ``n`` increasing, never repeated sequence numbers (like a Kinesis shard's)."""
    global _last_seq
    with _SEQ_LOCK:
        first = max(time.time_ns(), _last_seq + 1)
        _last_seq = first + n - 1
        return first


def kinesis_event(rows: Sequence[dict[str, Any] | str | bytes], stream_arn: str,
                  region: str | None = None) -> dict[str, Any]:
    """A Lambda event as the Kinesis trigger builds it, one record per row.

    A dict is sent as its JSON; a str or bytes is sent as it is (so a malformed line from the
    stream log reaches the handler exactly as Lambda would hand it over).
    """
    region = region or stream_arn.split(":")[3] or "us-east-1"
    first = _next_sequence(len(rows))
    now = time.time()
    records = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            data = json.dumps(row).encode("utf-8")
            key = str(row.get("site", "unknown"))
        else:
            data = row.encode("utf-8") if isinstance(row, str) else bytes(row)
            key = "unknown"
        seq = f"{first + i:049d}"
        records.append({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": key,
                "sequenceNumber": seq,
                "data": base64.b64encode(data).decode("ascii"),
                "approximateArrivalTimestamp": now,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"shardId-000000000000:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{stream_arn.split(':')[4]}:role/local-poller",
            "awsRegion": region,
            "eventSourceARN": stream_arn,
        })
    return {"Records": records}


class _LocalContext:
    """The few Lambda context attributes a handler may read."""

    def __init__(self, function_name: str, region: str, account: str, timeout_s: float = 60.0):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@contextmanager
def _handler_env(cfg: LabConfig, outputs: dict[str, str]) -> Iterator[None]:
    """The environment Lambda would give the handler, pointed at the emulator."""
    values = {
        "TOPIC_ARN": outputs["AlertTopicArn"],
        "PROCESSED_BUCKET": outputs["ProcessedBucketName"],
        "AWS_ENDPOINT_URL": cfg.endpoint_url or "",
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": cfg.region,
        "AWS_REGION": cfg.region,
    }
    # Anything that could send the fake credentials' calls elsewhere is removed meanwhile.
    removed = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in (*values, *removed)}
        os.environ.update(values)
        for k in removed:
            os.environ.pop(k, None)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def scores_stream_arn(cfg: LabConfig, outputs: dict[str, str]) -> str:
    """The scores stream's ARN, from the stack's outputs (or built from the lab's names)."""
    return outputs.get("ScoresStreamArn") or (
        f"arn:aws:kinesis:{cfg.region}:{cfg.account_id}:stream/{cfg.scores_stream}")


def invoke_local(cfg: LabConfig, event: dict[str, Any],
                 outputs: dict[str, str]) -> dict[str, Any]:
    """Call the alert function's handler in-process with ``event``, in the environment and
    context the Lambda would give it; returns what the handler returned."""
    context = _LocalContext(outputs.get("AlertFunctionName", f"{cfg.prefix}-alert"),
                            cfg.region, cfg.account_id)
    with _handler_env(cfg, outputs):
        return alert_handler.handler(event, context)


class LocalPoller:
    """Feed new score rows of the on-disk scores stream to the alert handler, in order.

    The set of files already handled is kept in ``cfg.lab_dir / POSITION_FILE``, so a poller
    in a new kernel continues where the last one stopped. A file with a failed record is
    tried again on the next poll (up to MAX_ATTEMPTS), and later files wait, as on a shard.
    """

    def __init__(self, cfg: LabConfig, batch_size: int = BATCH_SIZE,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        if not cfg.emulated:
            raise AlertError(
                "The local poller is for a lab on the local emulator; on AWS the alert Lambda "
                "reads the scores stream itself",
                "use backend 'local', or watch the function's log group on AWS.",
            )
        if not (cfg.endpoint_url or "").startswith("http://127.0.0.1:"):
            raise AlertError(f"Endpoint {cfg.endpoint_url!r} is not the local emulator",
                             "use the local backend's default endpoint.")
        self.cfg = cfg
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.reader = StreamLogReader(
            cfg.stream_dir(cfg.scores_stream), cfg.lab_dir / POSITION_FILE
        )
        self.totals = dict.fromkeys(COUNT_KEYS, 0)
        self._outputs: dict[str, str] | None = None
        self._s3 = None
        self._attempts: dict[str, int] = {}

    def _stack_outputs(self) -> dict[str, str]:
        if self._outputs is None:
            self._outputs = stack.outputs(self.cfg)
        return self._outputs

    def _invoke(self, lines: list[str], outputs: dict[str, str]) -> dict[str, Any]:
        event = kinesis_event(lines, scores_stream_arn(self.cfg, outputs), self.cfg.region)
        return invoke_local(self.cfg, event, outputs)

    def poll_once(self) -> dict[str, int]:
        """Handle every new score file once; returns counts (files, rows, alerts_sent, ...)."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        files = self.reader.new_files()
        if not files:
            return counts
        emulator.ensure_running(self.cfg)
        outputs = self._stack_outputs()
        if self._s3 is None:
            self._s3 = self.cfg.client("s3")
        s3 = self._s3
        for path in files:
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            attempt = self._attempts.get(path.name, 0) + 1
            if attempt == 1:
                # The local stand-in for Firehose: archive the file as it is.
                s3.put_object(Bucket=outputs["ProcessedBucketName"], Key=f"scores/{path.name}",
                              Body=path.read_bytes(), ContentType="application/x-ndjson")
                counts["uploaded"] += 1
            failed = False
            for i in range(0, len(lines), self.batch_size):
                result = self._invoke(lines[i:i + self.batch_size], outputs)
                for key, value in result.get("counts", {}).items():
                    if key in counts and key != "records":
                        counts[key] += value
                failed = failed or bool(result.get("batchItemFailures"))
            counts["rows"] += len(lines)
            if failed and attempt < self.max_attempts:
                self._attempts[path.name] = attempt
                counts["retry_later"] += 1
                break  # keep the order: later files wait for this one
            if failed:
                LOG.warning("giving up on %s after %d attempts", path.name, attempt)
                counts["gave_up"] += 1
            self._attempts.pop(path.name, None)
            self.reader.mark_read(path)
            counts["files"] += 1
        for key, value in counts.items():
            self.totals[key] += value
        return counts

    def run_forever(self, stop_event: threading.Event, interval: float = 1.0) -> dict[str, int]:
        """Poll every ``interval`` seconds until ``stop_event`` is set; returns the totals.

        Errors (the emulator stopped, the stack deleted) are logged and polling goes on, so a
        background thread survives a restart of the emulator.
        """
        last_error = None
        while not stop_event.is_set():
            try:
                self.poll_once()
                last_error = None
            except (LabError, ClientError, BotoCoreError, OSError) as err:
                if str(err) != last_error:  # say it once, not every second
                    LOG.warning("alert poller: %s", err)
                    last_error = str(err)
                self._outputs = None  # the stack may have been redeployed
            stop_event.wait(interval)
        return dict(self.totals)


# ---------------------------------------------------------------- the inbox
def inbox_file(cfg: LabConfig) -> Path:
    """Where received alert messages are kept (JSON lines)."""
    return cfg.lab_dir / INBOX_FILE


def _parse_message(msg: dict[str, Any]) -> dict[str, Any]:
    received = datetime.now(UTC).isoformat(timespec="milliseconds")
    body = msg.get("Body", "")
    try:
        envelope = json.loads(body)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
        raw_attrs = envelope.get("MessageAttributes") or {}
        attrs = {k: (v or {}).get("Value") for k, v in raw_attrs.items()}
        return {
            "subject": envelope.get("Subject"),
            "message": envelope.get("Message"),
            "site": attrs.get("site"),
            "episode_id": attrs.get("episode_id"),
            "window_start": attrs.get("window_start"),
            "message_id": envelope.get("MessageId") or msg.get("MessageId"),
            "sent_at": envelope.get("Timestamp"),
            "received_at": received,
        }
    # Raw delivery (not what the lab sets up): keep the body as the message.
    return {"subject": None, "message": body, "site": None, "episode_id": None,
            "window_start": None, "message_id": msg.get("MessageId"), "sent_at": None,
            "received_at": received}


def _queue_url(cfg: LabConfig, sqs) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=cfg.inbox_queue)["QueueUrl"]
    except ClientError as err:
        if not cfg.emulated:
            return None  # a stack from before the inbox queue: alerts go to e-mail/SMS only
        raise AlertError(
            f"The inbox queue {cfg.inbox_queue} does not exist",
            "deploy the stack first: notebook 01 or `python -m labhelpers deploy`.",
        ) from err


def read_inbox(cfg: LabConfig, wait_seconds: float = 0, max_messages: int = 10) -> list[dict]:
    """Receive up to ``max_messages`` new alerts from the inbox queue, waiting up to
    ``wait_seconds`` for the first one.

    Each is a dict: subject, message, site, episode_id, window_start, message_id, sent_at,
    received_at. Received messages are appended to ``inbox.jsonl`` and then deleted from the
    queue, so ``inbox(cfg)`` can show them again later.
    """
    emulator.ensure_running(cfg)
    sqs = cfg.client("sqs")
    url = _queue_url(cfg, sqs)
    if url is None:
        return []
    got: list[dict] = []
    deadline = time.monotonic() + max(0.0, wait_seconds)
    path = inbox_file(cfg)
    while len(got) < max_messages:
        wait = 0 if got else int(min(20, max(0.0, deadline - time.monotonic())))
        resp = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, max_messages - len(got)),
            WaitTimeSeconds=wait, MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            if got or time.monotonic() >= deadline:
                break
            continue
        parsed = [_parse_message(m) for m in messages]
        # Keep them on disk before deleting them from the queue: never lose one.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            for item in parsed:
                fh.write(json.dumps(item) + "\n")
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ])
        got.extend(parsed)
    return got


def inbox(cfg: LabConfig) -> list[dict]:
    """Every alert received so far: drains the queue, then returns all of ``inbox.jsonl``."""
    while read_inbox(cfg, wait_seconds=0, max_messages=100):
        pass
    path = inbox_file(cfg)
    if not path.exists():
        return []
    out: list[dict] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        mid = item.get("message_id")
        if mid and mid in seen:
            continue  # written twice if a delete failed after the write
        seen.add(mid)
        out.append(item)
    return out
