"""The local backend: stream logs on disk, the app on Flink's mini-cluster in a background
process, the alert handler called by a local poller, AWS APIs from the local emulator."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..analytics import runner
from ..logs import logger
from ..stream.log import read_all_lines, tail_lines
from .base import Backend

log = logger(__name__)


class LocalBackend(Backend):
    """Everything on this machine, no account."""

    name = "local"
    runs_emulator = True

    def input_sink(self, failure_log=None):
        from ..generate.sinks import StreamLogSink

        return StreamLogSink(self.cfg)

    def archive(self, sink):
        """Copy each batch into the emulator's raw bucket, as Firehose does on AWS (only
        when the stack exists: the stream works without the archive)."""
        from ..infra.stack import outputs

        try:
            bucket = outputs(self.cfg)["RawBucketName"]
        except Exception as err:  # no stack yet
            log.info(f"raw archive off: {err}")
            return sink
        return RawArchiveSink(sink, self.cfg.client("s3"), bucket)

    def start_app(self, params=None, *, fresh: bool = False, start_position: str = "latest",
                  alerts: bool = True, **changes: Any) -> dict[str, Any]:
        """Start the app in a background process (``alerts``: with the local poller that
        stands in for the alert Lambda's trigger); "latest" starts at the next window
        boundary, so the first window is complete."""
        return runner.start(self.cfg, params, fresh=fresh, alerts=alerts,
                            start_position=start_position, **changes)

    def stop_app(self) -> bool:
        return runner.stop(self.cfg)

    def app_running(self) -> bool:
        return bool(runner.status(self.cfg)["running"])

    def app_status(self) -> dict[str, Any]:
        return {**super().app_status(), **runner.status(self.cfg)}

    def app_logs(self, lines: int = 40) -> str:
        return runner.logs(self.cfg, lines)

    def app_params(self):
        return runner.settings(self.cfg).params

    def warm_up_windows(self) -> dict[str, int]:
        return runner.warm_up_windows(self.cfg)

    def warm_up_rows(self) -> list[dict]:
        return runner.warm_up_rows(self.cfg)

    def score_lines(self) -> list[str]:
        return read_all_lines(self.cfg.stream_dir(self.cfg.scores_stream))

    def dead_letter_lines(self) -> list[str]:
        return read_all_lines(self.cfg.stream_dir(self.cfg.dead_letter_stream))

    def input_lines(self, n: int | None) -> list[str]:
        stream = self.cfg.stream_dir(self.cfg.input_stream)
        return read_all_lines(stream) if n is None else tail_lines(stream, n)

    def delete_app(self) -> bool | None:
        return runner.stop(self.cfg)

    def app_hops(self, outs: dict[str, str]) -> list[dict[str, str]]:
        cfg = self.cfg
        app_state = "app running" if self.app_running() else "app not running"
        home = cfg.lab_dir
        return [
            {"from": f"input stream {cfg.input_stream}", "to": "analytics app",
             "how": f"Flink filesystem source, new files every second "
                    f"({cfg.stream_dir(cfg.input_stream).relative_to(home)}/)",
             "state": app_state},
            {"from": "analytics app", "to": f"scores stream {cfg.scores_stream}",
             "how": "Flink filesystem sink (table scores)",
             "state": f"{app_state}; {len(self.score_lines())} rows"},
            {"from": "analytics app", "to": f"dead-letter stream {cfg.dead_letter_stream}",
             "how": "Flink filesystem sink (table dead_letters)",
             "state": f"{app_state}; {len(self.dead_letter_lines())} rows"},
        ]


class RawArchiveSink:
    """Wraps a sink and copies each batch, gzipped, into the raw bucket (best effort:
    an archive failure is counted and shown, it never stops the traffic)."""

    def __init__(self, inner: Any, s3, bucket: str) -> None:
        self.inner, self.s3, self.bucket = inner, s3, bucket
        self.archived = 0
        self.archive_errors = 0
        self.last_archive_error: str | None = None

    @property
    def stats(self):
        return self.inner.stats

    def capacity(self):
        """What the wrapped sink can take."""
        fn = getattr(self.inner, "capacity", None)
        return fn() if callable(fn) else None

    def send(self, lines: Sequence[str], keys: Sequence[str] | None = None) -> None:
        self.inner.send(lines, keys)
        if not lines:
            return
        now = datetime.now(UTC)
        key = f"weblogs/raw/{now:%Y/%m/%d/%H}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl.gz"
        try:
            body = gzip.compress("".join(f"{ln}\n" for ln in lines).encode())
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            self.archived += 1
        except Exception as err:  # the stream is the source of truth; the archive is a copy
            self.archive_errors += 1
            self.last_archive_error = str(err)
