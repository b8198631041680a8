"""Deploy, read and delete the lab's CloudFormation stack, on AWS or on the local emulator.

``deploy`` packages the alert function (``alert_handler.py`` alone in a zip), uploads it to
the artifacts bucket, creates or updates the stack from ``cfn/clickstream.yaml`` and returns
its outputs. On the local emulator it then creates through the API what the emulator skips
and the lab needs: the SQS inbox queue subscribed to the alert topic. On AWS it first checks
the credentials and the region (labhelpers.infra.credentials) and that the bucket names are free.
E-mail addresses and phone numbers are never printed or put in an error message.

Every name this module touches starts with ``cfg.prefix + "-"``; nothing else is changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterable
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..errors import StackError
from ..errors import aws_error_code as _error_code
from ..errors import aws_error_text as _error_text
from ..logs import logger
from ..resources import data_dir
from ..wait import wait_until
from . import emulator, queue_names
from .config import LabConfig

log = logger(__name__)

TEMPLATE_FILE = data_dir("cfn") / "clickstream.yaml"
# the Lambda's code: one file of the package, deployed as alert_handler.py (the template's
# Handler)
HANDLER_FILE = Path(str(files("labhelpers.alerts").joinpath("handler.py")))
TAG_KEY = "lab-prefix"
EXPECTED_OUTPUTS = (
    "RawBucketName",
    "ProcessedBucketName",
    "InputStreamName",
    "InputStreamArn",
    "ScoresStreamName",
    "ScoresStreamArn",
    "DeadLetterStreamName",
    "DeadLetterStreamArn",
    "AlertTopicArn",
    "AlertFunctionName",
    "AlertFailureQueueArn",
    "AppRoleArn",
    "AppLogGroupName",
)
# Outputs of resources the emulator skips (it drops such outputs silently): checked on AWS only.
AWS_ONLY_OUTPUTS = ("RawArchiveName", "ScoresArchiveName")
STREAM_MODES = ("PROVISIONED", "ON_DEMAND")
_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_NOT_READY = {"CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "DELETE_IN_PROGRESS"}
_NEEDS_DELETE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED"}
_FIX_DEPLOY = "run notebook 01 or `python -m labhelpers deploy`."
_FIX_CLEANUP = (
    "delete it first with `python -m labhelpers cleanup` (or notebook 05), then deploy again."
)
_EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE_RE = r"^\+[1-9][0-9]{6,14}$"


# ---------------------------------------------------------------- packaging
def alert_zip() -> bytes:
    """The alert function's deployment package: ``alert_handler.py`` at the root of a zip.

    Byte-for-byte reproducible (fixed timestamp), so an unchanged handler gives the same key.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("alert_handler.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, HANDLER_FILE.read_bytes())
    return buf.getvalue()


class _Clients:
    """boto3 clients made from one session (a session per client costs ~0.1 s each)."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self._session = None
        self._made: dict[str, Any] = {}

    def __call__(self, service: str):
        if service not in self._made:
            if self._session is None:
                self._session = self.cfg.session()
            self._made[service] = self._session.client(service, endpoint_url=self.cfg.endpoint_url)
        return self._made[service]


def _timeout(cfg: LabConfig) -> float:
    return cfg.world.stack_timeout_s


def _poll_interval(cfg: LabConfig) -> float:
    return cfg.world.stack_poll_s


def _lab_buckets(cfg: LabConfig) -> list[str]:
    account, region = cfg.account_id, cfg.region
    return [f"{cfg.prefix}-raw-{account}-{region}", f"{cfg.prefix}-processed-{account}-{region}"]


def _mine(cfg: LabConfig, name: str) -> bool:
    return name.startswith(cfg.prefix + "-")


def _bucket_exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as err:
        if _error_code(err) in ("404", "NoSuchBucket", "NotFound"):
            return False
        if _error_code(err) in ("403", "AccessDenied"):
            raise StackError(
                f"Bucket {bucket} exists but belongs to another account or denies access",
                "choose another prefix (LAB_PREFIX) so that the lab's bucket names are free.",
            ) from err
        raise


def ensure_artifacts_bucket(cfg: LabConfig, s3) -> str:
    """The lab's artifacts bucket (code zips), created private and tagged if missing."""
    bucket = cfg.artifacts_bucket
    if _bucket_exists(s3, bucket):
        return bucket
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if cfg.region != "us-east-1":  # us-east-1 rejects an explicit location constraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": cfg.region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if _error_code(err) == "BucketAlreadyExists":
            raise StackError(
                f"The bucket name {bucket} is taken by another AWS account",
                "choose another prefix (LAB_PREFIX) so that the lab's bucket names are free.",
            ) from err
        if _error_code(err) != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": TAG_KEY, "Value": cfg.prefix}]}
    )
    return bucket


def _upload_code(cfg: LabConfig, s3) -> tuple[str, str]:
    bucket = ensure_artifacts_bucket(cfg, s3)
    data = alert_zip()
    # The content hash in the key makes update_stack replace the code when the handler changes.
    key = f"alert-function/alert_handler-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/zip")
    return bucket, key


# ---------------------------------------------------------------- stack helpers
def _describe(cf, name: str) -> dict[str, Any] | None:
    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if "does not exist" in _error_text(err):
            return None
        raise
    return stacks[0] if stacks and stacks[0]["StackStatus"] != "DELETE_COMPLETE" else None


def _event_ids(cf, name: str) -> set[str]:
    try:
        return {e["EventId"] for e in cf.describe_stack_events(StackName=name)["StackEvents"]}
    except ClientError:
        return set()


def _new_events(cf, name: str, seen: set[str]) -> list[dict[str, Any]]:
    try:
        events = cf.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    fresh = [e for e in events if e["EventId"] not in seen]
    seen.update(e["EventId"] for e in fresh)
    return list(reversed(fresh))  # the API lists newest first


def _print_event(event: dict[str, Any]) -> None:
    stamp = event.get("Timestamp")
    when = stamp.astimezone().strftime("%H:%M:%S %Z") if isinstance(stamp, datetime) else ""
    reason = event.get("ResourceStatusReason") or ""
    log.info(f"  {when}  {event.get('ResourceStatus', ''):<20} {event.get('LogicalResourceId', '')}"
             f"{'  ' + reason if reason else ''}")


def _wait(cfg: LabConfig, cf, name: str, seen: set[str], progress: bool) -> tuple[str, list]:
    """Poll until the stack leaves *_IN_PROGRESS; returns (status or 'GONE', new events)."""
    events: list[dict[str, Any]] = []

    def settled() -> str | None:
        fresh = _new_events(cf, name, seen)
        events.extend(fresh)
        if progress:
            for event in fresh:
                _print_event(event)
        stack = _describe(cf, name)
        status = stack["StackStatus"] if stack else "GONE"
        return None if status.endswith("_IN_PROGRESS") else status

    # the events are the progress shown; a bar would interleave with them
    status = wait_until(settled, f"stack {name}", timeout=_timeout(cfg),
                        interval=_poll_interval(cfg), progress=False,
                        fix="look at the stack's events (CloudFormation console or "
                            "describe_stack_events) and run the same command again when it "
                            "has finished.")
    return status, events


def _failure_reason(events: Iterable[dict[str, Any]]) -> str:
    for event in events:
        if str(event.get("ResourceStatus", "")).endswith("FAILED") and event.get(
            "ResourceStatusReason"
        ):
            return f"{event.get('LogicalResourceId')}: {event['ResourceStatusReason']}"
    return "no reason recorded in the stack events"


def mask_contact(value: str) -> str:
    """A contact shown without revealing it: its first character and its length."""
    return f"{value[:1]}… ({len(value)} characters)" if value else "(empty)"


def _validate_contacts(email: str | None, phone: str | None) -> None:
    import re

    # The value itself is never repeated: error messages end up in notebook outputs and logs.
    if email and not re.match(_EMAIL_RE, email):
        raise StackError(f"The alert e-mail {mask_contact(email)} is not an e-mail address",
                         "pass email='you@example.com', or leave it out.")
    if phone and not re.match(_PHONE_RE, phone):
        raise StackError(
            f"The alert phone number {mask_contact(phone)} is not in E.164 form",
            "pass phone='+14155550100' (+, country code, number, digits only, no spaces), "
            "or leave it out.",
        )


def _check_bucket_names(cfg: LabConfig, s3) -> None:
    """Before a first deployment on AWS: the lab's bucket names must be free (or ours)."""
    for bucket in _lab_buckets(cfg):
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as err:
            code = _error_code(err)
            if code in ("404", "NoSuchBucket", "NotFound"):
                continue
            if code in ("403", "AccessDenied", "Forbidden"):
                raise StackError(
                    f"The bucket name {bucket} is taken by another AWS account",
                    "choose another prefix (LAB_PREFIX) so that the lab's bucket names are free.",
                ) from err
            raise
        raise StackError(
            f"The bucket {bucket} already exists in your account but no stack "
            f"{cfg.stack_name} does (left over from an earlier run)",
            "delete it with `python -m labhelpers cleanup`, or choose another prefix.",
        )


def _parameters(cfg: LabConfig, code: tuple[str, str], email: str | None, phone: str | None,
                update: bool, stream_mode: str | None = None,
                shard_count: int | None = None,
                previous: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"ParameterKey": "Prefix", "ParameterValue": cfg.prefix},
        {"ParameterKey": "AlertCodeBucket", "ParameterValue": code[0]},
        {"ParameterKey": "AlertCodeKey", "ParameterValue": code[1]},
    ]
    # Always explicit: UsePreviousValue later needs the key in the previous stack (the emulator
    # fails on a defaulted one, AWS on one the previous template lacked).
    for key, value, default in (("InputStreamMode", stream_mode, STREAM_MODES[0]),
                                ("InputShardCount", shard_count, 1)):
        if value is None and key in previous:
            params.append({"ParameterKey": key, "UsePreviousValue": True})
        else:
            params.append({"ParameterKey": key,
                           "ParameterValue": str(default if value is None else value)})
    for key, value in (("AlertEmail", email), ("AlertPhone", phone)):
        if value is None and update:
            params.append({"ParameterKey": key, "UsePreviousValue": True})  # keep what was set
        else:
            params.append({"ParameterKey": key, "ParameterValue": value or ""})
    return params


def _outputs_of(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


# ---------------------------------------------------------------- local extras
def _ensure_inbox(cfg: LabConfig, client: _Clients, topic_arn: str,
                  progress: bool = True) -> str:
    """Create the SQS inbox queue and subscribe it to the alert topic (once); its URL."""
    sqs, sns = client("sqs"), client("sns")
    url = queue_names.create_queue(
        sqs, progress,
        QueueName=cfg.inbox_queue,
        Attributes={"MessageRetentionPeriod": "86400"},
        tags={TAG_KEY: cfg.prefix},
    )
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AlertTopicDelivers",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Protocol"] == "sqs" and s["Endpoint"] == queue_arn for s in subs):
        # Raw delivery off: the SNS envelope (with Subject and attributes) reaches the queue.
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                      Attributes={"RawMessageDelivery": "false"})
    return url


# ---------------------------------------------------------------- public API
def deploy(cfg: LabConfig, email: str | None = None, phone: str | None = None,
           progress: bool = True, stream_mode: str | None = None,
           shard_count: int | None = None) -> dict[str, str]:
    """Create the lab's stack, or update it if it exists; returns the stack outputs.

    email / phone: optional alert subscriptions (AWS delivers them; the emulator does not).
    On an update, None keeps the value the stack has and "" removes it.
    stream_mode: "PROVISIONED" (default, per shard-hour) or "ON_DEMAND" for the input stream;
    shard_count: its shards in provisioned mode (1-4). None keeps the stack's value.
    Deploying again with nothing changed is a success.
    """
    _validate_contacts(email, phone)
    if stream_mode is not None and stream_mode not in STREAM_MODES:
        raise StackError(f"Unknown stream mode {stream_mode!r}",
                         f"use one of {', '.join(STREAM_MODES)}.")
    if shard_count is not None and not 1 <= int(shard_count) <= 4:
        raise StackError(f"shard_count={shard_count} is out of range",
                         "use 1 to 4 shards (1 shard takes 1,000 records/s).")
    from . import credentials

    credentials.check(cfg)  # the account, region and permissions (nothing on the emulator)
    emulator.ensure_running(cfg)
    name = cfg.stack_name
    if _describe(_Clients(cfg)("cloudformation"), name) is None:
        # a new stack creates the queues: AWS refuses a name deleted < 60 s ago
        queue_names.wait_for_queue_names(cfg, progress)
    started = time.monotonic()
    try:
        client = _Clients(cfg)
        cf, s3 = client("cloudformation"), client("s3")
        existing = _describe(cf, name)
        if existing and existing["StackStatus"].endswith("_IN_PROGRESS"):
            if progress:
                log.info(f"Stack {name} is {existing['StackStatus']}; waiting for it to finish.")
            _wait(cfg, cf, name, _event_ids(cf, name), progress)
            existing = _describe(cf, name)
        if existing and existing["StackStatus"] in _NEEDS_DELETE:
            raise StackError(
                f"Stack {name} is in state {existing['StackStatus']} (an earlier deployment "
                "failed) and cannot be updated",
                _FIX_CLEANUP,
            )
        if existing is None and not cfg.world.emulator:  # names are global on AWS
            _check_bucket_names(cfg, s3)
        code = _upload_code(cfg, s3)
        request: dict[str, Any] = {
            "StackName": name,
            "TemplateBody": TEMPLATE_FILE.read_text(encoding="utf-8"),
            "Parameters": _parameters(cfg, code, email, phone, update=existing is not None,
                                      stream_mode=stream_mode, shard_count=shard_count,
                                      previous=frozenset(
                                          p["ParameterKey"]
                                          for p in (existing or {}).get("Parameters") or [])),
            "Capabilities": ["CAPABILITY_IAM"],
            "Tags": [{"Key": TAG_KEY, "Value": cfg.prefix}],
        }
        seen = _event_ids(cf, name) if existing else set()
        action = "Updating" if existing else "Creating"
        if progress:
            where = "the local emulator" if cfg.world.emulator else f"AWS ({cfg.region})"
            log.info(f"{action} stack {name} on {where} ...")
        try:
            if existing:
                cf.update_stack(**request)
            else:
                cf.create_stack(**request)
        except ClientError as err:
            if "No updates are to be performed" not in _error_text(err):
                raise StackError(
                    f"{action} stack {name} failed: {_error_text(err)}",
                    "fix the cause named above (template, parameters or permissions), then "
                    + _FIX_DEPLOY,
                ) from err
            if progress:
                log.info("  nothing to change: the stack is up to date.")
        status, events = _wait(cfg, cf, name, seen, progress)
        if status not in _OK:
            fix = _FIX_CLEANUP if status in _NEEDS_DELETE or status == "GONE" else (
                "fix the cause named above, then " + _FIX_DEPLOY)
            raise StackError(
                f"Stack {name} ended in {status}: {_failure_reason(events)}", fix)
        outs = _outputs_of(_describe(cf, name) or {})
        wanted = EXPECTED_OUTPUTS + (AWS_ONLY_OUTPUTS if cfg.world.full_template else ())
        missing = [k for k in wanted if k not in outs]
        if missing:
            raise StackError(
                f"Stack {name} has no output(s) {', '.join(missing)}",
                "check that cfn/clickstream.yaml defines them and that the resources they "
                "refer to were created, then " + _FIX_DEPLOY,
            )
        if not cfg.world.full_template:  # the emulator skips the template's subscriptions
            _ensure_inbox(cfg, client, outs["AlertTopicArn"], progress)
            if progress:
                log.info(f"  The emulator skips SNS subscriptions in templates, so the lab "
                         f"subscribed the SQS queue {cfg.inbox_queue} to the alert topic through "
                         f"the API: alerts arrive there (labhelpers.alerts.inbox).")
                if email or phone:
                    log.info("  E-mail and SMS are not delivered by the emulator; on AWS they are.")
    except (NoCredentialsError, BotoCoreError) as err:
        raise StackError(
            f"Could not reach CloudFormation for stack {name}: {err}",
            "check your AWS credentials (aws configure, or LAB_PROFILE) and region, "
            "or use the local backend.",
        ) from err
    if progress:
        log.info(f"Stack {name}: {status} in {time.monotonic() - started:.1f} s.")
    return outs


def outputs(cfg: LabConfig) -> dict[str, str]:
    """The outputs of the deployed stack as a dict; StackError if it is not deployed."""
    emulator.ensure_running(cfg)
    stack = _describe(cfg.client("cloudformation"), cfg.stack_name)
    if stack is None:
        raise StackError(f"The stack {cfg.stack_name} is not deployed", _FIX_DEPLOY)
    status = stack["StackStatus"]
    if status in _NEEDS_DELETE:
        raise StackError(f"The stack {cfg.stack_name} is in state {status}", _FIX_CLEANUP)
    if status in _NOT_READY:
        raise StackError(f"The stack {cfg.stack_name} is {status}",
                         "wait until deploy or cleanup has finished, then try again.")
    # UPDATE_ROLLBACK_COMPLETE and updates in progress still have the previous outputs.
    return _outputs_of(stack)


def _empty_bucket(s3, bucket: str) -> int:
    """Delete every object version, delete marker and unfinished upload; count of objects."""
    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(items), 1000):  # the API's batch limit
                s3.delete_objects(Bucket=bucket,
                                  Delete={"Objects": items[i:i + 1000], "Quiet": True})
            removed += len(items)
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    except ClientError as err:
        if _error_code(err) != "NoSuchBucket":
            raise
    return removed


def _delete_bucket(s3, bucket: str) -> bool:
    if not _bucket_exists(s3, bucket):
        return False
    _empty_bucket(s3, bucket)
    s3.delete_bucket(Bucket=bucket)
    return True


def _delete_inbox(cfg: LabConfig, client: _Clients) -> bool:
    sqs, sns = client("sqs"), client("sns")
    try:
        url = sqs.get_queue_url(QueueName=cfg.inbox_queue)["QueueUrl"]
    except ClientError:
        return False
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    for page in sns.get_paginator("list_subscriptions").paginate():
        for sub in page.get("Subscriptions", []):
            if sub.get("Endpoint") == queue_arn and sub["SubscriptionArn"].startswith("arn:"):
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    sqs.delete_queue(QueueUrl=url)
    return True


def delete(cfg: LabConfig, progress: bool = True) -> None:
    """Empty the lab's buckets, delete the stack, then the artifacts bucket and inbox queue.

    Deleting what is already gone is fine, so running it twice is harmless.
    """
    emulator.ensure_running(cfg)
    name = cfg.stack_name
    client = _Clients(cfg)
    cf, s3 = client("cloudformation"), client("s3")
    lab_buckets = [b for b in _lab_buckets(cfg) if _mine(cfg, b)]
    try:
        # CloudFormation cannot delete a bucket that still holds objects.
        for bucket in lab_buckets:
            n = _empty_bucket(s3, bucket)
            if progress and n:
                log.info(f"Emptied bucket {bucket} ({n} objects).")
        stack = _describe(cf, name)
        if stack is not None:
            seen = _event_ids(cf, name)
            if stack["StackStatus"].endswith("_IN_PROGRESS"):
                _wait(cfg, cf, name, seen, progress)
            if progress:
                log.info(f"Deleting stack {name} ...")
            status = "DELETE_FAILED"
            for _attempt in range(2):
                cf.delete_stack(StackName=name)
                status, events = _wait(cfg, cf, name, seen, progress)
                if status == "GONE":
                    break
                # Something wrote to a bucket meanwhile (a running app): empty again, retry.
                for bucket in lab_buckets:
                    _empty_bucket(s3, bucket)
            if status != "GONE":
                raise StackError(f"Deleting stack {name} ended in {status}: "
                                 f"{_failure_reason(events)}",
                                 "stop whatever still writes to the lab (the analytics app), "
                                 "then run `python -m labhelpers cleanup` again.")
            queue_names.note_deleted(cfg, queue_names.names(cfg))
            if progress:
                log.info(f"Stack {name} deleted.")
        elif progress:
            log.info(f"Stack {name} does not exist (already deleted).")
        # The emulator reports DELETE_COMPLETE but keeps buckets it could not delete; AWS
        # leaves them too if they filled up again: delete what is left, then our extras.
        for bucket in [*lab_buckets, cfg.artifacts_bucket]:
            if _mine(cfg, bucket) and _delete_bucket(s3, bucket) and progress:
                log.info(f"Deleted bucket {bucket}.")
        if _delete_inbox(cfg, client):
            queue_names.note_deleted(cfg, [cfg.inbox_queue])
            if progress:
                log.info(f"Deleted queue {cfg.inbox_queue}.")
    except (NoCredentialsError, BotoCoreError) as err:
        raise StackError(f"Could not reach AWS to delete stack {name}: {err}",
                         "check your credentials and region, then run the cleanup again.") from err
