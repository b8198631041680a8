"""Managed Service for Apache Flink as the emulator rehearsal answers it: a client with the
same methods and answers as boto3's ``kinesisanalyticsv2`` for the calls the lab makes, whose
application runs as the managed-service stand-in (labhelpers.analytics.managed_standin: the
packaged zip on the local mini-cluster, Kinesis on the emulator).

So ``labhelpers.analytics.managed`` (deploy, start, stop, delete) runs unchanged against it and
meets what a real account would answer:

- requests are checked against botocore's model of the API (a wrong parameter fails here as
  it would there);
- the application's states move with delays, as the service's do: ``STARTING`` (until the
  job is submitted) then ``RUNNING``; ``UPDATING`` then back to where it was; ``STOPPING``
  then ``READY``; ``DELETING`` then gone. A start while the application is not ``READY`` is
  refused with ``ResourceInUseException``, as AWS refuses it;
- snapshots: with ``SnapshotsEnabled``, a stop takes one (the job stops with a savepoint, so
  its sinks flush and nothing after it is written), and a start with
  ``RESTORE_FROM_LATEST_SNAPSHOT`` restores from the newest (forests, windows in progress,
  the source's shard positions). The application's code is fetched from the emulator's S3,
  where ``deploy`` put it.

State lives in ``<lab dir>/managed-service/`` so every notebook and command sees the same
application.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..infra.config import LabConfig

SERVICE_DIRNAME = "managed-service"
# Seconds each transition takes at least (the service takes minutes; these keep the
# rehearsal short while every wait in the lab is still exercised).
DELAYS = {"STARTING": 3.0, "UPDATING": 4.0, "STOPPING": 2.0, "DELETING": 2.0}
START_TIMEOUT_S = 240.0  # the job not submitted by then: the start failed (back to READY)
ACCOUNT = "123456789012"


def service_dir(cfg: LabConfig) -> Path:
    """Where the stand-in service keeps its application's description and snapshots."""
    return cfg.lab_dir / SERVICE_DIRNAME


@functools.cache
def _model():
    """botocore's model of the API (loaded once: it takes a moment)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("kinesisanalyticsv2")


def _error(op: str, code: str, message: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


class StandinKda:
    """The ``kinesisanalyticsv2`` calls of the lab, answered by the stand-in service."""

    def __init__(self, cfg: LabConfig, endpoint: str | None = None,
                 delays: dict[str, float] | None = None) -> None:
        self.cfg, self.endpoint = cfg, endpoint or cfg.endpoint_url
        self.delays = {**DELAYS, **(delays or {})}
        self.dir = service_dir(cfg)
        self.file = self.dir / "application.json"

    # ------------------------------------------------------------ state
    def _load(self) -> dict[str, Any] | None:
        return json.loads(self.file.read_text()) if self.file.exists() else None

    def _save(self, app: dict[str, Any] | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if app is None:
            self.file.unlink(missing_ok=True)
            return
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(app, indent=1))
        tmp.replace(self.file)

    def _validate(self, op: str, params: dict[str, Any]) -> None:
        from botocore.exceptions import ParamValidationError
        from botocore.validate import validate_parameters

        shape = _model().operation_model(op).input_shape
        try:
            validate_parameters(params, shape)
        except ParamValidationError as err:
            raise _error(op, "InvalidArgumentException", str(err)) from None

    def _app(self, op: str, name: str) -> dict[str, Any]:
        app = self._advance()
        if app is None or app["name"] != name:
            raise _error(op, "ResourceNotFoundException",
                         f"Application {name} not found in account {ACCOUNT}")
        return app

    def _set(self, app: dict[str, Any], status: str, then: str | None = None) -> None:
        app["status"] = status
        app["until"] = time.time() + self.delays.get(status, 0.0) if then else None
        app["then"] = then

    def _advance(self) -> dict[str, Any] | None:
        """Move the application on to the state its transition leads to, once due."""
        from . import managed_standin

        app = self._load()
        if app is None:
            return None
        now = time.time()
        status = app["status"]
        if status == "STARTING":
            running = managed_standin.process(self.cfg).running
            job = managed_standin.submitted_job(self.cfg)
            if job and running and now >= app["until"]:
                managed_standin.process(self.cfg).write_state(submitted=now, job_id=job)
                self._set(app, "RUNNING")
            elif not running or now - app["started"] > START_TIMEOUT_S:
                # the job failed while starting: the service falls back to READY
                managed_standin.stop(self.cfg, progress=False)
                self._set(app, "READY")
        elif status == "UPDATING" and now >= app["until"]:
            if app["then"] == "RUNNING":  # an update of a running app restarts it
                self._launch(app, restore=None)
            else:
                self._set(app, app["then"])
        elif status in ("STOPPING", "DELETING") and now >= app["until"]:
            if status == "DELETING":
                shutil.rmtree(self.dir, ignore_errors=True)
                return None
            self._set(app, "READY")
        self._save(app)
        return app

    def _launch(self, app: dict[str, Any], restore: str | None) -> None:
        from . import managed_standin

        managed_standin.launch(self.cfg, self.fetch_code(app["code"]), app["properties"],
                               endpoint=self.endpoint, restore=restore)
        app["started"] = time.time()
        app["restored_from"] = restore
        self._set(app, "STARTING", then="RUNNING")

    def fetch_code(self, code: dict[str, str]) -> Path:
        """The application's zip, fetched from the emulator's S3 as the service fetches it."""
        zip_path = self.dir / "code.zip"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg.client("s3").download_file(code["bucket"], code["key"], str(zip_path))
        return zip_path

    # ------------------------------------------------------------ the API
    def describe_application(self, **params: Any) -> dict[str, Any]:
        self._validate("DescribeApplication", params)
        app = self._app("DescribeApplication", params["ApplicationName"])
        return {"ApplicationDetail": self._detail(app)}

    def list_applications(self, **params: Any) -> dict[str, Any]:
        self._validate("ListApplications", params)
        app = self._advance()
        return {"ApplicationSummaries": [] if app is None else [{
            "ApplicationName": app["name"], "ApplicationARN": app["arn"],
            "ApplicationStatus": app["status"], "ApplicationVersionId": app["version"],
            "RuntimeEnvironment": app["runtime"]}]}

    def list_application_snapshots(self, **params: Any) -> dict[str, Any]:
        self._validate("ListApplicationSnapshots", params)
        app = self._app("ListApplicationSnapshots", params["ApplicationName"])
        return {"SnapshotSummaries": [
            {"SnapshotName": s["name"], "SnapshotStatus": "READY",
             "ApplicationVersionId": s["version"],
             "SnapshotCreationTimestamp": datetime.fromtimestamp(s["ts"], UTC)}
            for s in reversed(app["snapshots"])]}

    def create_application(self, **params: Any) -> dict[str, Any]:
        self._validate("CreateApplication", params)
        if self._advance() is not None:
            raise _error("CreateApplication", "ResourceInUseException",
                         f"Application {params['ApplicationName']} already exists")
        conf = params["ApplicationConfiguration"]
        loc = conf["ApplicationCodeConfiguration"]["CodeContent"]["S3ContentLocation"]
        name = params["ApplicationName"]
        app = {
            "name": name, "version": 1, "runtime": params["RuntimeEnvironment"],
            "arn": f"arn:aws:kinesisanalytics:{self.cfg.region}:{ACCOUNT}:application/{name}",
            "created": time.time(), "started": None, "until": None, "then": None,
            "status": "READY", "restored_from": None, "snapshots": [],
            "code": {"bucket": loc["BucketARN"].split(":::", 1)[1], "key": loc["FileKey"]},
            "properties": conf["EnvironmentProperties"]["PropertyGroups"],
            "snapshots_enabled": bool(conf.get("ApplicationSnapshotConfiguration", {})
                                      .get("SnapshotsEnabled", False)),
        }
        self._save(app)
        return {"ApplicationDetail": self._detail(app)}

    def update_application(self, **params: Any) -> dict[str, Any]:
        op = "UpdateApplication"
        self._validate(op, params)
        app = self._app(op, params["ApplicationName"])
        if app["status"] not in ("READY", "RUNNING"):
            raise _error(op, "ResourceInUseException",
                         f"Application {app['name']} is in {app['status']} state; it must be "
                         "READY or RUNNING to be updated")
        if params.get("CurrentApplicationVersionId") != app["version"]:
            raise _error(op, "InvalidArgumentException",
                         f"CurrentApplicationVersionId {params.get('CurrentApplicationVersionId')}"
                         f" is not the application's version {app['version']}")
        upd = params.get("ApplicationConfigurationUpdate", {})
        loc = (upd.get("ApplicationCodeConfigurationUpdate", {}).get("CodeContentUpdate", {})
               .get("S3ContentLocationUpdate"))
        if loc:
            app["code"] = {"bucket": loc["BucketARNUpdate"].split(":::", 1)[1],
                           "key": loc["FileKeyUpdate"]}
        if "EnvironmentPropertyUpdates" in upd:
            app["properties"] = upd["EnvironmentPropertyUpdates"]["PropertyGroups"]
        snap = upd.get("ApplicationSnapshotConfigurationUpdate")
        if snap:
            app["snapshots_enabled"] = bool(snap["SnapshotsEnabledUpdate"])
        app["runtime"] = params.get("RuntimeEnvironmentUpdate", app["runtime"])
        app["version"] += 1
        was = app["status"]
        if was == "RUNNING":  # the service restarts a running application with the update
            from . import managed_standin

            managed_standin.stop(self.cfg, progress=False)
        self._set(app, "UPDATING", then=was)
        self._save(app)
        return {"ApplicationDetail": self._detail(app)}

    def start_application(self, **params: Any) -> dict[str, Any]:
        op = "StartApplication"
        self._validate(op, params)
        app = self._app(op, params["ApplicationName"])
        if app["status"] != "READY":
            raise _error(op, "ResourceInUseException",
                         f"Application {app['name']} is in {app['status']} state and cannot "
                         "be started; it must be READY")
        restore_type = (params.get("RunConfiguration", {})
                        .get("ApplicationRestoreConfiguration", {})
                        .get("ApplicationRestoreType", "RESTORE_FROM_LATEST_SNAPSHOT"))
        restore = None
        if restore_type == "RESTORE_FROM_LATEST_SNAPSHOT" and app["snapshots"]:
            restore = app["snapshots"][-1]["path"]
        elif restore_type == "RESTORE_FROM_CUSTOM_SNAPSHOT":
            name = params["RunConfiguration"]["ApplicationRestoreConfiguration"]["SnapshotName"]
            found = [s for s in app["snapshots"] if s["name"] == name]
            if not found:
                raise _error(op, "InvalidArgumentException", f"No snapshot named {name}")
            restore = found[0]["path"]
        self._launch(app, restore)
        self._save(app)
        return {}

    def stop_application(self, **params: Any) -> dict[str, Any]:
        from . import managed_standin

        op = "StopApplication"
        self._validate(op, params)
        app = self._app(op, params["ApplicationName"])
        force = bool(params.get("Force"))
        if app["status"] not in ("RUNNING",) and not (force and app["status"] == "STARTING"):
            raise _error(op, "ResourceInUseException",
                         f"Application {app['name']} is in {app['status']} state and cannot "
                         "be stopped")
        if app["snapshots_enabled"] and not force:
            name = f"snapshot-{int(time.time() * 1000)}"
            where = managed_standin.take_snapshot(self.cfg, self.dir / "snapshots" / name)
            if where:
                app["snapshots"].append({"name": name, "path": where, "ts": time.time(),
                                         "version": app["version"]})
        managed_standin.stop(self.cfg, progress=False)
        self._set(app, "STOPPING", then="READY")
        self._save(app)
        return {}

    def delete_application(self, **params: Any) -> dict[str, Any]:
        from . import managed_standin

        op = "DeleteApplication"
        self._validate(op, params)
        app = self._app(op, params["ApplicationName"])
        created = params["CreateTimestamp"]
        if isinstance(created, datetime) and abs(created.timestamp() - app["created"]) > 1:
            raise _error(op, "InvalidArgumentException", "CreateTimestamp does not match")
        if app["status"] in ("STARTING", "UPDATING", "STOPPING", "DELETING"):
            raise _error(op, "ResourceInUseException",
                         f"Application {app['name']} is in {app['status']} state")
        managed_standin.stop(self.cfg, progress=False)  # the service stops a running one
        self._set(app, "DELETING", then="GONE")
        self._save(app)
        return {}

    # ------------------------------------------------------------ answers
    def _detail(self, app: dict[str, Any]) -> dict[str, Any]:
        props = copy.deepcopy(app["properties"])
        return {
            "ApplicationARN": app["arn"], "ApplicationName": app["name"],
            "RuntimeEnvironment": app["runtime"], "ApplicationStatus": app["status"],
            "ApplicationVersionId": app["version"],
            "CreateTimestamp": datetime.fromtimestamp(app["created"], UTC),
            "ApplicationConfigurationDescription": {
                "ApplicationCodeConfigurationDescription": {
                    "CodeContentType": "ZIPFILE",
                    "CodeContentDescription": {"S3ApplicationCodeLocationDescription": {
                        "BucketARN": f"arn:aws:s3:::{app['code']['bucket']}",
                        "FileKey": app["code"]["key"]}}},
                "EnvironmentPropertyDescriptions": {"PropertyGroupDescriptions": props},
                "ApplicationSnapshotConfigurationDescription": {
                    "SnapshotsEnabled": app["snapshots_enabled"]},
                "RunConfigurationDescription": {
                    "ApplicationRestoreConfigurationDescription": {
                        "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}},
            },
        }
