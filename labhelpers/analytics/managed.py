"""The analytics application on the aws backend: Managed Service for Apache Flink, with boto3.

Two parts:

- **Connector options** for the job's property groups (``lab.connector.input`` /
  ``lab.connector.scores`` / ``lab.connector.dead_letters``): the Flink Kinesis connector for
  Flink 2.x (table identifier ``kinesis``, options ``stream.arn``, ``aws.region``,
  ``source.init.position``, ``aws.endpoint`` for an emulator). ``cloud_settings`` builds the
  whole ``JobSettings`` from the stack outputs, so the same job file reads the on-disk stream
  locally and Kinesis in the cloud.
- **Lifecycle**: ``deploy`` (upload the zip, create or update the application with its property
  groups on the runtime that matches the installed apache-flink, ``flink_runtime``), ``start``
  (and watch until RUNNING; when it falls back to READY the error lines of its log are shown),
  ``status``, ``stop``, ``delete``, ``failure_logs``.

Only names starting with ``cfg.prefix + "-"`` are touched.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AppError
from ..errors import aws_error_code as _code
from ..errors import aws_error_text as _text
from ..infra.config import LabConfig
from ..job.params import JobParams
from ..job.pipeline import JobSettings
from ..logs import logger
from ..wait import WaitTimeout, wait_until
from .managed_config import (
    application_properties,
    cloud_settings,
    flink_runtime,
    runtime_not_offered,
)

log = logger(__name__)

LOG_STREAM = "kinesis-analytics-log-stream"
TAG_KEY = "lab-prefix"
PARALLELISM = 1  # one KPU: the lab's traffic is a few records per second
START_TIMEOUT_S = 900.0  # the service usually needs 2-5 minutes to start a Flink app
STOP_TIMEOUT_S = 600.0
_RUNNING = {"RUNNING", "AUTOSCALING"}
_BUSY = {"STARTING", "STOPPING", "UPDATING", "FORCE_STOPPING", "ROLLING_BACK", "DELETING",
         "MAINTENANCE"}
# States that end by themselves in READY (or RUNNING): a start waits them out.
_SETTLING = {"UPDATING", "STOPPING", "FORCE_STOPPING", "ROLLING_BACK", "MAINTENANCE"}
# Log lines worth showing when the app does not start or keeps restarting.
_ERROR_PATTERN = '?ERROR ?Exception ?Traceback ?"Caused by" ?FAILED ?failed'
# The same test applied here too: the pattern's OR syntax is not honoured everywhere (moto).
_ERROR_RE = re.compile(r"ERROR|Exception|Traceback|Caused by|FAILED|failed")


# ---------------------------------------------------------------- names and runtime
def app_name(cfg: LabConfig) -> str:
    """The managed Flink application's name: ``<prefix>-analytics``."""
    return f"{cfg.prefix}-analytics"


# ---------------------------------------------------------------- clients and errors
@dataclass
class CodeLocation:
    """Where the application's zip is: the artifacts bucket and its key."""

    bucket: str
    key: str

    def bucket_arn(self, partition: str = "aws") -> str:
        return f"arn:{partition}:s3:::{self.bucket}"


def _client(cfg: LabConfig, service: str = "kinesisanalyticsv2"):
    return cfg.client(service)


def _partition(cfg: LabConfig) -> str:
    import boto3

    try:
        return boto3.Session().get_partition_for_region(cfg.region)
    except Exception:  # older botocore or an unknown region: the commercial partition
        return "aws"


def _listed(kda, name: str) -> bool:
    token = None
    while True:
        page = kda.list_applications(**({"NextToken": token} if token else {}))
        if any(a["ApplicationName"] == name for a in page.get("ApplicationSummaries", [])):
            return True
        token = page.get("NextToken")
        if not token:
            return False


def _describe(kda, name: str) -> dict[str, Any] | None:
    try:
        return kda.describe_application(ApplicationName=name)["ApplicationDetail"]
    except ClientError as err:
        if _code(err) == "ResourceNotFoundException":
            return None
        # An internal error (the emulator answers 500 for an unknown name): decide by the list.
        if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500 \
                and not _listed(kda, name):
            return None
        raise


# ---------------------------------------------------------------- logs
def log_stream_arn(cfg: LabConfig, log_group: str) -> str:
    return (f"arn:{_partition(cfg)}:logs:{cfg.region}:{cfg.account_id}:log-group:{log_group}"
            f":log-stream:{LOG_STREAM}")


def ensure_log_stream(cfg: LabConfig, log_group: str, logs=None) -> str:
    """Create the application's log stream in the stack's log group (once); its ARN."""
    logs = logs or _client(cfg, "logs")
    try:
        logs.create_log_stream(logGroupName=log_group, logStreamName=LOG_STREAM)
    except ClientError as err:
        if _code(err) != "ResourceAlreadyExistsException":
            raise AppError(f"Could not create the log stream in {log_group}: {_text(err)}",
                           "deploy the stack first (it makes the log group), then try again.") \
                from err
    return log_stream_arn(cfg, log_group)


def _message(raw: str) -> str:
    """The readable part of one log event (the service writes JSON lines)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw.strip()
    if not isinstance(doc, dict):
        return raw.strip()
    parts = [str(doc.get("messageType") or doc.get("level") or ""), str(doc.get("message") or "")]
    throwable = doc.get("throwableInformation")
    if throwable:
        parts.append(str(throwable).splitlines()[0] if isinstance(throwable, str)
                     else str(throwable)[:300])
    return " ".join(p for p in parts if p).strip() or raw.strip()


def failure_logs(cfg: LabConfig, log_group: str | None = None, since_s: float = 1800,
                 limit: int = 30, logs=None) -> list[str]:
    """The last ``limit`` error lines of the application's log in the last ``since_s`` s."""
    logs = logs or _client(cfg, "logs")
    group = log_group or f"/aws/kinesis-analytics/{app_name(cfg)}"
    start = int((time.time() - since_s) * 1000)
    lines: list[str] = []
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, logStreamNames=[LOG_STREAM], startTime=start,
            filterPattern=_ERROR_PATTERN)
        for page in pages:
            lines.extend(_message(e.get("message", "")) for e in page.get("events", [])
                         if _ERROR_RE.search(e.get("message", "")))
    except ClientError as err:
        if _code(err) == "ResourceNotFoundException":
            return [f"(no log yet in {group})"]
        return [f"(the log could not be read: {_text(err)})"]
    return lines[-limit:]


# ---------------------------------------------------------------- configuration
def _flink_config(parallelism: int) -> dict[str, Any]:
    return {
        "CheckpointConfiguration": {"ConfigurationType": "DEFAULT"},
        "MonitoringConfiguration": {"ConfigurationType": "CUSTOM", "MetricsLevel": "APPLICATION",
                                    "LogLevel": "INFO"},
        "ParallelismConfiguration": {"ConfigurationType": "CUSTOM", "Parallelism": parallelism,
                                     "ParallelismPerKPU": 1, "AutoScalingEnabled": False},
    }


def _flink_config_update(parallelism: int) -> dict[str, Any]:
    c = _flink_config(parallelism)
    return {
        "CheckpointConfigurationUpdate": {"ConfigurationTypeUpdate": "DEFAULT"},
        "MonitoringConfigurationUpdate": {"ConfigurationTypeUpdate": "CUSTOM",
                                          "MetricsLevelUpdate": "APPLICATION",
                                          "LogLevelUpdate": "INFO"},
        "ParallelismConfigurationUpdate": {
            "ConfigurationTypeUpdate": "CUSTOM",
            "ParallelismUpdate": c["ParallelismConfiguration"]["Parallelism"],
            "ParallelismPerKPUUpdate": 1, "AutoScalingEnabledUpdate": False},
    }


def create_or_update(cfg: LabConfig, code: CodeLocation, settings: JobSettings,
                     role_arn: str, log_group: str, *, runtime: str | None = None,
                     parallelism: int = PARALLELISM, progress: bool = True,
                     kda=None, logs=None) -> dict[str, Any]:
    """Create the application, or update its code and properties; its description.

    An update of a running application restarts it with the new code (the service does that).
    """
    kda = kda or _client(cfg)
    name = app_name(cfg)
    runtime = runtime or flink_runtime()
    props = application_properties(settings)
    stream_arn = ensure_log_stream(cfg, log_group, logs=logs)
    partition = _partition(cfg)
    try:
        current = _describe(kda, name)
        if current is None:
            if progress:
                log.info(f"Creating the analytics application {name} ({runtime}) ...")
            kda.create_application(
                ApplicationName=name,
                ApplicationDescription="Clickstream anomaly detection: Flink SQL + Random Cut "
                                       "Forest (labhelpers)",
                RuntimeEnvironment=runtime,
                ServiceExecutionRole=role_arn,
                ApplicationMode="STREAMING",
                ApplicationConfiguration={
                    "ApplicationCodeConfiguration": {
                        "CodeContent": {"S3ContentLocation": {
                            "BucketARN": code.bucket_arn(partition), "FileKey": code.key}},
                        "CodeContentType": "ZIPFILE",
                    },
                    "EnvironmentProperties": {"PropertyGroups": props},
                    "FlinkApplicationConfiguration": _flink_config(parallelism),
                    # A stop takes a snapshot and a start restores from it (forests, windows
                    # in progress, the source's positions), as the local app resumes from its
                    # checkpoint: nothing is lost or scored twice across a stop.
                    "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": True},
                },
                CloudWatchLoggingOptions=[{"LogStreamARN": stream_arn}],
                Tags=[{"Key": TAG_KEY, "Value": cfg.prefix}],
            )
        else:
            status = current["ApplicationStatus"]
            if status in _BUSY:
                raise AppError(f"The application {name} is {status}",
                               "wait until it is READY or RUNNING (managed.status), then "
                               "deploy again.")
            if progress:
                log.info(f"Updating the analytics application {name} ({status}) ...")
            update: dict[str, Any] = {
                "ApplicationName": name,
                "CurrentApplicationVersionId": current["ApplicationVersionId"],
                "ApplicationConfigurationUpdate": {
                    "ApplicationCodeConfigurationUpdate": {
                        "CodeContentTypeUpdate": "ZIPFILE",
                        "CodeContentUpdate": {"S3ContentLocationUpdate": {
                            "BucketARNUpdate": code.bucket_arn(partition),
                            "FileKeyUpdate": code.key}},
                    },
                    "EnvironmentPropertyUpdates": {"PropertyGroups": props},
                    "FlinkApplicationConfigurationUpdate": _flink_config_update(parallelism),
                    "ApplicationSnapshotConfigurationUpdate": {"SnapshotsEnabledUpdate": True},
                },
                "ServiceExecutionRoleUpdate": role_arn,
            }
            if current.get("RuntimeEnvironment") != runtime:
                update["RuntimeEnvironmentUpdate"] = runtime
            kda.update_application(**update)
    except ClientError as err:
        if runtime in _text(err) or "RuntimeEnvironment" in _text(err):
            raise runtime_not_offered(cfg, runtime, _text(err), _partition(cfg)) from err
        raise AppError(f"Creating or updating the application {name} failed: {_text(err)}",
                       _fix_for(err)) from err
    return _describe(kda, name) or {}


def _fix_for(err: ClientError) -> str:
    code = _code(err)
    if code in ("InvalidArgumentException", "InvalidApplicationConfigurationException"):
        return ("check the stack outputs and the zip (python -m labhelpers package), then "
                "deploy the app again.")
    if code == "ResourceInUseException":
        return "wait until the application is READY or RUNNING, then try again."
    if code in ("AccessDeniedException", "AccessDenied"):
        return ("use credentials allowed to manage Managed Service for Apache Flink "
                "(kinesisanalytics:*).")
    if code == "LimitExceededException":
        return "delete unused Flink applications in this region or ask for a higher quota."
    return "fix the cause named above, then try again."


# ---------------------------------------------------------------- lifecycle
def status(cfg: LabConfig, kda=None) -> dict[str, Any]:
    """``{exists, name, status, runtime, version}`` of the application."""
    kda = kda or _client(cfg)
    name = app_name(cfg)
    detail = _describe(kda, name)
    if detail is None:
        return {"exists": False, "name": name, "status": None, "runtime": None, "version": None}
    return {"exists": True, "name": name, "status": detail["ApplicationStatus"],
            "runtime": detail.get("RuntimeEnvironment"),
            "version": detail.get("ApplicationVersionId")}


def _wait_status(kda, name: str, done: Callable[[str | None], bool], timeout: float,
                 poll: float, progress: bool) -> str | None:
    seen: list[str | None] = []

    def settled() -> tuple[str | None] | None:
        detail = _describe(kda, name)
        state = detail["ApplicationStatus"] if detail else None
        if progress and (not seen or state != seen[-1]):
            # the student's local time, labelled with its zone
            log.info(f"  {time.strftime('%H:%M:%S %Z')}  {state or 'deleted'}")
        seen.append(state)
        return (state,) if done(state) else None

    try:
        return wait_until(settled, f"the application {name}", timeout=timeout, interval=poll,
                          progress=False)[0]
    except WaitTimeout as err:
        raise AppError(f"The application {name} is still {seen[-1] if seen else None} after "
                       f"{timeout:.0f} s",
                       "look at it in the Managed Service for Apache Flink console, and run "
                       "the same step again when it has settled.") from err


def start(cfg: LabConfig, *, wait: bool = True, timeout: float = START_TIMEOUT_S,
          poll: float = 10.0, progress: bool = True, restore: bool = True, kda=None,
          logs=None) -> dict[str, Any]:
    """Start the application and (with ``wait``) watch it until it runs.

    restore: start from the latest snapshot (what the last stop saved: forests, windows in
    progress, the source's positions); False starts fresh. An application still UPDATING
    (or STOPPING) is waited for first: the service refuses to start it until it is READY.
    If it falls back to READY (the job failed while starting), AppError carries the error
    lines of its log.
    """
    kda = kda or _client(cfg)
    name = app_name(cfg)
    detail = _describe(kda, name)
    if detail is None:
        raise AppError(f"The analytics application {name} does not exist",
                       "create it with managed.deploy (notebook 03 on the aws backend).")
    state = detail["ApplicationStatus"]
    if state in _RUNNING:
        if progress:
            log.info(f"The application {name} is already running.")
        return status(cfg, kda)
    if state in _SETTLING:
        if progress:
            log.info(f"The application {name} is {state}; waiting until it is READY before "
                  "starting it (the service refuses to start it before) ...")
        state = _wait_status(kda, name, lambda s: s not in _SETTLING, timeout, poll, progress)
        if state in _RUNNING:
            return status(cfg, kda)
    restore_type = "RESTORE_FROM_LATEST_SNAPSHOT" if restore else "SKIP_RESTORE_FROM_SNAPSHOT"
    try:
        kda.start_application(
            ApplicationName=name,
            RunConfiguration={
                "FlinkRunConfiguration": {"AllowNonRestoredState": True},
                "ApplicationRestoreConfiguration": {"ApplicationRestoreType": restore_type},
            },
        )
    except ClientError as err:
        raise AppError(f"Starting the application {name} failed: {_text(err)}",
                       _fix_for(err)) from err
    if progress:
        how = "from its latest snapshot" if restore else "fresh (no snapshot restored)"
        log.info(f"Starting {name} {how}; the service takes a few minutes ...")
    if not wait:
        return status(cfg, kda)
    final = _wait_status(kda, name, lambda s: s not in ("STARTING", "UPDATING"), timeout, poll,
                         progress)
    if final not in _RUNNING:
        lines = failure_logs(cfg, logs=logs)
        shown = "\n".join(f"    {line}" for line in lines) or "    (no error lines logged)"
        raise AppError(
            f"The application {name} did not start (it is {final}); error lines of its log:\n"
            + shown,
            "fix the cause shown above (often a missing stream permission, a wrong property, or "
            "a module missing from the zip), rebuild with `python -m labhelpers package`, "
            "deploy and start again.",
        )
    return status(cfg, kda)


def stop(cfg: LabConfig, *, force: bool = False, wait: bool = True,
         timeout: float = STOP_TIMEOUT_S, poll: float = 10.0, progress: bool = True,
         kda=None) -> bool:
    """Stop the application (KPU charges stop); True if it was running."""
    kda = kda or _client(cfg)
    name = app_name(cfg)
    detail = _describe(kda, name)
    if detail is None or detail["ApplicationStatus"] in ("READY", "DELETING"):
        return False
    try:
        kda.stop_application(ApplicationName=name, Force=force)
    except ClientError as err:
        if _code(err) != "ResourceInUseException" or force:
            raise AppError(f"Stopping the application {name} failed: {_text(err)}",
                           "try managed.stop(cfg, force=True).") from err
        kda.stop_application(ApplicationName=name, Force=True)
    if progress:
        log.info(f"Stopping {name} ...")
    if wait:
        _wait_status(kda, name, lambda s: s in (None, "READY"), timeout, poll, progress)
    return True


def still_billing(cfg: LabConfig, state: str | None) -> str:
    """One sentence: what still runs, what it costs an hour, the one command that stops it."""
    from ..infra.cost import estimate

    per_hour = sum(i.usd_per_hour for i in estimate(parallelism=PARALLELISM).items
                   if i.component.startswith("Managed Flink"))
    return (f"the analytics application {app_name(cfg)} still exists ({state or 'unknown'}) "
            f"and bills about ${per_hour:.2f} an hour while it runs; stop it with "
            f"`python -m labhelpers --backend aws managed-app stop --force`, then run the cleanup "
            "again (the stack was left in place so nothing it uses disappears under it).")


def delete(cfg: LabConfig, *, timeout: float = STOP_TIMEOUT_S, poll: float = 10.0,
           progress: bool = True, kda=None) -> bool:
    """Delete the application (stopping it first if it runs) and wait until it is gone; True
    if it existed. Deleting what is gone is fine, so running it twice is harmless.

    If it cannot be deleted, AppError says in one sentence what still runs, what it costs an
    hour and the one command that stops it (``still_billing``).
    """
    kda = kda or _client(cfg)
    name = app_name(cfg)
    if not name.startswith(cfg.prefix + "-"):  # never anything without the prefix
        return False
    detail = _describe(kda, name)
    if detail is None:
        return False
    try:
        if detail["ApplicationStatus"] != "DELETING":
            if detail["ApplicationStatus"] in _SETTLING:
                _wait_status(kda, name, lambda s: s not in _SETTLING, timeout, poll, progress)
                detail = _describe(kda, name) or detail
            if detail["ApplicationStatus"] not in ("READY",):
                stop(cfg, force=True, wait=True, timeout=timeout, poll=poll,
                     progress=progress, kda=kda)
                detail = _describe(kda, name) or detail
            try:
                kda.delete_application(ApplicationName=name,
                                       CreateTimestamp=detail["CreateTimestamp"])
            except ClientError as err:
                if _code(err) == "ResourceNotFoundException":
                    return False
                raise AppError(f"Deleting the application {name} failed: {_text(err)}",
                               "run the cleanup again in a minute.") from err
            if progress:
                log.info(f"Deleting the analytics application {name} ...")
        _wait_status(kda, name, lambda s: s is None, timeout, poll, progress)
    except AppError as err:
        try:
            state = status(cfg, kda)["status"]
        except (AppError, ClientError, BotoCoreError):
            state = None
        raise AppError(f"{err.what.rstrip('.')}; {still_billing(cfg, state)}",
                       "run the command above, then the cleanup again.") from err
    return True


def _described_groups(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return (detail.get("ApplicationConfigurationDescription", {})
            .get("EnvironmentPropertyDescriptions", {})
            .get("PropertyGroupDescriptions", []))


def _described_key(detail: dict[str, Any]) -> str | None:
    return (detail.get("ApplicationConfigurationDescription", {})
            .get("ApplicationCodeConfigurationDescription", {})
            .get("CodeContentDescription", {})
            .get("S3ApplicationCodeLocationDescription", {}).get("FileKey"))


def _params_of(detail: dict[str, Any]) -> JobParams | None:
    try:
        return JobParams.from_groups({g["PropertyGroupId"]: g.get("PropertyMap", {})
                                      for g in _described_groups(detail)})
    except Exception:  # an application made by something else: treat as changed
        return None


def deploy(cfg: LabConfig, zip_path=None, params: JobParams | dict | None = None, *,
           start_app: bool = True, progress: bool = True, fresh: bool = False,
           start_position: str = "TRIM_HORIZON", poll: float = 10.0,
           kda=None) -> dict[str, Any]:
    """Upload the zip, create or update the application from the stack outputs, start it.

    zip_path: the package from ``labhelpers.analytics.packaging.package`` (``python -m labhelpers
    package``). As the local app does: running with the same parameters and code, it says so
    and returns; with the same parameters it restores from the latest snapshot (the last
    stop took one); changed parameters (or ``fresh``) start fresh from ``start_position``,
    saying so, because the snapshot holds windows and forests of the old ones. An
    application still UPDATING or STOPPING is waited for. Returns the application's status.
    """
    from ..infra import credentials, stack
    from . import packaging

    credentials.check(cfg)
    if zip_path is None:
        zip_path = packaging.DIST_DIR / packaging.ZIP_NAME
        if not zip_path.exists():
            raise AppError("No application package was given and none is built",
                           "build it with `python -m labhelpers package`, then deploy again.")
    outs = stack.outputs(cfg)
    for key in ("AppRoleArn", "AppLogGroupName"):
        if key not in outs:
            raise AppError(f"The stack has no output {key}",
                           "deploy the current template (notebook 01), then try again.")
    kda = kda or _client(cfg)
    name = app_name(cfg)
    try:
        bucket, key = packaging.upload(cfg, zip_path)
        settings = cloud_settings(cfg, outs, params, start_position=start_position)
        detail = _describe(kda, name)
        if detail is not None and detail["ApplicationStatus"] in _SETTLING:
            if progress:
                log.info(f"The application {name} is {detail['ApplicationStatus']}; waiting "
                      "until it settles ...")
            _wait_status(kda, name, lambda s: s not in _SETTLING, START_TIMEOUT_S, poll,
                         progress)
            detail = _describe(kda, name)
        restore = False
        if detail is not None:
            last = _params_of(detail)
            changed = settings.params.changes_from(last) if last is not None else ["all"]
            same = (not changed and _described_key(detail) == key
                    and _described_groups(detail) == application_properties(settings))
            running = detail["ApplicationStatus"] in _RUNNING
            if running and same and not fresh:
                if progress:
                    log.info(f"The analytics app {name} is already running with these "
                          "parameters.")
                return status(cfg, kda)
            if changed and last is not None:
                if progress:
                    log.info(f"The parameters differ from the last run's ({', '.join(changed)}): "
                          "its snapshot holds windows and forests of the old parameters and "
                          f"cannot be used, so the app starts fresh from the {start_position} "
                          "position.")
            elif fresh and progress:
                log.info(f"fresh=True: the app starts fresh from the {start_position} position "
                      "(its latest snapshot is not restored).")
            restore = not changed and not fresh
            if running and start_app:
                # stop (taking a snapshot) before the update: an update of a running
                # application restarts it by itself, without asking how
                stop(cfg, poll=poll, progress=progress, kda=kda)
            if same and not running:
                if start_app:
                    return start(cfg, progress=progress, restore=restore, poll=poll, kda=kda)
                return status(cfg, kda)
        create_or_update(cfg, CodeLocation(bucket, key), settings, outs["AppRoleArn"],
                         outs["AppLogGroupName"], progress=progress, kda=kda)
        if start_app:
            return start(cfg, progress=progress, restore=restore, poll=poll, kda=kda)
        return status(cfg, kda)
    except BotoCoreError as err:
        raise AppError(f"Could not reach AWS: {err}",
                       "check your network and credentials, then run the step again.") from err


def current_params(cfg: LabConfig, kda=None) -> JobParams:
    """The parameters the application was configured with (its runtime properties)."""
    detail = _describe(kda or _client(cfg), app_name(cfg))
    if detail is None:
        raise AppError(f"The analytics application {app_name(cfg)} does not exist",
                       "start it with notebook 03 or `python -m labhelpers app start`.")
    groups = (detail.get("ApplicationConfigurationDescription", {})
              .get("EnvironmentPropertyDescriptions", {})
              .get("PropertyGroupDescriptions", []))
    return JobParams.from_groups({g["PropertyGroupId"]: g.get("PropertyMap", {})
                                  for g in groups})
