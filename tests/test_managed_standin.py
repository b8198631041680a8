"""The managed-service stand-in (labhelpers.analytics.managed_standin) without a JVM: the
environment it gives the packaged app, the properties it hands over, and what it says when the
app dies at start. The run itself (Kinesis in and out through the real connector) is
tests/test_aws_rehearsal.py (the job reads and writes Kinesis on the emulator)."""

from __future__ import annotations

import json
import shutil
import site
import zipfile
from pathlib import Path

import pytest

from labhelpers.analytics import managed_config as cloud_app
from labhelpers.analytics import managed_standin
from labhelpers.errors import AppError
from labhelpers.infra.config import REPO_ROOT, LabConfig
from tests.test_packaging import installed_krcf_wheel, standin_jar

OUTPUTS = {
    "InputStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/sb-clicks",
    "ScoresStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/sb-scores",
    "DeadLetterStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/sb-dead-letters",
}


@pytest.fixture(scope="module")
def app_zip(tmp_path_factory) -> Path:
    from labhelpers.analytics import packaging

    tmp = tmp_path_factory.mktemp("standin")
    return packaging.build_zip(standin_jar(tmp / "c.jar"), [installed_krcf_wheel(tmp)],
                               out=tmp / "app.zip")


def test_environment_finds_pemja_and_the_zips_code_not_the_repos(tmp_path):
    dep = tmp_path / "app" / "dep"
    env = managed_standin.standin_env(tmp_path, dep)
    paths = env["PYTHONPATH"].split(":")
    assert paths[0] == str(dep), "the zip's code first"
    assert str(REPO_ROOT) not in paths, "the repository's labhelpers must not stand in for it"
    assert any(Path(p, "pemja").exists() for p in site.getsitepackages() if p in paths), (
        "thread mode's embedded interpreter needs site-packages (pemja) on PYTHONPATH")
    assert "-Daws.cborEnabled=false" in env["JVM_ARGS"] and "-Xmx1g" in env["JVM_ARGS"]
    assert env["FLINK_LOG_DIR"] == str(tmp_path / "log")


def _broken(app_zip: Path, tmp_path: Path, main: str) -> Path:
    out = tmp_path / "broken.zip"
    with zipfile.ZipFile(app_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = main.encode() if item.filename == "main.py" else src.read(item.filename)
            dst.writestr(item, data)
    return out


def test_exit_at_start_shows_flink_log_errors(app_zip, tmp_path):
    """A worker's ModuleNotFoundError is only in Flink's own log: it must be in the message."""
    cfg = LabConfig(home=tmp_path, prefix="sbtest")
    main = (
        "import os, pathlib, sys\n"
        "log = pathlib.Path(os.environ['FLINK_LOG_DIR']) / 'flink-python.log'\n"
        "log.write_text('2026-12-01 10:00:00,000 INFO  x [] - Hadoop: NoClassDefFoundError\\n'\n"
        "               '2026-12-01 10:00:01,000 ERROR x [] - worker failed\\n'\n"
        "               \"ModuleNotFoundError: No module named 'pemja'\\n\")\n"
        "print('properties', sys.argv[2], flush=True)\n"
        "sys.exit(3)\n")
    with pytest.raises(AppError) as err:
        managed_standin.start(cfg, _broken(app_zip, tmp_path, main), OUTPUTS,
                              endpoint="http://127.0.0.1:4999", progress=False, wait_seconds=60)
    text = str(err.value)
    assert "it exited with code 3" in text and "No module named 'pemja'" in text, text
    assert "worker failed" in text and "Hadoop" not in text, "INFO noise is left out"
    assert managed_standin.status(cfg)["running"] is False
    # The properties handed over are the service's groups, pointed at the emulator.
    props = json.loads((managed_standin.standin_dir(cfg) / "application_properties.json")
                       .read_text())
    by_id = {g["PropertyGroupId"]: g["PropertyMap"] for g in props}
    run = by_id[cloud_app.RUN_OPTIONS_GROUP]
    assert run == {"python": "main.py", "jarfile": "lib/pyflink-dependencies.jar",
                   "pyFiles": "dep/"}
    source = by_id["lab.connector.input"]
    assert source["stream.arn"] == OUTPUTS["InputStreamArn"]
    assert source["aws.endpoint"] == "http://127.0.0.1:4999"
    assert source["aws.http.protocol.version"] == "HTTP1_1"
    interval = source["source.shard.discovery.interval"]
    assert interval.endswith("s") and int(interval[:-1]) >= 30, (
        "a busy machine's slow first shard discovery must not race the periodic one "
        "(the connector's default is 10 s)")
    jar = managed_standin.standin_dir(cfg) / "app" / "lib" / "pyflink-dependencies.jar"
    assert by_id["lab.runtime"]["pipeline.jars"] == jar.resolve().as_uri()
    assert by_id["lab.runtime"]["python.execution-mode"] == "thread"


def test_never_points_the_connector_at_aws(app_zip, tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="sbtest", backend="aws")
    with pytest.raises(AppError, match="loopback emulator endpoint"):
        managed_standin.start(cfg, app_zip, OUTPUTS, progress=False)
    shutil.rmtree(managed_standin.standin_dir(cfg), ignore_errors=True)
