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

# The lab's start positions as the Kinesis source names them.
KINESIS_POSITIONS = {"latest": "LATEST", "earliest": "TRIM_HORIZON"}


class AwsBackend(Backend):
    """The lab in an AWS account (or rehearsed against the local emulator)."""

    name = "aws"

    @property
    def runs_emulator(self) -> bool:  # type: ignore[override]
        return bool(self.cfg.emulated)

    def input_sink(self, failure_log=None):
        from ..generate.sinks import KinesisSink

        return KinesisSink(self.cfg, failure_log=failure_log)

    def start_app(self, params=None, *, fresh: bool = False, start_position: str = "latest",
                  zip_path=None, **changes: Any) -> dict[str, Any]:
        """Create or update the managed application with these parameters and start it (the
        package is built first if there is none: ``python -m labhelpers package``). Against
        the emulator the packaged app runs on the local mini-cluster (Kinesis through the
        real connector) and a local runner applies the alert function's event source
        mapping: the two things the emulator cannot run."""
        from ..analytics import packaging
        from ..job.params import JobParams

        params = JobParams.of(params, **changes)
        if start_position not in KINESIS_POSITIONS:
            raise AppError(f"start_position={start_position!r} is not a start position",
                           f"use one of {', '.join(KINESIS_POSITIONS)}.")
        position = KINESIS_POSITIONS[start_position]
        if zip_path is None:
            zip_path = packaging.DIST_DIR / packaging.ZIP_NAME
            if not zip_path.exists():
                print("Building the application package (Maven + pip, once) ...")
                zip_path = packaging.package()
        if self.cfg.emulated:
            from ..alerts import esm_runner

            # Lambda cannot run on the emulator: a local runner applies its event source
            # mapping (started first: the alert trigger is there before the app's scores)
            esm_runner.start(self.cfg, endpoint=self.cfg.endpoint_url)
        return managed.deploy(self.cfg, zip_path, params, start_position=position, fresh=fresh,
                              **self.service())

    # ---- issue 25: on the emulator the managed service is answered by the stand-in service
    # (labhelpers.analytics.managed_service: states with delays, snapshots, the packaged app
    # on the local mini-cluster), so every call below runs the same code as on AWS.
    def service(self) -> dict[str, Any]:
        """The managed-service client and poll interval: the stand-in service on the emulator,
        boto3's client (the default) on AWS."""
        if not self.cfg.emulated:
            return {}
        from ..analytics.managed_service import StandinKda

        return {"kda": StandinKda(self.cfg, endpoint=self.cfg.endpoint_url), "poll": 1.0}

    def stop_app(self) -> bool:
        if self.cfg.emulated:
            from ..alerts import esm_runner

            esm_runner.stop(self.cfg)
        return managed.stop(self.cfg, **self.service())

    def app_running(self) -> bool:
        kda = self.service().get("kda")
        return managed.status(self.cfg, kda=kda).get("status") in ("RUNNING", "AUTOSCALING")

    def app_status(self) -> dict[str, Any]:
        kda = self.service().get("kda")
        return {**super().app_status(), "application": managed.status(self.cfg, kda=kda)}

    def app_logs(self, lines: int = 40) -> str:
        if not self.cfg.emulated:
            return "\n".join(managed.failure_logs(self.cfg)[-lines:])
        from ..analytics import managed_standin

        return managed_standin.logs(self.cfg, lines)

    def app_params(self):
        return managed.current_params(self.cfg, kda=self.service().get("kda"))

    def score_lines(self) -> list[str]:
        return read_stream(self.cfg, self.cfg.scores_stream)

    def dead_letter_lines(self) -> list[str]:
        return read_stream(self.cfg, self.cfg.dead_letter_stream)

    def input_lines(self, n: int | None) -> list[str]:
        if n is None:
            return read_stream(self.cfg, self.cfg.input_stream)
        return read_stream(self.cfg, self.cfg.input_stream, since_s=60, limit=n)

    def app_hops(self, outs: dict[str, str]) -> list[dict[str, str]]:
        cfg = self.cfg
        try:
            state = managed.status(cfg, kda=self.service().get("kda")).get("status") \
                or "not created"
            state += " (stand-in)" if cfg.emulated else ""
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
        if self.cfg.emulated:
            from ..alerts import esm_runner

            esm_runner.stop(self.cfg)
        # billed per KPU-hour while it exists: deleted first, waited for until it is gone
        return managed.delete(self.cfg, **self.service())
