"""Credential and region checks: each failure is one clear sentence plus what to run.

No test reaches AWS: the environment is emptied of real credentials and config files, the
instance metadata service is off, and calls go to botocore's Stubber or the emulator.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from labhelpers.infra import credentials
from labhelpers.infra.config import LabConfig
from labhelpers.infra.credentials import CredentialsError
from tests.aws_env import aws_cfg_on_emulator, isolate_from_aws


class _StubbedSession:
    """Stands in for cfg.session(): hands out clients wired to one Stubber each."""

    def __init__(self, errors: dict[str, tuple[str, str]]):
        self.stubs = []
        self.errors = errors

    def client(self, service, endpoint_url=None):
        client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x", endpoint_url="http://127.0.0.1:1")
        stub = Stubber(client)
        if service == "sts":
            if "sts" in self.errors:
                code, msg = self.errors["sts"]
                stub.add_client_error("get_caller_identity", service_error_code=code,
                                      service_message=msg, http_status_code=403)
            else:
                stub.add_response("get_caller_identity", {
                    "Account": "123456789012", "UserId": "AIDEXAMPLE",
                    "Arn": "arn:aws:iam::123456789012:user/student"})
        stub.activate()
        self.stubs.append(stub)
        return client


def _aws_cfg(monkeypatch, tmp_path, **kw) -> LabConfig:
    isolate_from_aws(monkeypatch, tmp_path)
    return LabConfig(backend="aws", home=tmp_path, **kw)


@pytest.mark.parametrize("code, words", [
    ("ExpiredToken", "has expired"),
    ("InvalidClientTokenId", "rejected the credentials"),
])
def test_expired_or_invalid_credentials(monkeypatch, tmp_path, code, words):
    cfg = _aws_cfg(monkeypatch, tmp_path, profile=None)
    monkeypatch.setattr(LabConfig, "session", lambda self: _StubbedSession(
        {"sts": (code, "The security token included in the request is expired")}))
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    assert words in str(err.value) and code in str(err.value)
    assert "aws sso login" in str(err.value) and "aws configure" in str(err.value)


def test_unknown_profile(monkeypatch, tmp_path):
    cfg = _aws_cfg(monkeypatch, tmp_path, profile="no-such-profile")
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    assert "'no-such-profile' is not configured" in str(err.value)
    assert "aws configure --profile no-such-profile" in str(err.value)


def test_no_credentials_at_all(monkeypatch, tmp_path):
    cfg = _aws_cfg(monkeypatch, tmp_path)
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    assert "No usable AWS credentials" in str(err.value)
    assert "local backend needs no account" in str(err.value)


def test_region_typo_is_caught_before_any_call(monkeypatch, tmp_path):
    cfg = _aws_cfg(monkeypatch, tmp_path, region="us-east-9")
    monkeypatch.setattr(LabConfig, "session", lambda self: pytest.fail("no call expected"))
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    assert "'us-east-9' does not offer" in str(err.value) and "LAB_REGION" in str(err.value)


def test_region_without_the_service_endpoint(monkeypatch, tmp_path):
    from botocore.exceptions import EndpointConnectionError

    cfg = _aws_cfg(monkeypatch, tmp_path)

    class _Session(_StubbedSession):
        def client(self, service, endpoint_url=None):
            if service == "kinesisanalyticsv2":
                class _Down:
                    def list_applications(self, **kw):
                        raise EndpointConnectionError(
                            endpoint_url="https://kinesisanalytics.xx.amazonaws.com")
                return _Down()
            return super().client(service, endpoint_url)

    monkeypatch.setattr(LabConfig, "session", lambda self: _Session({}))
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    assert "does not answer for kinesisanalyticsv2" in str(err.value)
    assert "choose a region with Managed Service for Apache Flink" in str(err.value)


def test_local_backend_needs_nothing(tmp_path):
    cfg = LabConfig(home=tmp_path)
    assert credentials.check(cfg)["account"] == "123456789012"


@pytest.mark.integration
def test_good_credentials_on_the_emulator(emulator_cfg, monkeypatch, tmp_path, capsys):
    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testcreds")
    info = credentials.check(cfg)
    assert info == {"account": "123456789012", "region": cfg.region, "profile": None}
    assert "testing" not in capsys.readouterr().out, "keys are never printed"
