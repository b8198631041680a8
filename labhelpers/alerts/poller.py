"""The local alert runtime: the stand-in for Lambda's Kinesis trigger on the local backend.

``LocalPoller`` reads new score files from the on-disk scores stream, copies each file to the
processed bucket under ``scores/`` (what Firehose does on AWS) and calls the very same
handler that AWS Lambda runs (``labhelpers.alerts.handler``), with a Kinesis-shaped event,
pointed at the emulator. The messages SNS then delivers are read by labhelpers.alerts.inbox.
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
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AlertError, LabError
from ..infra import emulator, stack
from ..infra.config import LOCAL_CREDENTIALS, LabConfig
from ..stream.log import StreamLogReader
from . import handler as alert_handler

LOG = logging.getLogger(__name__)
POSITION_FILE = "alert-poller.position.json"
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


class LambdaContext:
    """The Lambda context attributes a handler may read, for the handler called on this
    machine (the local poller, ``invoke_local``, the ESM runner)."""

    def __init__(self, function_name: str, function_arn: str, timeout_s: float = 60.0,
                 memory_mb: int = 128, log_stream: str = "local") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream
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
    with function_env(values):
        yield


@contextmanager
def function_env(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as the alert function sees it on Lambda, while its handler runs in this
    process (one call at a time: the environment is the process's). Anything that could send
    the fake credentials' calls elsewhere is removed meanwhile."""
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
    name = outputs.get("AlertFunctionName", f"{cfg.prefix}-alert")
    context = LambdaContext(name, f"arn:aws:lambda:{cfg.region}:{cfg.account_id}:function:{name}")
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
        if cfg.world.cloud_runs_code:
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
