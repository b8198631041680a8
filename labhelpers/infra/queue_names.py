"""Queue names SQS still refuses: a name is refused for 60 s after a queue of that name was
deleted (QueueDeletedRecently). A quick re-deploy after clean-up meets it; on AWS a stack that
creates the queue then fails and rolls back. Clean-up notes when it deleted the lab's queues
(in the lab home, which clean-up keeps); deploy waits out the rest of the 60 s, saying so, and
a queue made through the API is tried again while refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..errors import aws_error_code
from ..logs import logger
from .config import LabConfig

log = logger(__name__)

# SQS refuses a queue name for 60 s after a queue of that name was deleted
# (QueueDeletedRecently); on AWS a stack creating it then fails and rolls back.
QUEUE_NAME_REUSE_S = 60.0
DELETED_QUEUES_FILE = "deleted-queues.json"


def names(cfg: LabConfig) -> list[str]:
    """The lab's queue names: the inbox and the alert function's failure queue."""
    return [cfg.inbox_queue, f"{cfg.prefix}-alert-failures"]


def _deleted_queues_file(cfg: LabConfig) -> Path:
    # in the lab home, not the prefix's folder: clean-up removes that folder
    return Path(cfg.home) / DELETED_QUEUES_FILE


def note_deleted(cfg: LabConfig, deleted: Iterable[str]) -> None:
    """Remember that these queue names were deleted now (for wait_for_queue_names)."""
    path = _deleted_queues_file(cfg)
    try:
        seen = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        seen = {}
    now = time.time()
    seen = {k: t for k, t in seen.items() if now - t < QUEUE_NAME_REUSE_S}
    seen.update({f"{cfg.region}/{n}": now for n in deleted})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen))


def wait_for_queue_names(cfg: LabConfig, progress: bool = True,
                         sleep=time.sleep) -> float:
    """Wait until SQS takes the lab's queue names again (60 s after this machine deleted
    them), saying so; the seconds waited."""
    path = _deleted_queues_file(cfg)
    try:
        seen = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return 0.0
    last = max((seen.get(f"{cfg.region}/{n}", 0.0) for n in names(cfg)), default=0.0)
    wait = last + QUEUE_NAME_REUSE_S + 1 - time.time()
    if wait <= 0:
        return 0.0
    if progress:
        log.info(f"The queue names {', '.join(names(cfg))} were deleted "
                 f"{time.time() - last:.0f} s ago and SQS refuses a name for 60 s after its "
                 f"deletion: waiting {wait:.0f} s before deploying ...")
    sleep(wait)
    return wait


def create_queue(sqs, progress: bool, **kwargs: Any) -> str:
    """sqs.create_queue(**kwargs)'s URL, waiting while SQS still refuses the name (deleted
    less than 60 s ago)."""
    deadline = time.monotonic() + QUEUE_NAME_REUSE_S + 15
    said = False
    while True:
        try:
            return sqs.create_queue(**kwargs)["QueueUrl"]
        except ClientError as err:
            code = aws_error_code(err)
            if "QueueDeletedRecently" not in code or time.monotonic() > deadline:
                raise
            if progress and not said:
                log.info(f"SQS refuses the queue name {kwargs['QueueName']} for 60 s after it "
                         "was deleted (QueueDeletedRecently): trying again every 5 s ...")
                said = True
            time.sleep(5)
