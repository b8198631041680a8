"""The aws backend: Kinesis Data Streams, Managed Service for Apache Flink, the alert
Lambda with its event source mapping, SNS. Against the emulator (the rehearsal without an
account, ``cfg.emulated``) the same calls go to moto; only the managed service and Lambda,
which moto cannot run, are stood in for on this machine."""

from __future__ import annotations

from typing import Any

from ..analytics import managed
from ..errors import AppError
from ..stream.kinesis import read_stream
from .base import Backend


class AwsBackend(Backend):
    """The lab in an AWS account (or rehearsed against the local emulator)."""

    name = "aws"

    @property
    def runs_emulator(self) -> bool:  # type: ignore[override]
        return bool(self.cfg.emulated)

    def input_sink(self, failure_log=None):
        from ..generate.sinks import KinesisSink

        return KinesisSink(self.cfg, failure_log=failure_log)

    def start_app(self, params=None, *, fresh: bool = False, zip_path=None,
                  **changes: Any) -> dict[str, Any]:
        """Create or update the managed application with these parameters and start it
        (the package must be built: ``python -m labhelpers package``)."""
        from ..analytics.params import JobParams

        if self.cfg.emulated:
            raise AppError("The managed service cannot run on the emulator",
                           "rehearse with `python -m labhelpers run-lab --backend aws "
                           "--emulator`, which runs the packaged app on the local mini-cluster.")
        return managed.deploy(self.cfg, zip_path, JobParams.of(params, **changes))

    def stop_app(self) -> bool:
        return managed.stop(self.cfg)

    def app_running(self) -> bool:
        return managed.status(self.cfg).get("status") == "RUNNING"

    def app_status(self) -> dict[str, Any]:
        return {**super().app_status(), "application": managed.status(self.cfg)}

    def app_logs(self, lines: int = 40) -> str:
        return "\n".join(managed.failure_logs(self.cfg)[-lines:])

    def app_params(self):
        return managed.current_params(self.cfg)

    def score_lines(self) -> list[str]:
        return read_stream(self.cfg, self.cfg.scores_stream)

    def dead_letter_lines(self) -> list[str]:
        return read_stream(self.cfg, self.cfg.dead_letter_stream)

    def input_lines(self, n: int) -> list[str]:
        return read_stream(self.cfg, self.cfg.input_stream, since_s=60, limit=n)

    def app_hops(self, outs: dict[str, str]) -> list[dict[str, str]]:
        cfg = self.cfg
        try:
            state = managed.status(cfg).get("status") or "not created"
        except Exception as err:  # shown in the table, never fatal
            state = f"unknown ({err})"
        app_state = f"application {state}"
        return [
            {"from": f"input stream {outs.get('InputStreamName', cfg.input_stream)}",
             "to": "analytics app", "how": "Kinesis source connector (table click_records)",
             "state": app_state},
            {"from": "analytics app",
             "to": f"scores stream {outs.get('ScoresStreamName', cfg.scores_stream)}",
             "how": "Kinesis sink connector (table scores)", "state": app_state},
            {"from": "analytics app",
             "to": f"dead-letter stream {outs.get('DeadLetterStreamName', '')}",
             "how": "Kinesis sink connector (table dead_letters)", "state": app_state},
        ]

    def delete_app(self) -> bool | None:
        # billed per KPU-hour while it exists and runs: deleted first
        return managed.delete(self.cfg)
