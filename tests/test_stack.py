"""The stack: template checks, deploy twice, outputs, local inbox, delete twice, leftovers."""

from __future__ import annotations

import io
import zipfile

import pytest

from labhelpers.errors import StackError
from labhelpers.infra import inventory, stack
from labhelpers.infra.config import PREFIX_RE, LabConfig


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


# Resource types that cannot carry tags (CloudFormation has no Tags property for them).
UNTAGGABLE = {"AWS::S3::BucketPolicy", "AWS::SNS::Subscription", "AWS::Logs::LogStream",
              "AWS::SQS::QueuePolicy"}


def _statements(role: dict) -> list[dict]:
    return [st for pol in role["Properties"]["Policies"]
            for st in pol["PolicyDocument"]["Statement"]]


def test_template_shape():
    t = _template()
    assert t["Parameters"]["Prefix"]["AllowedPattern"] == PREFIX_RE.pattern
    assert set(stack.EXPECTED_OUTPUTS) | set(stack.AWS_ONLY_OUTPUTS) <= set(t["Outputs"]), (
        "outputs the notebooks and cloud_app read")
    assert all(o.get("Description") for o in t["Outputs"].values()), "every output explained"
    assert all(len(p.get("Description", "")) > 20 for p in t["Parameters"].values()), (
        "every parameter explained for a student")
    res = t["Resources"]
    assert res["AlertFunction"]["Properties"]["Runtime"] == "python3.12"
    assert res["AlertFunction"]["Properties"]["Handler"] == "alert_handler.handler"
    esm = res["ScoresToAlertFunction"]["Properties"]
    assert esm["BisectBatchOnFunctionError"] is True
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BatchSize"] == 100
    assert "AlertFailureQueue" in str(esm["DestinationConfig"]["OnFailure"]["Destination"])
    assert res["EmailSubscription"]["Condition"] == "HasEmail"
    assert res["SmsSubscription"]["Condition"] == "HasPhone"
    for name in ("AlertEmail", "AlertPhone"):
        assert t["Parameters"][name].get("NoEcho") is True, f"{name} must not show in the API"


def test_input_stream_mode_is_a_parameter():
    t = _template()
    assert t["Parameters"]["InputStreamMode"]["AllowedValues"] == list(stack.STREAM_MODES)
    props = t["Resources"]["InputStream"]["Properties"]
    assert props["StreamModeDetails"] == {"StreamMode": {"Ref": "InputStreamMode"}}
    assert props["ShardCount"]["Fn::If"][0] == "InputIsProvisioned", (
        "on-demand streams must not set ShardCount")
    for name in ("InputStream", "ScoresStream", "DeadLetterStream"):
        enc = t["Resources"][name]["Properties"]["StreamEncryption"]
        assert enc["EncryptionType"] == "KMS", f"{name} must be encrypted"


def test_firehose_archives_are_partitioned_and_compressed():
    res = _template()["Resources"]
    for name, bucket, prefix in (("RawArchive", "RawBucket", "weblogs/raw/"),
                                 ("ScoresArchive", "ProcessedBucket", "scores/")):
        props = res[name]["Properties"]
        assert props["DeliveryStreamType"] == "KinesisStreamAsSource"
        dest = props["ExtendedS3DestinationConfiguration"]
        assert dest["BucketARN"] == {"Fn::GetAtt": [bucket, "Arn"]}
        assert dest["Prefix"].startswith(prefix) and "!{timestamp:yyyy}" in dest["Prefix"], (
            f"{name} must write a date-partitioned prefix")
        assert dest["ErrorOutputPrefix"], "a prefix with expressions needs an error prefix"
        assert dest["CompressionFormat"] == "GZIP"
        assert dest["CloudWatchLoggingOptions"]["Enabled"] is True


def test_iam_has_no_wildcard_actions_and_scoped_resources():
    res = _template()["Resources"]
    roles = {n: r for n, r in res.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"FirehoseRole", "AlertFunctionRole", "AppRole"}, roles.keys()
    for name, role in roles.items():
        for st in _statements(role):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any("*" in a for a in actions), f"wildcard action in {name}/{st['Sid']}"
            assert st.get("Resource") not in ("*", ["*"]), f"unscoped {name}/{st['Sid']}"
    app = {st["Sid"]: st for st in _statements(roles["AppRole"])}
    assert "kinesis:PutRecords" in app["WriteOutputStreams"]["Action"]
    assert "flink-app/" in str(app["ReadCode"]["Resource"]), "the app reads only its code"
    principal = roles["AppRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert principal["Principal"]["Service"] == "kinesisanalytics.amazonaws.com"


def test_buckets_logs_and_tags():
    res = _template()["Resources"]
    for name in ("RawBucket", "ProcessedBucket"):
        props = res[name]["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), f"{name} public access"
        assert props["BucketEncryption"], f"{name} must be encrypted"
        assert props["VersioningConfiguration"]["Status"] == "Enabled"
        policy = res[f"{name}Policy"]["Properties"]["PolicyDocument"]["Statement"][0]
        assert policy["Effect"] == "Deny" and policy["Condition"] == {
            "Bool": {"aws:SecureTransport": "false"}}, f"{name} must be TLS-only"
    groups = [n for n, r in res.items() if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == 3, groups
    for name in groups:
        assert res[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    for name, body in res.items():
        if body["Type"] in UNTAGGABLE:
            continue
        tags = {t["Key"]: t["Value"] for t in body["Properties"].get("Tags", [])}
        assert tags.get("lab-prefix") == {"Ref": "Prefix"}, f"{name} lacks the lab-prefix tag"


def test_bad_contacts_are_rejected_before_anything_happens(tmp_path):
    cfg = LabConfig(home=tmp_path, emulator_port=1999)  # nothing runs there: not reached
    with pytest.raises(StackError, match=r"E\.164") as err:
        stack.deploy(cfg, phone="0123 456 789")
    assert "0123" not in str(err.value), "the number itself must not be repeated"
    with pytest.raises(StackError, match="e-mail") as err:
        stack.deploy(cfg, email="student.name-at-example.com")
    assert "student" not in str(err.value), "the address itself must not be repeated"
    with pytest.raises(StackError, match="ON_DEMAND"):
        stack.deploy(cfg, stream_mode="on-demand")
    with pytest.raises(StackError, match="1 to 4"):
        stack.deploy(cfg, shard_count=9)


def test_bucket_name_taken_by_another_account(tmp_path):
    import boto3
    from botocore.stub import Stubber

    cfg = LabConfig(home=tmp_path, prefix="takenlab")
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        with pytest.raises(StackError) as err:
            stack._check_bucket_names(cfg, s3)
    assert "taken by another AWS account" in str(err.value) and "LAB_PREFIX" in str(err.value)
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        stub.add_client_error("create_bucket", service_error_code="BucketAlreadyExists",
                              http_status_code=409)
        with pytest.raises(StackError, match="taken by another AWS account"):
            stack.ensure_artifacts_bucket(cfg, s3)


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

    left = inventory.leftovers(cfg)
    assert any(cfg.stack_name in x for x in left) and any(cfg.inbox_queue in x for x in left)
    assert not any("testother" in x for x in left), "leftovers lists only our prefix"

    stack.delete(cfg)
    assert inventory.leftovers(cfg) == [], "nothing with the prefix may be left"
    stack.delete(cfg)  # twice: harmless
    assert inventory.leftovers(cfg) == []
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
        # AWS shows NoEcho parameters as ****; moto 5.2.5 shows the value.
        assert params["AlertPhone"] in ("+14155550100", "****"), params
        assert params["InputStreamMode"] == "PROVISIONED", "unchanged modes are kept"
    finally:
        stack.delete(cfg, progress=False)


@pytest.mark.integration
def test_on_demand_input_and_new_outputs(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testmode")
    try:
        outs = stack.deploy(cfg, stream_mode="ON_DEMAND", progress=False)
        assert outs["DeadLetterStreamName"] == cfg.dead_letter_stream, outs
        assert outs["AppLogGroupName"] == f"/aws/kinesis-analytics/{cfg.prefix}-analytics"
        assert outs["AppRoleArn"].startswith("arn:aws:iam::"), outs
        assert outs["AlertFailureQueueArn"].endswith(f":{cfg.prefix}-alert-failures")
        assert "RawArchiveName" not in outs, "moto skips Firehose and drops its outputs"
        params = {p["ParameterKey"]: p.get("ParameterValue") for p in cfg.client(
            "cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0][
            "Parameters"]}
        assert params["InputStreamMode"] == "ON_DEMAND", params
        esm = cfg.client("lambda").list_event_source_mappings(
            FunctionName=outs["AlertFunctionName"])["EventSourceMappings"][0]
        assert esm["DestinationConfig"]["OnFailure"]["Destination"] == outs[
            "AlertFailureQueueArn"], esm
    finally:
        stack.delete(cfg, progress=False)
    assert inventory.leftovers(cfg) == []


@pytest.mark.integration
def test_aws_backend_deploy_and_delete_against_the_emulator(emulator_cfg, monkeypatch,
                                                           tmp_path, capsys):
    from tests.aws_env import aws_cfg_on_emulator

    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testawsdep")
    # The emulator skips Firehose (and drops those outputs); everything else is the aws path:
    # credential check, bucket-name check, upload, create, outputs.
    monkeypatch.setattr(stack, "AWS_ONLY_OUTPUTS", ())
    monkeypatch.setattr(stack, "_poll_interval", lambda cfg: 0.2)
    outs = stack.deploy(cfg, email="student@example.com", phone="+14155550100")
    printed = capsys.readouterr().out
    assert f"AWS ({cfg.region})" in printed and "inbox" not in printed, printed
    assert "student@example.com" not in printed and "+14155550100" not in printed
    assert outs["InputStreamName"] == cfg.input_stream
    # On aws the inbox queue comes from the template (no API-made extra): the stack has it.
    assert outs["InboxQueueArn"].endswith(":" + cfg.inbox_queue), outs
    assert any(q.endswith(cfg.inbox_queue) for q in cfg.client("sqs").list_queues(
        QueueNamePrefix=cfg.prefix).get("QueueUrls", [])), "the template's inbox queue"
    stack.delete(cfg, progress=False)
    assert inventory.leftovers(cfg) == []
    # A bucket left behind without its stack is named, with the fix.
    cfg.client("s3").create_bucket(Bucket=f"{cfg.prefix}-raw-{cfg.account_id}-{cfg.region}")
    with pytest.raises(StackError, match="left over from an earlier run"):
        stack.deploy(cfg, progress=False)
    cfg.client("s3").delete_bucket(Bucket=f"{cfg.prefix}-raw-{cfg.account_id}-{cfg.region}")
    stack.delete(cfg, progress=False)
