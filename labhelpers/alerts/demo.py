"""Invoke the alert function once with a sample event, as the original lab's Lambda test did.

``sample_event`` builds a Kinesis-shaped event (the shape Lambda hands the function) holding one
score row of a demo site; ``invoke`` calls the function with it: locally the very handler in
``alert_handler.py``, in this process, with the environment Lambda would give it (pointed at
the emulator); on AWS the deployed Lambda through ``lambda.invoke``. ``take_messages`` then
takes the demo's SNS message out of the inbox queue *without* adding it to the lab's inbox
(``labhelpers.alerts.inbox``), and ``remove_demo_objects`` deletes what the demo wrote to the
processed bucket, so the demo leaves nothing behind that notebook 04's "exactly one alert"
could count.

The demo site is ``demo.example``: never a site the generator sends, so the demo's episode
never collides with a real one.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AlertError
from ..infra import emulator, stack
from ..infra.config import LabConfig
from . import handler as alert_handler
from . import inbox as alert_inbox
from . import poller as alerts

DEMO_SITE = "demo.example"


def sample_row(anomalous: bool = True, site: str = DEMO_SITE,
               episode_id: str | None = None) -> dict[str, Any]:
    """One score row as the analytics app writes it: the lab's spike (4 clicks per
    impression, score 4.2) when ``anomalous``, else a normal window (CTR 100 %, score 0.6)."""
    now = int(time.time()) // 10 * 10 - 10
    start = datetime.fromtimestamp(now, tz=UTC)
    end = datetime.fromtimestamp(now + 10, tz=UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    # what the forest considered normal for this site, and a complete window
    usual = {"complete": True, "run_score": 0.0, "usual_clicks": 10.0,
             "usual_impressions": 10.0, "usual_ctr": 100.0}
    if anomalous:
        episode = episode_id or f"{site}-demo-{uuid.uuid4().hex[:8]}"
        return {"window_start": start.strftime(fmt), "window_end": end.strftime(fmt),
                "site": site, "clicks": 40, "impressions": 10, "ctr": 400.0,
                "anomaly_score": 4.2, "is_anomaly": True, "forest_ready": True,
                "attribution": json.dumps({"clicks": {"high": 3.1, "low": 0.0},
                                           "impressions": {"high": 0.2, "low": 0.3},
                                           "ctr": {"high": 0.6, "low": 0.0}}),
                "episode_id": episode, **usual, "flagged_by": "score"}
    return {"window_start": start.strftime(fmt), "window_end": end.strftime(fmt),
            "site": site, "clicks": 10, "impressions": 10, "ctr": 100.0,
            "anomaly_score": 0.6, "is_anomaly": False, "forest_ready": True,
            "attribution": json.dumps({"clicks": {"high": 0.2, "low": 0.1}}),
            "episode_id": None, **usual, "flagged_by": None}


def sample_event(cfg: LabConfig, rows: list[dict[str, Any] | str] | None = None,
                 anomalous: bool = True) -> dict[str, Any]:
    """A Kinesis-shaped Lambda event with ``rows`` (default: one ``sample_row``)."""
    outs = stack.outputs(cfg)
    rows = rows if rows is not None else [sample_row(anomalous)]
    return alerts.kinesis_event(rows, alerts.scores_stream_arn(cfg, outs), cfg.region)


def decoded(event: dict[str, Any]) -> list[Any]:
    """What each record of the event carries (its base64 ``data`` decoded, JSON parsed)."""
    out: list[Any] = []
    for record in event.get("Records", []):
        raw = base64.b64decode(record["kinesis"]["data"]).decode("utf-8", errors="replace")
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append(raw)
    return out


def invoke(cfg: LabConfig, event: dict[str, Any]) -> dict[str, Any]:
    """Call the alert function once with ``event``; returns what it returned
    (``batchItemFailures`` and ``counts``)."""
    emulator.ensure_running(cfg)
    outs = stack.outputs(cfg)
    function = outs.get("AlertFunctionName", f"{cfg.prefix}-alert")
    if cfg.world.cloud_runs_code:  # the emulator cannot run Lambda code: in-process there
        try:
            resp = cfg.client("lambda").invoke(FunctionName=function,
                                               Payload=json.dumps(event).encode("utf-8"))
        except (ClientError, BotoCoreError) as err:
            raise AlertError(f"Invoking the alert function {function} failed: {err}",
                             "check that the stack is deployed (notebook 01) and that you may "
                             "call lambda:InvokeFunction.") from err
        payload = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            raise AlertError(f"The alert function {function} failed: {payload}",
                             "read its log group /aws/lambda/" + function + " for the cause.")
        return payload
    return alerts.invoke_local(cfg, event, outs)


def take_messages(cfg: LabConfig, site: str = DEMO_SITE,
                  wait_seconds: float = 5) -> list[dict[str, Any]]:
    """The alert messages for ``site`` waiting in the inbox queue, removed from it.

    Other messages (real alerts) are put back at once, untouched, for ``labhelpers.alerts.inbox``.
    """
    emulator.ensure_running(cfg)
    sqs = cfg.client("sqs")
    url = alert_inbox.queue_url(cfg, sqs)
    if url is None:
        return []
    taken: list[dict[str, Any]] = []
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        wait = int(min(5, max(0.0, deadline - time.monotonic())))
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                   MessageAttributeNames=["All"], VisibilityTimeout=30)
        messages = resp.get("Messages", [])
        for msg in messages:
            parsed = alert_inbox.parse_message(msg)
            if parsed.get("site") == site:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                taken.append(parsed)
            else:  # a real alert: back in the queue now
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"],
                                              VisibilityTimeout=0)
        if (taken and not messages) or time.monotonic() >= deadline:
            return taken


def remove_demo_objects(cfg: LabConfig, site: str = DEMO_SITE) -> int:
    """Delete what the demo wrote to the processed bucket (every version of its episode
    claims under ``alerts/<site>/`` and CSVs under ``anomalies/<site>/``); how many."""
    emulator.ensure_running(cfg)
    bucket = stack.outputs(cfg)["ProcessedBucketName"]
    s3 = cfg.client("s3")
    part = alert_handler._key_part(site)
    removed = 0
    for prefix in (f"alerts/{part}/", f"anomalies/{part}/"):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                       Prefix=prefix):
            items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if items:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})
                removed += len({i["Key"] for i in items})
    return removed
