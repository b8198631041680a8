"""The emulator's services: the one list, the placeholders, only the listed services answer,
LAB_EMULATOR_SERVICES=all loads every one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from labhelpers.errors import EmulatorError
from labhelpers.infra import emulator, emulator_services
from labhelpers.infra.config import LabConfig


def test_the_list_and_all():
    assert emulator_services.selected(None) == emulator_services.SERVICES
    assert emulator_services.selected("") == emulator_services.SERVICES
    assert emulator_services.selected("ALL") is None, "'all' must mean every service"
    assert emulator_services.selected("s3, sqs") == ("s3", "sqs")
    with pytest.raises(ValueError, match="ec2 not served.*'all'"):
        emulator_services.selected("s3,ec2")


def test_the_lab_services_are_never_placeholders():
    stubbed = emulator_services.placeholders(emulator_services.SERVICES)
    assert {"ec2", "rds", "sagemaker", "redshift"} <= stubbed, stubbed
    used = emulator_services.moto_backends(emulator_services.SERVICES)
    assert not stubbed & used, f"a service the lab uses is replaced: {stubbed & used}"
    assert emulator_services.placeholders(None) == frozenset(), "'all' replaces nothing"


def test_restrict_replaces_what_cloudformation_imports_by_placeholders():
    code = ("from labhelpers.infra import emulator_services as s\n"
            "s.restrict(s.SERVICES)\n"
            "import moto.cloudformation.models, moto.kinesis.models\n"
            "import sys\n"
            "print(type(sys.modules['moto.ec2']).__name__, "
            "type(sys.modules['moto.kinesis']).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["_Placeholder", "module"], out.stdout


def test_a_wrong_name_is_an_error_with_the_fix(tmp_path, free_port, monkeypatch):
    monkeypatch.setenv(emulator_services.ENV, "s3,ec2")
    with pytest.raises(EmulatorError, match="LAB_EMULATOR_SERVICES"):
        emulator.start(LabConfig(home=tmp_path, emulator_port=free_port))


@pytest.mark.integration
def test_only_the_listed_services_answer(emulator_cfg):
    cfg = emulator_cfg
    assert cfg.client("kinesis").list_streams()["StreamNames"] is not None
    assert "Buckets" in cfg.client("s3").list_buckets()
    with pytest.raises(ClientError) as err:
        cfg.client("dynamodb").list_tables()
    text = str(err.value)
    assert "ServiceNotLoaded" in text and "LAB_EMULATOR_SERVICES=all" in text, text


@pytest.mark.integration
def test_all_loads_every_service(tmp_path, free_port, monkeypatch):
    monkeypatch.setenv(emulator_services.ENV, "all")
    cfg = LabConfig(home=tmp_path, emulator_port=free_port)
    emulator.start(cfg, warm_up=False)
    try:
        assert cfg.client("dynamodb").list_tables()["TableNames"] == []
        assert cfg.client("ec2").describe_regions()["Regions"], "ec2 must answer with 'all'"
    finally:
        emulator.stop(cfg)
