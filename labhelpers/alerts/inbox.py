"""The alert inbox: the SQS queue subscribed to the alert topic, read by the notebooks.

On the local emulator it stands in for e-mail and SMS; on AWS the template creates it next
to the optional e-mail/SMS subscriptions, so the notebooks read alerts the same way on both.
Received messages are kept in ``<lab_dir>/inbox.jsonl`` before they leave the queue.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..errors import AlertError
from ..infra import emulator
from ..infra.config import LabConfig

INBOX_FILE = "inbox.jsonl"


def inbox_file(cfg: LabConfig) -> Path:
    """Where received alert messages are kept (JSON lines)."""
    return cfg.lab_dir / INBOX_FILE


def parse_message(msg: dict[str, Any]) -> dict[str, Any]:
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


def queue_url(cfg: LabConfig, sqs) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=cfg.inbox_queue)["QueueUrl"]
    except ClientError as err:
        if cfg.world.full_template:
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
    url = queue_url(cfg, sqs)
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
        parsed = [parse_message(m) for m in messages]
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
