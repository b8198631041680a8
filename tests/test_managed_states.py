"""The managed application as the service answers (issue 25): states that move with delays, a
start refused while UPDATING and waited out by the lab, snapshots taken at stop and restored
at a start with unchanged parameters, a fresh start (said so) when they changed.

The stand-in service (labhelpers.analytics.managed_service) is driven here without a JVM:
its process launcher and snapshot are replaced by recorders, so these are quick; the real
run is tests/test_aws_timeline.py and the rehearsal."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from labhelpers.analytics import managed, managed_service, managed_standin
from labhelpers.errors import AppError
from labhelpers.infra.config import LabConfig

NAME = "st25-analytics"
CREATED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _kda():
    return boto3.client("kinesisanalyticsv2", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", endpoint_url="http://127.0.0.1:1")


def _detail(status: str) -> dict:
    return {"ApplicationDetail": {
        "ApplicationARN": f"arn:aws:kinesisanalytics:us-east-1:123456789012:application/{NAME}",
        "ApplicationName": NAME, "RuntimeEnvironment": "FLINK-2_3",
        "ApplicationStatus": status, "ApplicationVersionId": 2, "CreateTimestamp": CREATED}}


def test_start_waits_until_updating_ends_then_restores(tmp_path):
    """A deploy leaves the app UPDATING; the service refuses a start then. The lab waits."""
    cfg = LabConfig(home=tmp_path, prefix="st25")
    kda = _kda()
    stub = Stubber(kda)
    for state in ("UPDATING", "UPDATING", "READY"):
        stub.add_response("describe_application", _detail(state), {"ApplicationName": NAME})
    stub.add_response("start_application", {}, {
        "ApplicationName": NAME,
        "RunConfiguration": {
            "FlinkRunConfiguration": {"AllowNonRestoredState": True},
            "ApplicationRestoreConfiguration": {
                "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}}})
    for state in ("STARTING", "RUNNING", "RUNNING"):
        stub.add_response("describe_application", _detail(state), {"ApplicationName": NAME})
    with stub:
        st = managed.start(cfg, kda=kda, poll=0.01, progress=False)
    stub.assert_no_pending_responses()
    assert st["status"] == "RUNNING"


def test_start_fresh_skips_the_snapshot(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25")
    kda = _kda()
    stub = Stubber(kda)
    stub.add_response("describe_application", _detail("READY"), {"ApplicationName": NAME})
    stub.add_response("start_application", {}, {
        "ApplicationName": NAME,
        "RunConfiguration": {
            "FlinkRunConfiguration": {"AllowNonRestoredState": True},
            "ApplicationRestoreConfiguration": {
                "ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}}})
    stub.add_response("describe_application", _detail("READY"), {"ApplicationName": NAME})
    with stub:
        managed.start(cfg, kda=kda, wait=False, progress=False, restore=False)
    stub.assert_no_pending_responses()


# ---------------------------------------------------------------- the stand-in service
class _Fake:
    """What the stand-in service launches, recorded instead of run."""

    def __init__(self) -> None:
        self.running = False
        self.launches: list[str | None] = []
        self.snapshots = 0

    def install(self, monkeypatch, kda: managed_service.StandinKda, tmp_path) -> None:
        fake = self

        class Proc:
            @property
            def running(self):
                return fake.running

            def write_state(self, **kw):
                pass

        def launch(cfg, zip_path, groups, *, endpoint=None, restore=None):
            fake.running = True
            fake.launches.append(restore)
            return 1

        def snapshot(cfg, target, timeout=120):
            fake.snapshots += 1
            return f"file:{target}/savepoint-{fake.snapshots}"

        def stop(cfg, timeout=20, progress=True):
            was, fake.running = fake.running, False
            return was

        monkeypatch.setattr(managed_standin, "launch", launch)
        monkeypatch.setattr(managed_standin, "submitted_job",
                            lambda cfg: "job1" if fake.running else None)
        monkeypatch.setattr(managed_standin, "process", lambda cfg: Proc())
        monkeypatch.setattr(managed_standin, "take_snapshot", snapshot)
        monkeypatch.setattr(managed_standin, "stop", stop)
        zip_path = tmp_path / "code.zip"
        zip_path.write_bytes(b"zip")
        monkeypatch.setattr(kda, "fetch_code", lambda code: zip_path)


PROPS = [{"PropertyGroupId": "lab.sql", "PropertyMap": {"window_seconds": "10"}}]


def _create(kda, snapshots=True) -> None:
    kda.create_application(
        ApplicationName=NAME, RuntimeEnvironment="FLINK-2_3",
        ServiceExecutionRole="arn:aws:iam::123456789012:role/r", ApplicationMode="STREAMING",
        ApplicationConfiguration={
            "ApplicationCodeConfiguration": {
                "CodeContent": {"S3ContentLocation": {"BucketARN": "arn:aws:s3:::b",
                                                      "FileKey": "k.zip"}},
                "CodeContentType": "ZIPFILE"},
            "EnvironmentProperties": {"PropertyGroups": PROPS},
            "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": snapshots}})


def _state(kda) -> str:
    return kda.describe_application(ApplicationName=NAME)["ApplicationDetail"][
        "ApplicationStatus"]


def _until(kda, state: str, timeout: float = 5) -> float:
    t0 = time.monotonic()
    while _state(kda) != state:
        assert time.monotonic() - t0 < timeout, f"still {_state(kda)}, not {state}"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_standin_states_move_with_delays_and_refuse_as_aws(monkeypatch, tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25")
    kda = managed_service.StandinKda(cfg, endpoint="http://127.0.0.1:1", delays={
        "STARTING": 0.8, "UPDATING": 0.8, "STOPPING": 0.8, "DELETING": 0.8})
    fake = _Fake()
    fake.install(monkeypatch, kda, tmp_path)
    _create(kda)
    assert _state(kda) == "READY"
    kda.update_application(ApplicationName=NAME, CurrentApplicationVersionId=1,
                           ApplicationConfigurationUpdate={
                               "EnvironmentPropertyUpdates": {"PropertyGroups": PROPS}})
    assert _state(kda) == "UPDATING"
    with pytest.raises(ClientError) as err:
        kda.start_application(ApplicationName=NAME)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert _until(kda, "READY") >= 0.3, "UPDATING lasts a while"
    kda.start_application(ApplicationName=NAME, RunConfiguration={
        "ApplicationRestoreConfiguration": {"ApplicationRestoreType":
                                            "RESTORE_FROM_LATEST_SNAPSHOT"}})
    assert _state(kda) == "STARTING"
    _until(kda, "RUNNING")
    kda.stop_application(ApplicationName=NAME)
    assert _state(kda) == "STOPPING" and fake.snapshots == 1 and not fake.running
    _until(kda, "READY")
    kda.start_application(ApplicationName=NAME, RunConfiguration={
        "ApplicationRestoreConfiguration": {"ApplicationRestoreType":
                                            "RESTORE_FROM_LATEST_SNAPSHOT"}})
    assert fake.launches[-1] and fake.launches[-1].endswith("savepoint-1"), fake.launches
    _until(kda, "RUNNING")
    snaps = kda.list_application_snapshots(ApplicationName=NAME)["SnapshotSummaries"]
    assert len(snaps) == 1
    with pytest.raises(ClientError):  # the model checks parameters as botocore does
        kda.start_application(ApplicationName=NAME, RunConfiguration={"Nope": 1})
    kda.stop_application(ApplicationName=NAME, Force=True)
    _until(kda, "READY")
    detail = kda.describe_application(ApplicationName=NAME)["ApplicationDetail"]
    kda.delete_application(ApplicationName=NAME, CreateTimestamp=detail["CreateTimestamp"])
    assert _state(kda) == "DELETING"
    time.sleep(1.0)
    with pytest.raises(ClientError) as err:
        kda.describe_application(ApplicationName=NAME)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_deploy_restores_with_unchanged_parameters_and_says_fresh_when_changed(
        monkeypatch, tmp_path, capsys):
    """As the local app: same parameters resume from the snapshot; changed ones start fresh,
    saying which changed."""
    from labhelpers.analytics import packaging
    from labhelpers.infra import credentials, stack

    cfg = LabConfig(home=tmp_path, prefix="st25", backend="aws", emulated=True,
                    emulator_port=1999)
    kda = managed_service.StandinKda(cfg, delays={k: 0.05 for k in managed_service.DELAYS})
    fake = _Fake()
    fake.install(monkeypatch, kda, tmp_path)
    outs = {"InputStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/st25-clicks",
            "ScoresStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/st25-scores",
            "DeadLetterStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/st25-dl",
            "AppRoleArn": "arn:aws:iam::123456789012:role/st25-app",
            "AppLogGroupName": "/aws/kinesis-analytics/st25"}
    monkeypatch.setattr(credentials, "check", lambda cfg: None)
    monkeypatch.setattr(stack, "outputs", lambda cfg: outs)
    monkeypatch.setattr(packaging, "upload", lambda cfg, path: ("b", "k.zip"))
    monkeypatch.setattr(managed, "ensure_log_stream", lambda *a, **k: "arn:log")
    zip_path = tmp_path / "code.zip"
    kw = {"kda": kda, "poll": 0.02, "start_position": "TRIM_HORIZON"}
    managed.deploy(cfg, zip_path, {"threshold": 3.0}, **kw)
    assert fake.launches == [None]
    managed.stop(cfg, kda=kda, poll=0.02)
    assert fake.snapshots == 1
    capsys.readouterr()
    managed.deploy(cfg, zip_path, {"threshold": 3.0}, **kw)
    assert fake.launches[-1] and fake.launches[-1].endswith("savepoint-1"), \
        "unchanged parameters: restored from the latest snapshot"
    out = capsys.readouterr().out
    assert "already" not in out and "from its latest snapshot" in out, out
    managed.deploy(cfg, zip_path, {"threshold": 3.0}, **kw)
    assert "already running with these parameters" in capsys.readouterr().out
    managed.deploy(cfg, zip_path, {"threshold": 4.0}, **kw)
    said = capsys.readouterr().out
    assert "threshold 3.0 -> 4.0" in said and "starts fresh" in said, said
    assert fake.launches[-1] is None, "changed parameters: no snapshot restored"
    assert fake.snapshots == 2, "the running app was stopped (with a snapshot) first"
    assert managed.current_params(cfg, kda=kda).forest.threshold == 4.0


def test_the_application_is_created_with_snapshots(monkeypatch, tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25")
    sent = {}

    class Kda:
        def create_application(self, **kw):
            sent.update(kw)

        def describe_application(self, **kw):
            if not sent:
                raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "x")
            return _detail("READY")

    monkeypatch.setattr(managed, "ensure_log_stream", lambda *a, **k: "arn:log")
    from labhelpers.job.pipeline import JobSettings

    settings = JobSettings(input_connector={"connector": "kinesis"},
                           scores_connector={"connector": "kinesis"},
                           dead_letter_connector={"connector": "kinesis"})
    managed.create_or_update(cfg, managed.CodeLocation("b", "k"), settings, "arn:role", "g",
                             runtime="FLINK-2_3", kda=Kda(), progress=False)
    assert sent["ApplicationConfiguration"]["ApplicationSnapshotConfiguration"] == {
        "SnapshotsEnabled": True}


def test_a_refused_start_is_an_app_error_with_the_fix(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25")
    kda = _kda()
    stub = Stubber(kda)
    stub.add_response("describe_application", _detail("READY"), {"ApplicationName": NAME})
    stub.add_client_error("start_application", service_error_code="ResourceInUseException",
                          http_status_code=400)
    with stub, pytest.raises(AppError, match="READY"):
        managed.start(cfg, kda=kda, wait=False, progress=False)


# ---------------------------------------------------------------- a clean-up without a bill
def test_a_failed_delete_says_what_still_runs_its_cost_and_the_command(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25")
    kda = _kda()
    stub = Stubber(kda)
    stub.add_response("describe_application", _detail("RUNNING"), {"ApplicationName": NAME})
    stub.add_response("describe_application", _detail("RUNNING"), {"ApplicationName": NAME})
    stub.add_client_error("stop_application", service_error_code="AccessDeniedException",
                          http_status_code=400)
    stub.add_response("describe_application", _detail("RUNNING"), {"ApplicationName": NAME})
    with stub, pytest.raises(AppError) as err:
        managed.delete(cfg, kda=kda, poll=0.01, progress=False)
    text = str(err.value)
    assert f"{NAME} still exists (RUNNING)" in text, text
    assert "an hour" in text and "$0.2" in text, text
    assert "managed-app stop --force" in text, text


def test_cleanup_keeps_the_stack_while_the_app_cannot_be_deleted(monkeypatch, tmp_path, capsys):
    from labhelpers.infra import emulator, inventory, stack
    from labhelpers.run import cleanup as cleanup_mod

    cfg = LabConfig(home=tmp_path, prefix="st25", backend="aws")
    deleted = []

    class Lab:
        runs_emulator = False

        def delete_app(self):
            raise AppError("Stopping the application st25-analytics failed; the analytics "
                           "application st25-analytics still exists (RUNNING) and bills about "
                           "$0.22 an hour", "run the command above")

    monkeypatch.setattr(cleanup_mod, "for_config", lambda cfg: Lab())
    monkeypatch.setattr(cleanup_mod, "_stop_traffic", lambda cfg: (False, None))
    monkeypatch.setattr(stack, "delete", lambda cfg, progress=True: deleted.append(cfg))
    monkeypatch.setattr(emulator, "stop", lambda cfg: deleted.append("emulator"))
    monkeypatch.setattr(inventory, "leftovers", lambda cfg: ["st25-clicks"])
    (tmp_path / "st25").mkdir()
    report = cleanup_mod.cleanup(cfg)
    assert deleted == [], "the stack must stay while the app may still run"
    assert report["stack_deleted"] is False and report["leftovers"] == ["st25-clicks"]
    assert any("$0.22 an hour" in n for n in report["notes"]), report["notes"]
    assert (tmp_path / "st25").is_dir(), "the app's local state is kept for the next try"
    assert "$0.22 an hour" in capsys.readouterr().out


def test_a_region_without_the_runtime_is_one_sentence_naming_others(monkeypatch, tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="st25", region="eu-south-2")
    kda = _kda()
    stub = Stubber(kda)
    stub.add_client_error("describe_application", service_error_code="ResourceNotFoundException",
                          http_status_code=400)
    stub.add_client_error("create_application", service_error_code="InvalidArgumentException",
                          service_message="Runtime FLINK-2_3 is not supported in this region",
                          http_status_code=400)
    monkeypatch.setattr(managed, "ensure_log_stream", lambda *a, **k: "arn:log")
    from labhelpers.job.pipeline import JobSettings

    settings = JobSettings(input_connector={"connector": "kinesis"},
                           scores_connector={"connector": "kinesis"},
                           dead_letter_connector={"connector": "kinesis"})
    with stub, pytest.raises(AppError) as err:
        managed.create_or_update(cfg, managed.CodeLocation("b", "k"), settings, "arn:role",
                                 "g", runtime="FLINK-2_3", kda=kda, progress=False)
    text = str(err.value)
    assert "eu-south-2 does not offer the managed runtime FLINK-2_3 (Apache Flink 2.3)" in text
    assert "eu-west-1" in text or "eu-central-1" in text, text


def test_a_savepoint_is_found_on_disk_when_the_job_closes_before_its_last_poll(tmp_path):
    """On an idle machine the stand-in's mini-cluster can close (the job stopped with its
    savepoint) before the status poll: the savepoint on disk, complete, is the answer."""
    from labhelpers.analytics.managed_standin import _completed_savepoint

    assert _completed_savepoint(tmp_path) is None
    (tmp_path / "savepoint-half").mkdir()  # Flink writes _metadata last
    assert _completed_savepoint(tmp_path) is None
    (tmp_path / "savepoint-done").mkdir()
    (tmp_path / "savepoint-done" / "_metadata").write_bytes(b"x")
    assert _completed_savepoint(tmp_path) == (tmp_path / "savepoint-done").resolve().as_uri()
