"""How the lab's pieces are wired together, read from the live services.

``subscriptions`` lists who receives the alert topic's messages and whether each subscription
is confirmed (an e-mail subscription on AWS sends nothing until its link is clicked);
``sms_sandbox`` says whether the account may text only verified numbers; ``destinations``
follows a record from the input stream to your inbox, one hop per row: the app's input and
outputs, the event source mapping from the scores stream to the alert function, the
function's topic and bucket, and the topic's subscriptions.

E-mail addresses and phone numbers are shown masked (first character and length).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from ..backends import for_config
from ..errors import aws_error_text as _error_text
from ..infra import emulator, stack
from ..infra.config import LabConfig

SUBSCRIPTION_COLUMNS = ("protocol", "endpoint", "state", "raw_delivery", "what")
DESTINATION_COLUMNS = ("from", "to", "how", "state")
PENDING = "pending confirmation"
CONFIRMED = "confirmed"

_WHAT = {
    "sqs": "the lab's inbox queue (the local stand-in for e-mail/SMS): alerts.inbox(cfg)",
    "email": "e-mail: AWS sends 'AWS Notification - Subscription Confirmation'; click its link",
    "email-json": "e-mail (JSON): confirm with the link AWS sends",
    "sms": "SMS: no confirmation, but a new account is in the SMS sandbox (verify the number)",
    "lambda": "a Lambda function",
    "https": "an HTTPS endpoint (must confirm by answering the subscription request)",
    "http": "an HTTP endpoint (must confirm by answering the subscription request)",
}


def _endpoint(protocol: str, endpoint: str) -> str:
    if protocol in ("email", "email-json", "sms"):
        return stack.mask_contact(endpoint)
    if endpoint.startswith("arn:"):
        return endpoint.rsplit(":", 1)[-1]
    return endpoint


def styled(df: pd.DataFrame):
    """The table for a notebook: left-aligned, no index, every text in full."""
    left = [("text-align", "left"), ("vertical-align", "top")]
    return (df.style.hide(axis="index").set_properties(**dict(left))
            .set_table_styles([{"selector": "th", "props": left}]))


def subscription_state(arn: str, attributes: dict[str, str] | None) -> str:
    """``confirmed`` or ``pending confirmation``, from the ARN and the attributes.

    AWS lists an unconfirmed subscription with the ARN ``PendingConfirmation`` (older API
    answers) or with ``PendingConfirmation`` = ``"true"`` in its attributes.
    """
    if not arn.startswith("arn:"):
        return PENDING if arn == "PendingConfirmation" else arn.lower()
    if (attributes or {}).get("PendingConfirmation") == "true":
        return PENDING
    return CONFIRMED


def subscriptions(cfg: LabConfig, topic_arn: str | None = None) -> pd.DataFrame:
    """The alert topic's subscriptions: protocol, endpoint (masked), state, raw delivery, what.

    On the local backend the emulator skips the template's e-mail/SMS subscriptions, so the
    one row is the SQS inbox queue the lab subscribed through the API (always confirmed).
    """
    emulator.ensure_running(cfg)
    topic_arn = topic_arn or stack.outputs(cfg)["AlertTopicArn"]
    sns = cfg.client("sns")
    rows: list[dict[str, Any]] = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            arn, protocol = sub["SubscriptionArn"], sub.get("Protocol", "")
            attributes: dict[str, str] = {}
            if arn.startswith("arn:"):
                try:
                    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)[
                        "Attributes"]
                except (ClientError, BotoCoreError):
                    attributes = {}
            rows.append({
                "protocol": protocol,
                "endpoint": _endpoint(protocol, sub.get("Endpoint", "")),
                "state": subscription_state(arn, attributes),
                "raw_delivery": attributes.get("RawMessageDelivery", "false") == "true",
                "what": _WHAT.get(protocol, protocol),
            })
    return pd.DataFrame(rows, columns=list(SUBSCRIPTION_COLUMNS))


def sms_sandbox(cfg: LabConfig) -> dict[str, Any]:
    """Whether the account's SMS are in the sandbox, and its verified numbers (masked).

    Local backend: there is no SMS, so the answer says so. If the API cannot be read (no
    permission, or the emulator lacks it) ``in_sandbox`` is None and ``note`` says why.
    """
    if not cfg.world.full_template:  # no SMS from the emulator
        return {"in_sandbox": None, "verified_numbers": [],
                "note": "on the local emulator no SMS is sent; alerts go to the inbox queue"}
    sns = cfg.client("sns")
    try:
        in_sandbox = bool(sns.get_sms_sandbox_account_status()["IsInSandbox"])
    except (ClientError, BotoCoreError) as err:
        return {"in_sandbox": None, "verified_numbers": [],
                "note": f"could not read the SMS sandbox status ({_error_text(err)})"}
    numbers: list[dict[str, str]] = []
    try:
        for item in sns.list_sms_sandbox_phone_numbers().get("PhoneNumbers", []):
            numbers.append({"number": stack.mask_contact(item.get("PhoneNumber", "")),
                            "status": item.get("Status", "")})
    except (ClientError, BotoCoreError):
        pass
    note = ("in the SMS sandbox: texts reach only the verified numbers listed"
            if in_sandbox else "out of the SMS sandbox: texts reach any number")
    return {"in_sandbox": in_sandbox, "verified_numbers": numbers, "note": note}


def destinations(cfg: LabConfig) -> pd.DataFrame:
    """Every hop from the input stream to the subscribers, with its state, one per row."""
    emulator.ensure_running(cfg)
    outs = stack.outputs(cfg)
    rows = for_config(cfg).app_hops(outs)
    function = outs["AlertFunctionName"]
    lam = cfg.client("lambda")
    try:
        mappings = lam.list_event_source_mappings(FunctionName=function).get(
            "EventSourceMappings", [])
    except (ClientError, BotoCoreError) as err:
        mappings = []
        rows.append({"from": "scores stream", "to": f"alert function {function}",
                     "how": "event source mapping", "state": f"unreadable: {_error_text(err)}"})
    for m in mappings:
        on_failure = (m.get("DestinationConfig") or {}).get("OnFailure", {}).get(
            "Destination", "")
        how = (f"event source mapping: batches of {m.get('BatchSize')}, from "
               f"{m.get('StartingPosition')}, {m.get('MaximumRetryAttempts')} retries, "
               f"failed batches to {on_failure.rsplit(':', 1)[-1] or 'nowhere'}")
        state = m.get("State", "")
        if not cfg.world.cloud_runs_code:
            how += ("; the emulator does not run Lambda code, so a local runner calls the "
                    "same handler")
        rows.append({"from": f"scores stream {m.get('EventSourceArn', '').rsplit('/', 1)[-1]}",
                     "to": f"alert function {function}", "how": how, "state": state})
    try:
        env = lam.get_function_configuration(FunctionName=function).get(
            "Environment", {}).get("Variables", {})
    except (ClientError, BotoCoreError) as err:
        env = {}
        rows.append({"from": f"alert function {function}", "to": "?", "how": "environment",
                     "state": f"unreadable: {_error_text(err)}"})
    if env:
        rows.append({"from": f"alert function {function}",
                     "to": f"SNS topic {env.get('TOPIC_ARN', '').rsplit(':', 1)[-1]}",
                     "how": "sns.Publish, once per anomaly episode (TOPIC_ARN)",
                     "state": "configured" if env.get("TOPIC_ARN") == outs["AlertTopicArn"]
                     else "points elsewhere!"})
        rows.append({"from": f"alert function {function}",
                     "to": f"bucket {env.get('PROCESSED_BUCKET', '')}",
                     "how": "a CSV per anomalous window (anomalies/), the episode claim "
                            "(alerts/) (PROCESSED_BUCKET)",
                     "state": "configured"
                     if env.get("PROCESSED_BUCKET") == outs["ProcessedBucketName"]
                     else "points elsewhere!"})
    topic = outs["AlertTopicArn"].rsplit(":", 1)[-1]
    for sub in subscriptions(cfg, outs["AlertTopicArn"]).to_dict("records"):
        rows.append({"from": f"SNS topic {topic}", "to": f"{sub['protocol']} {sub['endpoint']}",
                     "how": "subscription", "state": sub["state"]})
    return pd.DataFrame(rows, columns=list(DESTINATION_COLUMNS))
