"""The stack: template checks, deploy twice, outputs, local inbox, delete twice, leftovers."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile

import pytest

from labhelpers import stack
from labhelpers.config import PREFIX_RE, LabConfig
from labhelpers.errors import StackError


def _template() -> dict:
    from cfnlint.decode import decode

    template, errors = decode(str(stack.TEMPLATE_FILE))
    assert not errors, errors
    return template


def test_alert_zip_has_handler_at_root_and_is_reproducible():
    data = stack.alert_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["alert_handler.py"], zf.namelist()
        assert zf.read("alert_handler.py") == stack.HANDLER_FILE.read_bytes()
    assert stack.alert_zip() == data, "same handler, same bytes (so no needless code update)"


def test_template_passes_cfn_lint():
    if shutil.which("cfn-lint", path=str(stack.Path(sys.executable).parent)) is None:
        pytest.skip("cfn-lint is not installed")
    proc = subprocess.run([str(stack.Path(sys.executable).parent / "cfn-lint"),
                           str(stack.TEMPLATE_FILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_template_shape():
    t = _template()
    assert t["Parameters"]["Prefix"]["AllowedPattern"] == PREFIX_RE.pattern
    assert set(stack.EXPECTED_OUTPUTS) <= set(t["Outputs"]), "outputs the notebooks read"
    assert all(o.get("Description") for o in t["Outputs"].values()), "every output explained"
    res = t["Resources"]
    assert res["AlertFunction"]["Properties"]["Runtime"] == "python3.12"
    assert res["AlertFunction"]["Properties"]["Handler"] == "alert_handler.handler"
    esm = res["ScoresToAlertFunction"]["Properties"]
    assert esm["BisectBatchOnFunctionError"] is True
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert res["EmailSubscription"]["Condition"] == "HasEmail"
    assert res["SmsSubscription"]["Condition"] == "HasPhone"
    for stmt in res["AlertFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"]:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        assert not any("*" in a for a in actions), f"wildcard action in {stmt['Sid']}"
    for name, body in res.items():
        if "Tags" in body.get("Properties", {}):
            tags = {t["Key"] for t in body["Properties"]["Tags"]}
            assert "lab-prefix" in tags, f"{name} lacks the lab-prefix tag"
    for name in ("RawBucket", "ProcessedBucket"):
        props = res[name]["Properties"]
        assert props["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
        assert props["BucketEncryption"], f"{name} must be encrypted"


def test_bad_contacts_are_rejected_before_anything_happens(tmp_path):
    cfg = LabConfig(home=tmp_path, emulator_port=1999)  # nothing runs there: not reached
    with pytest.raises(StackError, match=r"E\.164"):
        stack.deploy(cfg, phone="0123")
    with pytest.raises(StackError, match="e-mail"):
        stack.deploy(cfg, email="not-an-address")


def test_rollback_complete_says_delete_first(tmp_path, monkeypatch):
    cfg = LabConfig(home=tmp_path)
    monkeypatch.setattr(stack.emulator, "ensure_running", lambda cfg: None)
    monkeypatch.setattr(stack, "_describe", lambda cf, name: {"StackStatus": "ROLLBACK_COMPLETE"})
    with pytest.raises(StackError) as err:
        stack.deploy(cfg, progress=False)
    assert "ROLLBACK_COMPLETE" in str(err.value) and "labhelpers cleanup" in str(err.value)


@pytest.mark.integration
def test_outputs_before_deploy_says_how(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testnone")
    with pytest.raises(StackError) as err:
        stack.outputs(cfg)
    assert "not deployed" in str(err.value) and "labhelpers deploy" in str(err.value)


@pytest.mark.integration
def test_deploy_twice_then_delete_twice(emulator_cfg, capsys):
    cfg = emulator_cfg.with_(prefix="teststack")
    first = stack.deploy(cfg, email="student@example.com")
    assert first["InputStreamName"] == cfg.input_stream, first
    assert first["ScoresStreamName"] == cfg.scores_stream, first
    assert first["AlertTopicArn"].endswith(":" + cfg.topic_name), first
    assert first["RawBucketName"] == f"teststack-raw-{cfg.account_id}-{cfg.region}"
    assert "skips SNS subscriptions" in capsys.readouterr().out, "say why the inbox was made"

    second = stack.deploy(cfg)
    assert second == first, "deploying again changes nothing and still returns the outputs"
    assert stack.outputs(cfg) == first

    sns, sqs = cfg.client("sns"), cfg.client("sqs")
    subs = sns.list_subscriptions_by_topic(TopicArn=first["AlertTopicArn"])["Subscriptions"]
    sqs_subs = [s for s in subs if s["Protocol"] == "sqs"]
    assert len(sqs_subs) == 1, f"the inbox must be subscribed once, not per deploy: {subs}"
    attrs = sns.get_subscription_attributes(SubscriptionArn=sqs_subs[0]["SubscriptionArn"])
    assert attrs["Attributes"].get("RawMessageDelivery", "false") == "false"
    assert sqs.get_queue_url(QueueName=cfg.inbox_queue)["QueueUrl"]

    lam = cfg.client("lambda").get_function(FunctionName=first["AlertFunctionName"])
    env = lam["Configuration"]["Environment"]["Variables"]
    assert env == {"TOPIC_ARN": first["AlertTopicArn"],
                   "PROCESSED_BUCKET": first["ProcessedBucketName"]}, env

    s3 = cfg.client("s3")
    s3.put_object(Bucket=first["RawBucketName"], Key="weblogs/raw/a.json", Body=b"{}")
    s3.put_bucket_versioning(Bucket=first["ProcessedBucketName"],
                             VersioningConfiguration={"Status": "Enabled"})
    for body in (b"1", b"2"):  # two versions: both must go
        s3.put_object(Bucket=first["ProcessedBucketName"], Key="scores/x.jsonl", Body=body)

    # Something with another prefix in the same emulator must survive our delete.
    other = emulator_cfg.with_(prefix="testother")
    s3.create_bucket(Bucket=f"{other.prefix}-keep")

    left = stack.leftovers(cfg)
    assert any(cfg.stack_name in x for x in left) and any(cfg.inbox_queue in x for x in left)
    assert not any("testother" in x for x in left), "leftovers lists only our prefix"

    stack.delete(cfg)
    assert stack.leftovers(cfg) == [], "nothing with the prefix may be left"
    stack.delete(cfg)  # twice: harmless
    assert stack.leftovers(cfg) == []
    assert s3.head_bucket(Bucket="testother-keep"), "other prefixes are never touched"
    s3.delete_bucket(Bucket="testother-keep")
    with pytest.raises(StackError, match="not deployed"):
        stack.outputs(cfg)


@pytest.mark.integration
def test_update_changes_parameters(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testupdate")
    try:
        stack.deploy(cfg, progress=False)
        stack.deploy(cfg, phone="+14155550100", progress=False)
        params = {p["ParameterKey"]: p.get("ParameterValue") for p in cfg.client(
            "cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0][
            "Parameters"]}
        assert params["AlertPhone"] == "+14155550100", params
    finally:
        stack.delete(cfg, progress=False)
