"""The alert function: one message per anomaly episode, one CSV per anomalous window.

The same file is the AWS Lambda handler (Python 3.12, zipped alone, fed by the scores
Kinesis stream) and the handler the local poller calls in-process (``labhelpers.alerts.poller``).
It may import only the standard library and boto3.

Per record of a Kinesis-shaped event (``{"Records": [{"kinesis": {"data": base64(JSON)}}]}``):

- a record that is not base64, not JSON or lacks a field is logged and skipped;
- a row that is not anomalous is skipped;
- an anomalous row gets a CSV under ``anomalies/`` in the processed bucket (what the original
  lab wrote), then its episode is *claimed* with a conditional put (``If-None-Match: *``) of
  ``alerts/<site>/<episode_id>.json``. Only the call that creates that object publishes to
  SNS, so repeated deliveries and later windows of the same episode send nothing more. If
  publishing fails the claim is deleted and the record reported as failed, so the retry sends.

Returns the Lambda batch contract ``{"batchItemFailures": [{"itemIdentifier": seq}, ...]}``
(plus ``counts``, which Lambda ignores).
Environment: TOPIC_ARN, PROCESSED_BUCKET; boto3 honours AWS_ENDPOINT_URL (the emulator).
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

LOG = logging.getLogger("alert_handler")
LOG.setLevel(logging.INFO)

# Same columns, same order as labhelpers.job.contracts.SCORE_COLUMNS (a test checks they agree;
# this file cannot import the package because it is deployed alone).
SCORE_COLUMNS = (
    "window_start",
    "window_end",
    "site",
    "clicks",
    "impressions",
    "ctr",
    "anomaly_score",
    "is_anomaly",
    "forest_ready",
    "attribution",
    "episode_id",
    "complete",
    "run_score",
    "usual_clicks",
    "usual_impressions",
    "usual_ctr",
    "flagged_by",
)
# Fields a row must carry to be handled; the later ones (forest_ready, attribution, episode_id,
# complete, run_score, usual_*, flagged_by) may be absent (rows from an older job).
REQUIRED_FIELDS = SCORE_COLUMNS[:8]
INPUT_WORDS = {"clicks": "clicks", "impressions": "impressions", "ctr": "click-through rate"}
# What a run of windows flagged (the row's flagged_by "run:<input>:<direction>"; the inputs
# are labhelpers.job.deviations.RUN_INPUTS).
RUN_WORDS = {
    ("clicks_given_ctr", "high"): "more clicks than the usual click-through rate predicts",
    ("clicks_given_ctr", "low"): "fewer clicks than the usual click-through rate predicts",
    ("impressions", "high"): "more impressions than lately",
    ("impressions", "low"): "fewer impressions than lately",
    ("clicks_rise", "high"): "more clicks than usual",
}
SUBJECT_MAX = 100  # SNS limit for e-mail subjects

_CLIENTS: dict[tuple, Any] = {}


class MalformedRecord(ValueError):
    """A record that cannot be read as a score row."""


def _client(service: str):
    # Built on first use and cached per endpoint/region: in Lambda the client is reused across
    # invocations; locally the poller points AWS_ENDPOINT_URL at the emulator before calling.
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    key = (service, endpoint, region)
    if key not in _CLIENTS:
        # A fresh session reads the credentials and endpoint from the environment now, not
        # whatever boto3's default session cached earlier in this process.
        _CLIENTS[key] = boto3.Session().client(service, region_name=region)
    return _CLIENTS[key]


# ---------------------------------------------------------------- reading records
def decode_record(record: dict[str, Any]) -> dict[str, Any]:
    """The score row inside one Kinesis event record; MalformedRecord if it is not one."""
    try:
        data = record["kinesis"]["data"]
    except (KeyError, TypeError):
        raise MalformedRecord("no kinesis.data in the record") from None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise MalformedRecord("kinesis.data is not base64") from None
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedRecord("the data is not JSON") from None
    if not isinstance(row, dict):
        raise MalformedRecord("the JSON is not an object")
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        raise MalformedRecord(f"missing field(s): {', '.join(missing)}")
    for name in ("window_start", "window_end", "site"):
        if not isinstance(row[name], str) or not row[name]:
            raise MalformedRecord(f"{name} is not a non-empty string")
    if not isinstance(row["is_anomaly"], bool):
        raise MalformedRecord("is_anomaly is not true/false")
    for name in ("clicks", "impressions", "ctr", "anomaly_score"):
        value = row[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise MalformedRecord(f"{name} is not a number")
    episode = row.get("episode_id")
    if episode is not None and not isinstance(episode, str):
        raise MalformedRecord("episode_id is not a string")
    return row


def parse_attribution(value: Any) -> dict[str, dict[str, float]]:
    """Attribution as ``{input: {"high": x, "low": y}}``; {} when absent or unreadable.

    The job sends it as a JSON string; a dict is accepted too.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, parts in value.items():
        if not isinstance(parts, dict):
            continue
        clean = {}
        for direction in ("high", "low"):
            x = parts.get(direction)
            if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
                clean[direction] = float(x)
        if clean:
            out[str(name)] = clean
    return out


def main_driver(attribution: Any) -> tuple[str, str, float] | None:
    """The input and direction with the largest attribution: ``("clicks", "high", 2.1)``."""
    best: tuple[str, str, float] | None = None
    for name, parts in parse_attribution(attribution).items():
        for direction, x in parts.items():
            if best is None or x > best[2]:
                best = (name, direction, x)
    if best is None or best[2] <= 0:
        return None
    return best


# ---------------------------------------------------------------- what is written and sent
def _fmt(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def alert_subject(row: dict[str, Any]) -> str:
    """The message subject: ``Clickstream anomaly on <site>`` (ASCII, at most 100 characters)."""
    text = f"Clickstream anomaly on {row['site']}"
    text = text.encode("ascii", "replace").decode("ascii").replace("\n", " ")
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 3] + "..."


def _usual_text(row: dict[str, Any], name: str, spec: str, unit: str = "") -> str:
    """" (usually about 10)" from the row's usual_<name>, or "" when the job sent none."""
    usual = row.get(f"usual_{name}")
    if isinstance(usual, bool) or not isinstance(usual, int | float) or not math.isfinite(usual):
        return ""
    return f" (usually about {format(usual, spec)}{unit})"


def _value_text(row: dict[str, Any], name: str) -> str:
    """The window's value of one forest input with what is usual: "40, usually about 10"."""
    spec, unit = (".1f", " %") if name == "ctr" else (".0f", "")
    value = row.get(name)
    if value is None:
        return "n/a"
    usual = _usual_text(row, name, spec, unit)
    return f"{format(value, spec)}{unit}" + (f", {usual[2:-1]}" if usual else "")


def flagged_by_text(row: dict[str, Any]) -> str:
    """Why the window is anomalous, in words, from the row's flagged_by ("" when absent)."""
    value = row.get("flagged_by")
    if value == "score":
        return "the anomaly score, above the alert threshold"
    if isinstance(value, str) and value.startswith("run:"):
        _, name, direction = (value.split(":") + ["", ""])[:3]
        words = RUN_WORDS.get((name, direction), f"{name} {direction}")
        run = row.get("run_score")
        run_text = f" (run sum {run:.1f})" if isinstance(run, int | float) and not \
            isinstance(run, bool) and math.isfinite(run) else ""
        return f"a run of windows with {words}{run_text}"
    return ""


def alert_message(row: dict[str, Any], episode_id: str) -> str:
    """The message body, in words: site, window, CTR, counts and what is usual for them,
    score, what drove it and what flagged it."""
    ctr = _fmt(row["ctr"], ".1f")
    ctr_text = (f"{ctr} %" + _usual_text(row, "ctr", ".1f", " %") if row["ctr"] is not None
                else "n/a (no impressions)")
    driver = main_driver(row.get("attribution"))
    dark = row.get("clicks") == 0 and row.get("impressions") == 0
    if dark:
        driver_text = "no traffic at all in this window: the site went silent"
    elif driver is None:
        driver_text = "not available for this window"
    else:
        name, direction, strength = driver
        driver_text = (
            f"{INPUT_WORDS.get(name, name)} unusually {direction}: "
            f"{_value_text(row, name)} ({strength:.2f} of the anomaly score)"
        )
    flagged = flagged_by_text(row)
    flagged_line = f"Flagged by: {flagged}\n" if flagged else ""
    return (
        f"Unusual traffic on site {row['site']}.\n"
        f"\n"
        f"Window: {row['window_start']} to {row['window_end']} (UTC)\n"
        f"Click-through rate: {ctr_text}\n"
        f"Clicks: {_fmt(row['clicks'], 'd')}{_usual_text(row, 'clicks', '.0f')}, "
        f"impressions: {_fmt(row['impressions'], 'd')}"
        f"{_usual_text(row, 'impressions', '.0f')}\n"
        f"Anomaly score: {_fmt(row['anomaly_score'], '.2f')} (higher means more unusual)\n"
        f"Main driver: {driver_text}\n"
        f"{flagged_line}"
        f"\n"
        f"This is the first anomalous window of episode {episode_id}. Later anomalous windows "
        f"of this episode send no further message; each one is written as a CSV under "
        f"anomalies/ in the processed bucket.\n"
    )


def anomaly_csv(row: dict[str, Any]) -> str:
    """One anomalous window as CSV: a header of SCORE_COLUMNS and one line."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    values = []
    for col in SCORE_COLUMNS:
        value = row.get(col)
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        values.append("" if value is None else value)
    writer.writerow(values)
    return buf.getvalue()


def _key_part(text: str) -> str:
    """A readable, collision-free S3 key component for ``text``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]
    if safe != text:  # something was replaced or cut: keep distinct texts distinct
        safe += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return safe


def episode_of(row: dict[str, Any]) -> str:
    """The row's episode id; the window start when the job sent none (one alert per window)."""
    episode = row.get("episode_id")
    if episode:
        return episode
    LOG.warning("anomalous row without episode_id for %s; using its window start", row["site"])
    return f"window-{row['window_start']}"


def claim_key(row: dict[str, Any], episode_id: str) -> str:
    """The S3 key whose creation claims the episode: ``alerts/<site>/<episode_id>.json``."""
    return f"alerts/{_key_part(row['site'])}/{_key_part(episode_id)}.json"


def csv_key(row: dict[str, Any]) -> str:
    """The S3 key of the window's CSV: ``anomalies/<site>/<window start, digits>.csv``."""
    stamp = re.sub(r"[^0-9A-Za-z]", "", row["window_start"])
    return f"anomalies/{_key_part(row['site'])}/{stamp}.csv"


def sdk_problem(s3) -> str | None:
    """None if this boto3 can send S3's conditional write (put_object IfNoneMatch, botocore
    1.35 and later), else the one line to log. Lambda's runtimes bundle a boto3 whose version
    depends on the runtime and the region and is not pinned: an older one would refuse the
    parameter on every invocation, and no alert would ever be sent."""
    members = s3.meta.service_model.operation_model("PutObject").input_shape.members
    if "IfNoneMatch" in members:
        return None
    import botocore

    return (f"ERROR alert function: the runtime's botocore {botocore.__version__} cannot send "
            "put_object(IfNoneMatch=...), which makes each episode's alert go out once. Fix: "
            "package boto3 >= 1.35 with the function (or use a newer runtime) and redeploy.")


def _claim(bucket: str, key: str, body: dict[str, Any]) -> bool:
    """Create the claim object; False if it exists already (the episode was alerted)."""
    problem = sdk_problem(_client("s3"))
    if problem:
        LOG.error(problem)
        raise RuntimeError(problem)
    try:
        _client("s3").put_object(
            Bucket=bucket, Key=key, Body=json.dumps(body).encode("utf-8"),
            ContentType="application/json", IfNoneMatch="*",
        )
        return True
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "PreconditionFailed":
            return False
        raise  # includes 409 ConditionalRequestConflict: retry the record later


def _alert_once(row: dict[str, Any], episode: str, topic_arn: str, bucket: str) -> bool:
    """Send the episode's message unless it was sent; True if this call sent it."""
    key = claim_key(row, episode)
    claim = {
        "site": row["site"],
        "episode_id": episode,
        "window_start": row["window_start"],
        "window_end": row["window_end"],
        "anomaly_score": row["anomaly_score"],
        "claimed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    if not _claim(bucket, key, claim):
        return False
    try:
        resp = _client("sns").publish(
            TopicArn=topic_arn,
            Subject=alert_subject(row),
            Message=alert_message(row, episode),
            MessageAttributes={
                "site": {"DataType": "String", "StringValue": row["site"]},
                "episode_id": {"DataType": "String", "StringValue": episode},
                "window_start": {"DataType": "String", "StringValue": row["window_start"]},
            },
        )
    except (ClientError, BotoCoreError):
        # Release the claim so the retried record can send the message.
        try:
            _client("s3").delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError):
            LOG.exception("could not release claim s3://%s/%s; the alert may be lost", bucket, key)
        raise
    # Record what was sent next to the claim (best effort: the message is out already).
    try:
        claim.update(message_id=resp.get("MessageId"),
                     sent_at=datetime.now(UTC).isoformat(timespec="milliseconds"))
        _client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(claim).encode("utf-8"),
                                 ContentType="application/json")
    except (ClientError, BotoCoreError):
        LOG.warning("alert sent but its record s3://%s/%s was not updated", bucket, key)
    return True


# ---------------------------------------------------------------- the handler
def _sequence_number(record: Any) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("kinesis"), dict):
        return None
    return record["kinesis"].get("sequenceNumber")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for a Kinesis batch of score rows (see the module docstring)."""
    topic_arn = os.environ.get("TOPIC_ARN")
    bucket = os.environ.get("PROCESSED_BUCKET")
    if not topic_arn or not bucket:
        # A configuration error fails the whole batch, so nothing is skipped silently.
        raise RuntimeError("TOPIC_ARN and PROCESSED_BUCKET must be set in the environment")

    counts = {"records": 0, "malformed": 0, "normal": 0, "anomalies": 0,
              "alerts_sent": 0, "duplicates": 0, "failed": 0}
    failures: list[dict[str, str]] = []
    for record in (event or {}).get("Records") or []:
        counts["records"] += 1
        seq = _sequence_number(record)
        try:
            row = decode_record(record)
        except MalformedRecord as err:
            counts["malformed"] += 1
            LOG.warning("skipped malformed record %s: %s", seq, err)
            continue
        if not row["is_anomaly"] or row.get("complete") is False:
            # a partial window (the input ended inside it) never alerts, whatever it says
            counts["normal"] += 1
            continue
        counts["anomalies"] += 1
        try:
            _client("s3").put_object(
                Bucket=bucket, Key=csv_key(row), Body=anomaly_csv(row).encode("utf-8"),
                ContentType="text/csv",
            )
            episode = episode_of(row)
            if _alert_once(row, episode, topic_arn, bucket):
                counts["alerts_sent"] += 1
                LOG.info("alert sent for %s episode %s", row["site"], episode)
            else:
                counts["duplicates"] += 1
        except (ClientError, BotoCoreError) as err:
            counts["failed"] += 1
            LOG.error("record %s for %s failed, reported for retry: %s", seq, row["site"], err)
            # An empty identifier makes Lambda retry the whole batch, the safe choice.
            failures.append({"itemIdentifier": seq or ""})
    LOG.info("batch done: %s", counts)
    return {"batchItemFailures": failures, "counts": counts}
