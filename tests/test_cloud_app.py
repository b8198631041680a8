"""The managed Flink application: connector options, property groups, and every boto3 call.

create / describe / list run against the emulator (moto serves them); update, start, stop and
delete return HTTP 500 there, so they run against botocore's Stubber with the responses the
real API gives. Nothing reaches AWS: aws-backend configs point every client at the emulator.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber

from labhelpers.analytics import managed as cloud_app
from labhelpers.analytics import packaging
from labhelpers.analytics.job import JobSettings
from labhelpers.errors import AppError
from labhelpers.infra import inventory, stack
from labhelpers.infra.config import LabConfig
from tests.aws_env import aws_cfg_on_emulator

ARNS = {
    "InputStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/lab-clicks",
    "ScoresStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/lab-scores",
    "DeadLetterStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/lab-dead-letters",
}
CREATED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _detail(name: str, status: str, version: int = 1) -> dict:
    return {"ApplicationDetail": {
        "ApplicationARN": f"arn:aws:kinesisanalytics:us-east-1:123456789012:application/{name}",
        "ApplicationName": name, "RuntimeEnvironment": "FLINK-2_3",
        "ApplicationStatus": status, "ApplicationVersionId": version,
        "CreateTimestamp": CREATED}}


def _not_found(stub: Stubber) -> None:
    stub.add_client_error("describe_application", service_error_code="ResourceNotFoundException",
                          http_status_code=400)


def _kda():
    return boto3.client("kinesisanalyticsv2", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", endpoint_url="http://127.0.0.1:1")


def _logs():
    return boto3.client("logs", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", endpoint_url="http://127.0.0.1:1")


# ---------------------------------------------------------------- runtime and options
def test_newest_runtime_is_the_highest_flink_the_sdk_lists():
    enum = botocore.session.get_session().get_service_model(
        "kinesisanalyticsv2").shape_for("RuntimeEnvironment").enum
    newest = cloud_app.newest_runtime()
    assert newest in enum and newest.startswith("FLINK-")
    flinks = [v for v in enum if v.startswith("FLINK-")]
    assert all(tuple(map(int, newest[6:].split("_"))) >= tuple(map(int, v[6:].split("_")))
               for v in flinks), (newest, flinks)
    if "FLINK-2_3" in enum:
        assert newest >= "FLINK-2_3", "FLINK-2_3 or newer when the SDK knows it"


def test_cloud_settings_render_kinesis_tables_in_the_lab_sql():
    cfg = LabConfig(region="eu-west-1")
    settings = cloud_app.cloud_settings(cfg, ARNS, {"threshold": 3.5, "window_seconds": 20})
    sql = settings.sql()
    assert sql.count("'connector' = 'kinesis'") == 3, "input, scores and dead letters"
    assert f"'stream.arn' = '{ARNS['InputStreamArn']}'" in sql
    assert "'source.init.position' = 'TRIM_HORIZON'" in sql
    assert "'aws.region' = 'eu-west-1'" in sql
    assert settings.input_connector["format"] == "raw", "the SQL parses the raw line itself"
    assert settings.scores_connector["format"] == "json"
    assert "aws.endpoint" not in sql and "secretkey" not in sql, "AWS uses the app's role"
    # The service hands the same groups back through application_properties.json.
    groups = cloud_app.application_properties(settings)
    again = JobSettings.from_properties(groups)
    assert again.sql() == sql and again.forest.threshold == 3.5 and again.window_seconds == 20


def test_run_options_and_no_empty_groups():
    groups = cloud_app.application_properties(cloud_app.cloud_settings(LabConfig(), ARNS))
    assert groups[0] == {"PropertyGroupId": "kinesis.analytics.flink.run.options",
                         "PropertyMap": {"python": "main.py",
                                         "jarfile": "lib/pyflink-dependencies.jar",
                                         "pyFiles": "dep/"}}
    ids = [g["PropertyGroupId"] for g in groups]
    assert "lab.runtime" not in ids, "an empty group is rejected by the service"
    assert {"lab.connector.input", "lab.connector.scores", "lab.connector.dead_letters",
            "lab.sql", "lab.forest"} <= set(ids), ids
    assert all(isinstance(v, str) and v for g in groups for v in g["PropertyMap"].values())


def test_emulator_options_and_keys_only_on_loopback():
    opts = cloud_app.kinesis_sink(ARNS["ScoresStreamArn"], "us-east-1",
                                  endpoint="http://127.0.0.1:4599",
                                  credentials={"aws_access_key_id": "testing",
                                               "aws_secret_access_key": "testing"})
    assert opts["aws.endpoint"] == "http://127.0.0.1:4599"
    assert opts["aws.http.protocol.version"] == "HTTP1_1", "emulators have no HTTP/2"
    assert opts["aws.credentials.provider"] == "BASIC"
    with pytest.raises(AppError, match="loopback") as err:
        cloud_app.kinesis_source(ARNS["InputStreamArn"], "us-east-1",
                                 endpoint="https://kinesis.us-east-1.amazonaws.com",
                                 credentials={"aws_access_key_id": "A",
                                              "aws_secret_access_key": "B"})
    assert "role" in str(err.value)
    with pytest.raises(AppError, match="TRIM_HORIZON or LATEST"):
        cloud_app.kinesis_source(ARNS["InputStreamArn"], "us-east-1", start_position="EARLIEST")
    with pytest.raises(AppError, match="DeadLetterStreamArn"):
        cloud_app.cloud_settings(LabConfig(), {"InputStreamArn": "a", "ScoresStreamArn": "b"})


# ---------------------------------------------------------------- lifecycle with Stubber
def test_start_watches_until_running():
    cfg = LabConfig(prefix="stublab")
    kda = _kda()
    name = cloud_app.app_name(cfg)
    with Stubber(kda) as stub:
        stub.add_response("describe_application", _detail(name, "READY"))
        stub.add_response("start_application", {}, {
            "ApplicationName": name,
            "RunConfiguration": {
                "FlinkRunConfiguration": {"AllowNonRestoredState": True},
                "ApplicationRestoreConfiguration": {
                    "ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}}})
        stub.add_response("describe_application", _detail(name, "STARTING"))
        stub.add_response("describe_application", _detail(name, "RUNNING"))
        stub.add_response("describe_application", _detail(name, "RUNNING"))
        result = cloud_app.start(cfg, poll=0, progress=False, kda=kda)
        stub.assert_no_pending_responses()
    assert result == {"exists": True, "name": name, "status": "RUNNING",
                      "runtime": "FLINK-2_3", "version": 1}


def test_start_failure_shows_the_log_error_lines():
    cfg = LabConfig(prefix="stublab")
    kda, logs = _kda(), _logs()
    name = cloud_app.app_name(cfg)
    events = [
        {"message": json.dumps({"messageType": "INFO", "message": "Job submitted"})},
        {"message": json.dumps({"messageType": "ERROR", "message": "ModuleNotFoundError: "
                                "No module named 'krcf'", "throwableInformation": "Traceback"})},
        {"message": "org.apache.flink.table.api.ValidationException: Could not find any "
                    "factory for identifier 'kinesis'"},
    ]
    with Stubber(kda) as stub, Stubber(logs) as log_stub:
        stub.add_response("describe_application", _detail(name, "READY"))
        stub.add_response("start_application", {}, {"ApplicationName": name,
                                                     "RunConfiguration": ANY})
        stub.add_response("describe_application", _detail(name, "STARTING"))
        stub.add_response("describe_application", _detail(name, "READY"))
        log_stub.add_response("filter_log_events", {"events": events}, {
            "logGroupName": f"/aws/kinesis-analytics/{name}",
            "logStreamNames": [cloud_app.LOG_STREAM], "startTime": ANY, "filterPattern": ANY})
        with pytest.raises(AppError) as err:
            cloud_app.start(cfg, poll=0, progress=False, kda=kda, logs=logs)
    text = str(err.value)
    assert "did not start (it is READY)" in text
    assert "No module named 'krcf'" in text and "identifier 'kinesis'" in text
    assert "Job submitted" not in text, "only error lines are shown"
    assert "labhelpers package" in text, "the message ends with what to do"


def test_stop_and_delete_twice_are_harmless():
    cfg = LabConfig(prefix="stublab")
    kda = _kda()
    name = cloud_app.app_name(cfg)
    with Stubber(kda) as stub:
        # stop a running app
        stub.add_response("describe_application", _detail(name, "RUNNING"))
        stub.add_response("stop_application", {}, {"ApplicationName": name, "Force": False})
        stub.add_response("describe_application", _detail(name, "STOPPING"))
        stub.add_response("describe_application", _detail(name, "READY"))
        assert cloud_app.stop(cfg, poll=0, progress=False, kda=kda) is True
        # stop again: nothing to do
        stub.add_response("describe_application", _detail(name, "READY"))
        assert cloud_app.stop(cfg, poll=0, progress=False, kda=kda) is False
        # delete a running app: forced stop first, then delete with its creation time
        stub.add_response("describe_application", _detail(name, "RUNNING"))
        stub.add_response("describe_application", _detail(name, "RUNNING"))
        stub.add_response("stop_application", {}, {"ApplicationName": name, "Force": True})
        stub.add_response("describe_application", _detail(name, "READY"))
        stub.add_response("describe_application", _detail(name, "READY"))
        stub.add_response("delete_application", {}, {"ApplicationName": name,
                                                     "CreateTimestamp": CREATED})
        stub.add_response("describe_application", _detail(name, "DELETING"))
        _not_found(stub)
        assert cloud_app.delete(cfg, poll=0, progress=False, kda=kda) is True
        # delete again: gone already
        _not_found(stub)
        assert cloud_app.delete(cfg, poll=0, progress=False, kda=kda) is False
        stub.assert_no_pending_responses()


def test_start_of_a_missing_app_says_how():
    cfg = LabConfig(prefix="stublab")
    kda = _kda()
    with Stubber(kda) as stub:
        _not_found(stub)
        with pytest.raises(AppError, match="does not exist") as err:
            cloud_app.start(cfg, poll=0, progress=False, kda=kda)
    assert "cloud_app.deploy" in str(err.value)


def test_update_of_a_busy_app_is_refused(monkeypatch):
    cfg = LabConfig(prefix="stublab")
    kda, logs = _kda(), _logs()
    name = cloud_app.app_name(cfg)
    monkeypatch.setattr(cloud_app, "ensure_log_stream", lambda cfg, group, logs=None: "arn:x")
    with Stubber(kda) as stub:
        stub.add_response("describe_application", _detail(name, "STARTING"))
        with pytest.raises(AppError, match="is STARTING") as err:
            cloud_app.create_or_update(cfg, cloud_app.CodeLocation("b", "flink-app/k.zip"),
                                       cloud_app.cloud_settings(cfg, ARNS), "arn:role", "g",
                                       progress=False, kda=kda, logs=logs)
    assert "READY or RUNNING" in str(err.value)


def test_unsupported_runtime_in_region_is_explained(monkeypatch):
    cfg = LabConfig(prefix="stublab")
    kda = _kda()
    monkeypatch.setattr(cloud_app, "ensure_log_stream", lambda cfg, group, logs=None: "arn:x")
    with Stubber(kda) as stub:
        _not_found(stub)
        stub.add_client_error("create_application",
                              service_error_code="InvalidArgumentException",
                              service_message="Runtime FLINK-2_3 is not supported in region",
                              http_status_code=400)
        with pytest.raises(AppError) as err:
            cloud_app.create_or_update(cfg, cloud_app.CodeLocation("b", "flink-app/k.zip"),
                                       cloud_app.cloud_settings(cfg, ARNS), "arn:role", "g",
                                       progress=False, kda=kda)
    assert "FLINK-2_3 is not supported" in str(err.value) and "Fix:" in str(err.value)


# ---------------------------------------------------------------- against the emulator
@pytest.mark.integration
def test_create_on_the_emulator_then_update_with_stubber(emulator_cfg, monkeypatch, tmp_path):
    from tests.test_packaging import installed_krcf_wheel, standin_jar

    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testcloudapp")
    monkeypatch.setattr(stack, "AWS_ONLY_OUTPUTS", ())  # the emulator skips Firehose
    monkeypatch.setattr(stack, "_poll_interval", lambda cfg: 0.2)
    zip_path = packaging.build_zip(standin_jar(tmp_path / "c.jar"),
                                   [installed_krcf_wheel(tmp_path)], out=tmp_path / "app.zip")
    try:
        stack.deploy(cfg, progress=False)
        monkeypatch.setattr(cloud_app, "start", lambda cfg, **kw: {"started": True})
        assert cloud_app.deploy(cfg, zip_path, {"threshold": 3.5}) == {"started": True}
        outs = stack.outputs(cfg)
        kda = cfg.client("kinesisanalyticsv2")
        detail = kda.describe_application(
            ApplicationName=cloud_app.app_name(cfg))["ApplicationDetail"]
        assert detail["RuntimeEnvironment"] == cloud_app.newest_runtime()
        # (moto 5.2.5 answers the role under a key the API does not have, so botocore drops
        # it; the Stubber test below checks the role is sent on update.)
        conf = detail["ApplicationConfigurationDescription"]
        code = conf["ApplicationCodeConfigurationDescription"]["CodeContentDescription"][
            "S3ApplicationCodeLocationDescription"]
        assert code["FileKey"] == packaging.code_key(zip_path)
        assert code["BucketARN"].endswith(cfg.artifacts_bucket)
        groups = conf["EnvironmentPropertyDescriptions"]["PropertyGroupDescriptions"]
        settings = JobSettings.from_properties(groups)
        assert settings.input_connector["stream.arn"] == outs["InputStreamArn"]
        assert settings.forest.threshold == 3.5
        logging = detail["CloudWatchLoggingOptionDescriptions"][0]["LogStreamARN"]
        assert logging.endswith(f"{outs['AppLogGroupName']}:log-stream:{cloud_app.LOG_STREAM}")
        assert cfg.client("logs").describe_log_streams(
            logGroupName=outs["AppLogGroupName"])["logStreams"][0]["logStreamName"] == (
            cloud_app.LOG_STREAM), "the log stream was created"
        tags = kda.list_tags_for_resource(ResourceARN=detail["ApplicationARN"])["Tags"]
        assert {"Key": "lab-prefix", "Value": cfg.prefix} in tags
        # AWS says READY after creation; moto 5.2.5 says STARTING.
        assert cloud_app.status(cfg)["status"] in ("READY", "STARTING")
        assert any("Managed Flink application" in x for x in inventory.leftovers(cfg)), (
            "leftovers must list the app")

        # Updating a deployed app: the emulator has no update_application, the Stubber does.
        stub_kda = boto3.client("kinesisanalyticsv2", region_name=cfg.region)
        with Stubber(stub_kda) as stub:
            name = cloud_app.app_name(cfg)
            stub.add_response("describe_application", _detail(name, "RUNNING", 1))
            stub.add_response("update_application", _detail(name, "UPDATING", 2), {
                "ApplicationName": name,
                "CurrentApplicationVersionId": 1,
                "ApplicationConfigurationUpdate": ANY,
                "ServiceExecutionRoleUpdate": outs["AppRoleArn"]})
            stub.add_response("describe_application", _detail(name, "UPDATING", 2))
            cloud_app.create_or_update(cfg, cloud_app.CodeLocation("b", "flink-app/new.zip"),
                                       settings, outs["AppRoleArn"], outs["AppLogGroupName"],
                                       progress=False, kda=stub_kda)
            stub.assert_no_pending_responses()

        # The log's error lines, read from the emulator's CloudWatch Logs.
        now = int(time.time() * 1000)
        cfg.client("logs").put_log_events(
            logGroupName=outs["AppLogGroupName"], logStreamName=cloud_app.LOG_STREAM,
            logEvents=[{"timestamp": now, "message": json.dumps(
                {"messageType": "ERROR", "message": "Job failed: Exception in ForestScorer"})},
                {"timestamp": now + 1, "message": json.dumps(
                    {"messageType": "INFO", "message": "checkpoint done"})}])
        lines = cloud_app.failure_logs(cfg, outs["AppLogGroupName"])
        assert lines == ["ERROR Job failed: Exception in ForestScorer"], lines
    finally:
        kda = cfg.client("kinesisanalyticsv2")
        # moto cannot delete applications; its in-memory state goes with the server.
        stack.delete(cfg, progress=False)


@pytest.mark.integration
@pytest.mark.skipif(not packaging.BUILT_JAR.exists(),
                    reason="the Kinesis connector jar is not built: org.apache.flink:"
                           "flink-sql-connector-aws-kinesis-streams is not served by the Maven "
                           "Central reachable here (see cloud/prove_kinesis_local.py)")
def test_job_reads_and_writes_kinesis_on_the_emulator():
    import subprocess
    import sys

    script = Path(packaging.CLOUD_DIR / "prove_kinesis_local.py")
    proc = subprocess.run([sys.executable, str(script), "--seconds", "240"],
                          capture_output=True, text=True, timeout=600)
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 0 and summary["score_rows"] > 0, summary
    assert summary["anomalies"] >= 1, summary
