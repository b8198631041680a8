"""Cleanup: everything with the prefix goes, twice is harmless, local files are removed."""

from __future__ import annotations

import json

import pytest

from labhelpers import emulator, stack
from labhelpers.cleanup import cleanup
from labhelpers.config import LabConfig
from labhelpers.streamlog import StreamLogWriter


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
