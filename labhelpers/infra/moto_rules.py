"""The local emulator with the limits a real account enforces: the moto server behind a small
WSGI layer that refuses what AWS refuses, so the lab's handling of each is exercised locally.

- **Kinesis GetRecords**: at most ``GET_RECORDS_PER_SECOND`` (5) calls a second per shard,
  counted over every reader (the app's connector, the alert trigger, the notebooks); the
  sixth is refused with ProvisionedThroughputExceededException, as AWS does.
- **Kinesis GetShardIterator AT_TIMESTAMP** in the future: refused with
  InvalidArgumentException (moto would answer with an iterator that reads nothing).
- **SQS CreateQueue** of a name deleted less than ``QUEUE_NAME_REUSE_S`` (60) seconds ago:
  refused with QueueDeletedRecently.

Run as ``python -m labhelpers.infra.moto_rules -H HOST -p PORT [--services LIST|all]`` (what
``labhelpers.infra.emulator`` starts): only the services the lab uses are loaded
(``labhelpers.infra.emulator_services``). ``LAB_EMULATOR_RULES=off`` serves plain moto.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import threading
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import parse_qs

GET_RECORDS_PER_SECOND = 5
FUTURE_TOLERANCE_S = 1.0  # clocks of one machine: anything later than this is "the future"
QUEUE_NAME_REUSE_S = 60.0


class Rules:
    """The state the rules need (calls per shard, deleted queue names), shared by threads."""

    def __init__(self, clock=time.monotonic, wall=time.time) -> None:
        self.clock, self.wall = clock, wall
        self.lock = threading.Lock()
        self.calls: dict[str, deque[float]] = defaultdict(deque)
        self.deleted: dict[str, float] = {}

    def get_records(self, body: dict[str, Any]) -> tuple[str, str] | None:
        """None if the call may go on, else (error type, message)."""
        try:
            stream, shard = base64.decodebytes(
                str(body.get("ShardIterator", "")).encode()).decode().split(":")[:2]
        except (ValueError, UnicodeDecodeError):
            return None  # moto answers a malformed iterator itself
        now = self.clock()
        with self.lock:
            seen = self.calls[f"{stream}/{shard}"]
            while seen and now - seen[0] >= 1.0:
                seen.popleft()
            if len(seen) >= GET_RECORDS_PER_SECOND:
                return ("ProvisionedThroughputExceededException",
                        f"Rate exceeded for shard {shard} in stream {stream} under account "
                        f"123456789012.")
            seen.append(now)
        return None

    def get_shard_iterator(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if body.get("ShardIteratorType") != "AT_TIMESTAMP":
            return None
        try:
            stamp = float(body.get("Timestamp"))
        except (TypeError, ValueError):
            return None
        now = self.wall()
        if stamp > now + FUTURE_TOLERANCE_S:
            return ("InvalidArgumentException",
                    f"The timestampInMillis parameter cannot be greater than the "
                    f"currentTimestampInMillis. timestampInMillis: {int(stamp * 1000)}, "
                    f"currentTimestampInMillis: {int(now * 1000)}")
        return None

    def create_queue(self, name: str) -> tuple[str, str] | None:
        with self.lock:
            gone = self.deleted.get(name)
        if gone is not None and self.clock() - gone < QUEUE_NAME_REUSE_S:
            return ("QueueDeletedRecently",
                    "You must wait 60 seconds after deleting a queue before you can create "
                    "another with the same name.")
        return None

    def delete_queue(self, url: str) -> None:
        with self.lock:
            self.deleted[url.rstrip("/").rsplit("/", 1)[-1]] = self.clock()


def _sqs_params(environ: dict[str, Any], raw: bytes, target: str) -> tuple[str, dict]:
    """(action, parameters) of an SQS request in the JSON or the query protocol."""
    if target.startswith("AmazonSQS."):
        return target.split(".", 1)[1], json.loads(raw or b"{}")
    form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    params = {**query, **form}
    return params.get("Action", ""), params


class RulesMiddleware:
    """WSGI: look at each request, refuse it as AWS would, else hand it to moto."""

    def __init__(self, app, rules: Rules | None = None) -> None:
        self.app, self.rules = app, rules or Rules()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        refused = None
        try:
            refused = self._check(environ, target, raw)
        except (ValueError, UnicodeDecodeError):
            refused = None  # not ours to judge: moto answers
        if refused is None:
            return self.app(environ, start_response)
        kind, message = refused
        # one line per refusal in the emulator's log: how often the lab met each limit
        print(f"moto_rules: refused {target or 'SQS CreateQueue'}: {kind}", file=sys.stderr,
              flush=True)
        if kind == "QueueDeletedRecently":
            body = {"__type": f"com.amazonaws.sqs#{kind}", "message": message}
            headers = [("Content-Type", "application/x-amz-json-1.0"),
                       ("x-amzn-query-error",
                        "AWS.SimpleQueueService.QueueDeletedRecently;Sender")]
        else:
            body = {"__type": kind, "message": message}
            headers = [("Content-Type", "application/x-amz-json-1.1")]
        data = json.dumps(body).encode()
        start_response("400 Bad Request", [*headers, ("Content-Length", str(len(data)))])
        return [data]

    def _check(self, environ, target: str, raw: bytes) -> tuple[str, str] | None:
        if target.startswith("Kinesis_"):
            op = target.split(".", 1)[1]
            if op == "GetRecords":
                return self.rules.get_records(json.loads(raw or b"{}"))
            if op == "GetShardIterator":
                return self.rules.get_shard_iterator(json.loads(raw or b"{}"))
            return None
        is_sqs = target.startswith("AmazonSQS.") or b"Action=CreateQueue" in raw \
            or b"Action=DeleteQueue" in raw
        if not is_sqs:
            return None
        action, params = _sqs_params(environ, raw, target)
        if action == "CreateQueue":
            return self.rules.create_queue(str(params.get("QueueName", "")))
        if action == "DeleteQueue":
            self.rules.delete_queue(str(params.get("QueueUrl", "")))
        return None


def main(argv: list[str] | None = None) -> None:
    """Serve moto on HOST:PORT with the rules in front (off with LAB_EMULATOR_RULES=off),
    loading only ``--services`` (default: the lab's list; "all": every service)."""
    from . import emulator_services

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--services", default="",
                        help="comma-separated services to serve, or 'all' (default: the lab's)")
    args = parser.parse_args(argv)
    services = emulator_services.selected(args.services)
    emulator_services.restrict(services)  # before moto is imported
    from moto.moto_server.werkzeug_app import (  # moto's own server pieces
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(args.port))
    app: Any = DomainDispatcherApplication(
        emulator_services.ServiceGate(create_backend_app, services))
    if os.environ.get("LAB_EMULATOR_RULES", "on").lower() not in ("off", "0", "false"):
        app = RulesMiddleware(app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
