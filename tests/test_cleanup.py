"""Cleanup: everything with the prefix goes, twice is harmless, local files are removed."""

from __future__ import annotations

import json

import pytest

from labhelpers.infra import emulator, stack
from labhelpers.infra.config import LabConfig
from labhelpers.run.cleanup import cleanup
from labhelpers.stream.log import StreamLogWriter


def test_without_emulator_only_local_files_go(tmp_path, free_port):
    cfg = LabConfig(home=tmp_path, emulator_port=free_port, prefix="testidle")
    StreamLogWriter(cfg.stream_dir(cfg.scores_stream)).append(['{"a": 1}'])
    keep = tmp_path / "otherlab" / "streams"
    keep.mkdir(parents=True)
    report = cleanup(cfg, progress=False)
    assert report["removed_files"] == [str(cfg.lab_dir)], report
    assert not cfg.lab_dir.exists(), "the prefix's local folder must be gone"
    assert keep.exists(), "another prefix's folder must stay"
    assert report["leftovers"] == [] and report["stack_deleted"] is False, report
    assert any("not running" in n for n in report["notes"]), report["notes"]
    again = cleanup(cfg, progress=False)
    assert again["removed_files"] == [] and again["emulator_stopped"] is False, again


@pytest.mark.integration
def test_cleanup_twice_leaves_nothing(emulator_cfg, capsys):
    cfg = emulator_cfg.with_(prefix="testclean")
    outs = stack.deploy(cfg, progress=False)
    s3 = cfg.client("s3")
    s3.put_object(Bucket=outs["RawBucketName"], Key="weblogs/raw/x.json.gz", Body=b"x")
    s3.put_object(Bucket=outs["ProcessedBucketName"], Key="anomalies/x.csv", Body=b"x")
    StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append([json.dumps({"site": "a"})])

    report = cleanup(cfg, stop_emulator=False)
    assert report["stack_deleted"] is True, report
    assert report["leftovers"] == [], f"resources left behind: {report['leftovers']}"
    assert report["tagged"] == [], f"still tagged with the prefix: {report['tagged']}"
    assert "nothing is left" in capsys.readouterr().out
    assert not cfg.lab_dir.exists(), "local stream logs must be removed"
    assert emulator.status(cfg)["running"], "stop_emulator=False keeps the shared emulator"

    again = cleanup(cfg, stop_emulator=False, progress=False)
    assert again["leftovers"] == [] and again["removed_files"] == [], again


@pytest.mark.integration
def test_cleanup_stops_its_emulator(tmp_path, free_port):
    cfg = LabConfig(home=tmp_path, emulator_port=free_port, prefix="testfull")
    emulator.start(cfg, warm_up=False)
    try:
        report = cleanup(cfg, progress=False)
    finally:
        emulator.stop(cfg)  # harmless if cleanup stopped it
    assert report["emulator_stopped"] is True, report
    assert emulator.status(cfg)["running"] is False
    assert report["leftovers"] == [], report


@pytest.mark.integration
def test_aws_cleanup_deletes_app_first_and_only_the_prefix(emulator_cfg, monkeypatch, tmp_path,
                                                          capsys):
    from labhelpers.analytics import managed as cloud_app
    from tests.aws_env import aws_cfg_on_emulator

    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testawsclean")
    monkeypatch.setattr(stack, "AWS_ONLY_OUTPUTS", ())  # the emulator skips Firehose
    monkeypatch.setattr(stack, "_poll_interval", lambda cfg: 0.2)
    outs = stack.deploy(cfg, progress=False)
    s3, sqs = cfg.client("s3"), cfg.client("sqs")
    raw = outs["RawBucketName"]
    s3.put_bucket_versioning(Bucket=raw, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2"):
        s3.put_object(Bucket=raw, Key="weblogs/raw/year=2026/a.json.gz", Body=body)
    s3.delete_object(Bucket=raw, Key="weblogs/raw/year=2026/a.json.gz")  # a delete marker
    # Not ours: another prefix, and a stream tagged with our prefix but not named with it.
    s3.create_bucket(Bucket="testkeep-raw-bucket")
    foreign = sqs.create_queue(QueueName="foreign-queue",
                               tags={"lab-prefix": cfg.prefix})["QueueUrl"]

    order: list[str] = []
    monkeypatch.setattr(cloud_app, "delete", lambda cfg, **kw: order.append("app") or True)
    real_delete = stack.delete
    monkeypatch.setattr(stack, "delete",
                        lambda cfg, progress=True: order.append("stack") or real_delete(
                            cfg, progress=progress))
    report = cleanup(cfg)
    assert order == ["app", "stack"], "the billed Flink app goes before the stack"
    assert report["app_stopped"] is True and report["stack_deleted"] is True, report
    assert report["leftovers"] == [], report["leftovers"]
    assert any(arn.endswith(":foreign-queue") for arn in report["tagged"]), (
        f"anything still tagged with the prefix is listed: {report['tagged']}")
    assert not any(cfg.prefix + "-" in arn for arn in report["tagged"]), report["tagged"]
    assert "still tagged" in capsys.readouterr().out
    assert s3.head_bucket(Bucket="testkeep-raw-bucket"), "another prefix is never touched"
    assert sqs.get_queue_url(QueueName="foreign-queue")["QueueUrl"] == foreign, (
        "a resource without the prefix in its name is listed, never deleted")
    again = cleanup(cfg, progress=False)
    assert again["leftovers"] == [] and order == ["app", "stack", "app", "stack"], again
    sqs.delete_queue(QueueUrl=foreign)
    s3.delete_bucket(Bucket="testkeep-raw-bucket")
