"""The aws backend rehearsed against the local emulator, without an account
(``run-lab --backend aws --emulator``, ``LAB_EMULATED=1``): the same Kinesis streams, stack,
SNS and SQS calls go to moto; the two things moto cannot run stand in on this machine: the
managed application (the packaged zip on the local mini-cluster, Kinesis through the real
connector) and the alert Lambda's event source mapping (a local runner)."""

from __future__ import annotations

import json
from typing import Any

from ..alerts import esm_runner
from ..analytics import managed_standin
from ..errors import AppError
from .aws import AwsBackend


class EmulatedAwsBackend(AwsBackend):
    """The aws backend's resources on the emulator, its application stood in for here."""

    runs_emulator = True

    def _start(self, zip_path, params, position: str, fresh: bool) -> dict[str, Any]:
        from ..infra import stack

        if managed_standin.status(self.cfg)["running"]:
            if self.app_params() == params and not fresh:
                print("The analytics app is already running with these parameters.")
                return self.app_status()
            print("Restarting the analytics app with the new parameters.")
            managed_standin.stop(self.cfg)
        # the stand-in IS the application here: the emulator can create one but cannot start,
        # stop or delete it (HTTP 500), so creating it would leave it behind at clean-up
        managed_standin.start(self.cfg, zip_path, stack.outputs(self.cfg),
                              endpoint=self.cfg.endpoint_url, params=params,
                              start_position=position)
        esm_runner.start(self.cfg, endpoint=self.cfg.endpoint_url)
        return self.app_status()

    def stop_app(self) -> bool:
        esm_runner.stop(self.cfg)
        return managed_standin.stop(self.cfg)

    def app_running(self) -> bool:
        return bool(managed_standin.status(self.cfg)["running"])

    def app_status(self) -> dict[str, Any]:
        return {**self._produced(), "application": managed_standin.status(self.cfg)}

    def app_logs(self, lines: int = 40) -> str:
        return managed_standin.logs(self.cfg, lines)

    def app_params(self):
        from ..job.params import JobParams

        props = managed_standin.standin_dir(self.cfg) / managed_standin.PROPERTIES_FILE
        if not props.exists():
            raise AppError("The analytics app has not been started",
                           "start it with notebook 03 or `python -m labhelpers app start`.")
        groups = json.loads(props.read_text())
        return JobParams.from_groups({g["PropertyGroupId"]: g["PropertyMap"] for g in groups})

    def _app_state(self) -> str:
        return "RUNNING (stand-in)" if self.app_running() else "not running (stand-in)"

    def delete_app(self) -> bool | None:
        return self.stop_app()
