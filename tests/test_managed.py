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
import botocore.session  # noqa: F401  (botocore.session.get_session below)
import pytest
from botocore.stub import ANY, Stubber

from labhelpers.analytics import managed as cloud_app
from labhelpers.analytics import managed_config, packaging
from labhelpers.errors import AppError
from labhelpers.infra import inventory, stack
from labhelpers.infra.config import LabConfig
from labhelpers.job.pipeline import JobSettings
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
def test_runtime_follows_the_installed_flink_not_the_newest_listed(monkeypatch):
    import importlib.metadata as md

    flink = md.version("apache-flink")
    major, minor = flink.split(".")[:2]
    assert managed_config.flink_runtime() == f"FLINK-{major}_{minor}", "FLINK-2_3 for 2.3.x"
    assert managed_config.flink_runtime("2.2.1") == "FLINK-2_2"
    # A newer runtime in botocore's list is not taken: the job is tested on this PyFlink.
    monkeypatch.setattr(managed_config, "_listed_runtimes", lambda: ["FLINK-1_20", "FLINK-2_3",
                                                                 "FLINK-2_4"])
    assert managed_config.flink_runtime("2.3.0") == "FLINK-2_3"
    assert managed_config.newest_runtime() == "FLINK-2_4"
    # An old botocore that does not know it: say to upgrade, never fall back to Flink 1.x.
    monkeypatch.setattr(managed_config, "_listed_runtimes", lambda: ["FLINK-1_19", "FLINK-1_20"])
    with pytest.raises(AppError, match="does not know the managed runtime FLINK-2_3") as err:
        managed_config.flink_runtime("2.3.0")
    assert "pip install -U boto3 botocore" in str(err.value)


def test_botocore_floor_is_the_first_release_that_knows_the_runtime():
    """pyproject.toml's floor knows FLINK-2_3 (checked by hand: botocore 1.43.50 lists up to
    FLINK-2_2, 1.43.51 adds FLINK-2_3); the installed botocore is at least that."""
    import tomllib

    import botocore

    from labhelpers.infra.config import REPO_ROOT

    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "boto3>=1.43.51" in deps and "botocore>=1.43.51" in deps, deps
    installed = tuple(int(x) for x in botocore.__version__.split(".")[:3])
    assert installed >= (1, 43, 51), botocore.__version__
    enum = botocore.session.get_session().get_service_model(
        "kinesisanalyticsv2").shape_for("RuntimeEnvironment").enum
    assert managed_config.flink_runtime() in enum


def test_cloud_settings_configure_nothing_in_code_beyond_the_allow_list():
    """On the service the job's lab.runtime group is empty: parallelism comes from the
    application's ParallelismConfiguration, not from code."""
    settings = cloud_app.cloud_settings(LabConfig(), ARNS)
    assert settings.runtime == {}
    groups = {g["PropertyGroupId"] for g in cloud_app.application_properties(settings)}
    assert "lab.runtime" not in groups, "an empty group is left out (the service rejects it)"
    conf = cloud_app._flink_config(cloud_app.PARALLELISM)
    assert conf["ParallelismConfiguration"]["Parallelism"] == 1


@pytest.mark.integration
def test_job_sets_only_allow_listed_configuration_keys_in_code(tmp_path):
    """Builds the job graph as on the service (cloud settings: no lab.runtime group) and lists
    every configuration key the job changed, in the stream environment and the table config.
    PyFlink itself sets a few keys in any Python job (python.executable, the planner's
    __table.query-start...__): those are found with a minimal job that configures nothing and
    left out. Every other key must be on the service's allow-list."""
    import subprocess
    import sys

    from labhelpers.flinkenv import java_env
    from labhelpers.job.pipeline import filesystem_sink, filesystem_source

    settings = JobSettings(
        input_connector=filesystem_source(tmp_path / "in", continuous=True),
        scores_connector=filesystem_sink(tmp_path / "scores"),
        dead_letter_connector=filesystem_sink(tmp_path / "dead"))
    props = tmp_path / "props.json"
    props.write_text(json.dumps(settings.to_properties()))
    code = (
        "import json, sys\n"
        "from pyflink.common import Types\n"
        "from pyflink.datastream import StreamExecutionEnvironment\n"
        "from pyflink.table import StreamTableEnvironment\n"
        "from labhelpers.job import pipeline as job\n"
        "def conf(env):\n"
        "    j = env._j_stream_execution_environment.getConfiguration().toMap()\n"
        "    return {k: j.get(k) for k in j.keySet()}\n"
        "base = conf(StreamExecutionEnvironment.get_execution_environment())\n"
        "made = []\n"
        "real_create = StreamTableEnvironment.create\n"
        "def create(env, *a, **k):\n"
        "    t = real_create(env, *a, **k); made.append((env, t)); return t\n"
        "StreamTableEnvironment.create = staticmethod(create)\n"
        "def changed(env, t):\n"
        "    after = conf(env)\n"
        "    keys = {k for k, v in after.items() if base.get(k) != v}\n"
        "    return keys | set(t.get_config().get_configuration().to_dict())\n"
        "env = StreamExecutionEnvironment.get_execution_environment()\n"
        "t = StreamTableEnvironment.create(env)\n"
        "t.execute_sql(\"CREATE TABLE x (a STRING) WITH ('connector' = 'datagen')\")\n"
        "ds = t.to_data_stream(t.from_path('x')).key_by(lambda r: r[0])\n"
        "ds = ds.map(lambda r: r[0], output_type=Types.STRING())\n"
        "t.create_statement_set().add_insert_sql('INSERT INTO x SELECT a FROM x')\n"
        "pyflink_own = changed(*made[-1])\n"
        "job.build(job.JobSettings.from_properties(json.load(open(sys.argv[1]))))\n"
        "print(json.dumps({'job': sorted(changed(*made[-1])), 'pyflink': sorted(pyflink_own)}))\n"
    )
    env = java_env()
    env["PYTHONPATH"] = str(Path(cloud_app.__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-c", code, str(props)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    keys = set(found["job"]) - set(found["pyflink"])
    assert "table.local-time-zone" in keys, found
    outside = sorted(keys - managed_config.PROGRAMMATIC_CONFIG_ALLOWED)
    assert outside == [], (f"the job sets {outside} in code; the managed service (Flink 2.2+) "
                           "throws on keys outside its allow-list")


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
    opts = managed_config.kinesis_sink(ARNS["ScoresStreamArn"], "us-east-1",
                                  endpoint="http://127.0.0.1:4599",
                                  credentials={"aws_access_key_id": "testing",
                                               "aws_secret_access_key": "testing"})
    assert opts["aws.endpoint"] == "http://127.0.0.1:4599"
    assert opts["aws.http.protocol.version"] == "HTTP1_1", "emulators have no HTTP/2"
    assert opts["aws.credentials.provider"] == "BASIC"
    with pytest.raises(AppError, match="loopback") as err:
        managed_config.kinesis_source(ARNS["InputStreamArn"], "us-east-1",
                                 endpoint="https://kinesis.us-east-1.amazonaws.com",
                                 credentials={"aws_access_key_id": "A",
                                              "aws_secret_access_key": "B"})
    assert "role" in str(err.value)
    with pytest.raises(AppError, match="TRIM_HORIZON or LATEST"):
        managed_config.kinesis_source(ARNS["InputStreamArn"], "us-east-1",
                                      start_position="EARLIEST")
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
                    # a start restores the latest snapshot, as the local app its checkpoint
                    "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}}})
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
    assert "managed.deploy" in str(err.value)


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
        assert detail["RuntimeEnvironment"] == managed_config.flink_runtime() == "FLINK-2_3"
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
