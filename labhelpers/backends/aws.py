"""The aws backend: Kinesis Data Streams, Managed Service for Apache Flink, the alert
Lambda with its event source mapping, SNS, in an AWS account (``AwsBackend``); and its
rehearsal against the emulator, a backend of its own (``EmulatedAwsBackend``)."""

from __future__ import annotations

from typing import Any

from ..analytics import managed
from ..errors import AppError
from ..logs import logger
from ..stream.kinesis import read_stream
from .base import Backend

log = logger(__name__)

# The lab's start positions as the Kinesis source names them.
KINESIS_POSITIONS = {"latest": "LATEST", "earliest": "TRIM_HORIZON"}


class AwsBackend(Backend):
    """The lab in an AWS account."""

    name = "aws"

    runs_emulator = False

    def input_sink(self, failure_log=None):
        from ..generate.sinks import KinesisSink

        return KinesisSink(self.cfg, failure_log=failure_log)

    def start_app(self, params=None, *, fresh: bool = False, start_position: str = "latest",
                  zip_path=None, **changes: Any) -> dict[str, Any]:
        """Create or update the managed application with these parameters and start it (the
        package is built first if there is none: ``python -m labhelpers package``)."""
        from ..analytics import packaging
        from ..job.params import JobParams

        params = JobParams.of(params, **changes)
        if start_position == "warm":
            # the warm-up before a report position (the job's report_from_ms) is set by the
            # local runner only; the managed application is started without it
            log.info("start_position 'warm' is not available on the aws backend: "
                     "starting from 'latest' (LATEST); the forest learns from the windows "
                     "that arrive from now on.")
            start_position = "latest"
        if start_position not in KINESIS_POSITIONS:
            raise AppError(f"start_position={start_position!r} is not a start position",
                           f"use one of {', '.join(KINESIS_POSITIONS)}.")
        position = KINESIS_POSITIONS[start_position]
        if zip_path is None:
            zip_path = packaging.DIST_DIR / packaging.ZIP_NAME
            if not zip_path.exists():
                log.info("Building the application package (Maven + pip, once) ...")
                zip_path = packaging.package()
        return self._start(zip_path, params, position, fresh)

    def _start(self, zip_path, params, position: str, fresh: bool) -> dict[str, Any]:
        """Deploy the package and start it (``position``: the Kinesis source's name): with
        unchanged parameters from the latest snapshot, with changed ones fresh (it says so)."""
        return managed.deploy(self.cfg, zip_path, params, start_position=position, fresh=fresh,
                              **self.service())

    def service(self) -> dict[str, Any]:
        """The managed-service client and poll interval handed to ``analytics.managed``:
        boto3's own client here (the default)."""
        return {}

    def stop_app(self) -> bool:
        return managed.stop(self.cfg, **self.service())

    def app_running(self) -> bool:
        kda = self.service().get("kda")
        return managed.status(self.cfg, kda=kda).get("status") in ("RUNNING", "AUTOSCALING")

    def app_status(self) -> dict[str, Any]:
        kda = self.service().get("kda")
        return {**super().app_status(), "application": managed.status(self.cfg, kda=kda)}

    def app_logs(self, lines: int = 40) -> str:
        return "\n".join(managed.failure_logs(self.cfg)[-lines:])

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
            state = self._app_state()
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

    def _app_state(self) -> str:
        return managed.status(self.cfg, kda=self.service().get("kda")).get("status") \
            or "not created"

    def delete_app(self) -> bool | None:
        # billed per KPU-hour while it exists: deleted first, waited for until it is gone
        return managed.delete(self.cfg, **self.service())


class EmulatedAwsBackend(AwsBackend):
    """The aws backend rehearsed against the local emulator, without an account
    (``run-lab --backend aws --emulator``, ``LAB_EMULATED=1``): the same Kinesis streams,
    stack, SNS and SQS calls go to moto; the two things moto cannot run stand in on this
    machine: the managed service (a stand-in client that answers like the service, with its
    states, delays and snapshots, running the packaged zip on the local mini-cluster with
    Kinesis through the real connector) and the alert Lambda's event source mapping (a local
    runner). Every managed-service call runs the same code as on AWS."""

    runs_emulator = True

    def service(self) -> dict[str, Any]:
        from ..analytics.managed_service import StandinKda

        return {"kda": StandinKda(self.cfg, endpoint=self.cfg.endpoint_url), "poll": 1.0}

    def _start(self, zip_path, params, position: str, fresh: bool) -> dict[str, Any]:
        from ..alerts import esm_runner

        # Lambda cannot run on the emulator: a local runner applies its event source mapping
        # (started first: the alert trigger is there before the app's scores)
        esm_runner.start(self.cfg, endpoint=self.cfg.endpoint_url)
        return super()._start(zip_path, params, position, fresh)

    def stop_app(self) -> bool:
        from ..alerts import esm_runner

        esm_runner.stop(self.cfg)
        return super().stop_app()

    def app_logs(self, lines: int = 40) -> str:
        from ..analytics import managed_standin

        return managed_standin.logs(self.cfg, lines)

    def _app_state(self) -> str:
        return f"{super()._app_state()} (stand-in)"

    def delete_app(self) -> bool | None:
        from ..alerts import esm_runner

        esm_runner.stop(self.cfg)
        return super().delete_app()
