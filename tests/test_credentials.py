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

    def __init__(self, errors: dict[str, tuple[str, str]], denied: tuple[str, ...] = (),
                 arn: str = "arn:aws:iam::123456789012:user/student",
                 needs_mfa: tuple[str, ...] = ()):
        self.needs_mfa = needs_mfa
        self.stubs = []
        self.errors = errors
        self.denied = denied
        self.arn = arn
        self.simulated: list[dict] = []

    def client(self, service, endpoint_url=None, **kw):
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
                    "Account": "123456789012", "UserId": "AIDEXAMPLE", "Arn": self.arn})
        elif service in ("kinesisanalyticsv2", "firehose"):
            op = "list_applications" if service == "kinesisanalyticsv2" else (
                "list_delivery_streams")
            body = ({"ApplicationSummaries": []} if service == "kinesisanalyticsv2" else
                    {"DeliveryStreamNames": [], "HasMoreDeliveryStreams": False})
            if service in self.errors:
                code, msg = self.errors[service]
                stub.add_client_error(op, service_error_code=code, service_message=msg,
                                      http_status_code=400)
            else:
                stub.add_response(op, body)
        elif service == "iam":
            return _FakeIam(self)
        stub.activate()
        self.stubs.append(stub)
        return client


class _FakeIam:
    """IAM's policy simulator as it answers: per action, for the resources asked about. The
    caller may do everything except the session's ``denied`` actions, and only on the lab's
    own names (a least-privilege policy scoped to ``<prefix>-*``)."""

    def __init__(self, session: _StubbedSession) -> None:
        self.session = session

    def get_role(self, RoleName):  # noqa: N803  (boto3's argument names)
        return {"Role": {"Arn": f"arn:aws:iam::123456789012:role/lab/{RoleName}"}}

    def get_paginator(self, name):
        assert name == "simulate_principal_policy"
        return self

    def paginate(self, **params):
        from botocore.exceptions import ClientError

        if "iam" in self.session.errors:
            code, msg = self.session.errors["iam"]
            raise ClientError({"Error": {"Code": code, "Message": msg}},
                              "SimulatePrincipalPolicy")
        self.session.simulated.append(params)
        (resource,) = params["ResourceArns"]
        scoped = resource == "*" or "stublab" in resource
        results = []
        for action in params["ActionNames"]:
            ok = scoped and action not in self.session.denied
            result = {"EvalActionName": action, "EvalResourceName": resource,
                      "EvalDecision": "allowed" if ok else "implicitDeny"}
            if action in self.session.needs_mfa:
                result.update(EvalDecision="implicitDeny",
                              MissingContextValues=["aws:MultiFactorAuthPresent"])
            results.append(result)
        return [{"EvaluationResults": results, "IsTruncated": False}]


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


@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException"])
def test_missing_permission_is_named_before_anything_is_created(monkeypatch, tmp_path, code):
    cfg = _aws_cfg(monkeypatch, tmp_path, prefix="stublab")
    session = _StubbedSession({}, denied=("kinesis:CreateStream", "iam:PassRole"))
    monkeypatch.setattr(LabConfig, "session", lambda self: session)
    with pytest.raises(CredentialsError) as err:
        credentials.check(cfg)
    text = str(err.value)
    assert "may not perform kinesis:CreateStream, iam:PassRole in us-east-1" in text, text
    assert text.count(". Fix:") == 1 and "REQUIRED_ACTIONS" in text
    # One call refused later says the same in one sentence.
    from botocore.exceptions import ClientError

    refused = ClientError({"Error": {"Code": code, "Message": "not authorized"}}, "CreateStream")
    one = credentials.permission_error(cfg, refused, "kinesis:CreateStream")
    assert one is not None and "may not call kinesis:CreateStream in us-east-1" in str(one)
    other = ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "X")
    assert credentials.permission_error(cfg, other, "kinesis:CreateStream") is None


def test_assumed_role_is_simulated_as_its_role(monkeypatch, tmp_path):
    cfg = _aws_cfg(monkeypatch, tmp_path, prefix="stublab")
    session = _StubbedSession(
        {}, arn="arn:aws:sts::123456789012:assumed-role/Student/alice@example.com")
    monkeypatch.setattr(LabConfig, "session", lambda self: session)
    assert credentials.check(cfg)["account"] == "123456789012"
    assert session.simulated[0]["PolicySourceArn"] == "arn:aws:iam::123456789012:role/lab/Student"


def test_simulated_on_the_labs_own_resources(monkeypatch, tmp_path):
    """A policy scoped to the lab's names passes; one scoped elsewhere is reported; a result
    that needs MFA context the simulator lacks is no false alarm."""
    session = _StubbedSession({}, needs_mfa=("iam:CreateRole",))
    monkeypatch.setattr(LabConfig, "session", lambda self: session)
    assert credentials.check(_aws_cfg(monkeypatch, tmp_path, prefix="stublab"))["account"]
    asked = {a: p["ResourceArns"][0] for p in session.simulated for a in p["ActionNames"]}
    assert asked["kinesis:CreateStream"] == (
        "arn:aws:kinesis:us-east-1:123456789012:stream/stublab-clicks")
    assert asked["iam:PassRole"].startswith("arn:aws:iam::123456789012:role/stublab-stack-")
    assert asked["lambda:CreateEventSourceMapping"] == "*"
    assert set(asked) == set(credentials.REQUIRED_ACTIONS)
    other = _StubbedSession({})
    monkeypatch.setattr(LabConfig, "session", lambda self: other)
    with pytest.raises(CredentialsError, match="may not perform cloudformation:CreateStack"):
        credentials.check(_aws_cfg(monkeypatch, tmp_path, prefix="otherlab"))


def test_no_simulator_permission_is_not_an_error(monkeypatch, tmp_path):
    """Without iam:SimulatePrincipalPolicy nothing can be told in advance: no false alarm."""
    cfg = _aws_cfg(monkeypatch, tmp_path)
    session = _StubbedSession({"iam": ("AccessDenied", "not authorized to simulate")})
    monkeypatch.setattr(LabConfig, "session", lambda self: session)
    assert credentials.check(cfg)["account"] == "123456789012"


def test_probe_refused_says_which_service(monkeypatch, tmp_path):
    cfg = _aws_cfg(monkeypatch, tmp_path)
    session = _StubbedSession({"kinesisanalyticsv2": ("AccessDeniedException", "no")})
    monkeypatch.setattr(LabConfig, "session", lambda self: session)
    with pytest.raises(CredentialsError, match="may not use kinesisanalyticsv2 in us-east-1"):
        credentials.check(cfg)


def test_root_user_needs_no_simulation():
    assert credentials._policy_source("arn:aws:iam::123456789012:root") is None
    assert credentials._policy_source("arn:aws:iam::123456789012:user/a") == (
        "arn:aws:iam::123456789012:user/a")


def test_default_region_follows_the_aws_tools(monkeypatch, tmp_path):
    isolate_from_aws(monkeypatch, tmp_path)
    config = tmp_path / "config"
    config.write_text("[profile lab]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert credentials.default_region("lab") == "eu-west-1"
    assert credentials.default_region("missing") is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    assert credentials.default_region(None) == "ap-southeast-2"
