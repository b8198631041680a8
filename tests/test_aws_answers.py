"""What a real AWS account answers, and how the lab handles it (issue 25): times sent as UTC
whatever the machine's zone, the emulator's rules (GetRecords throttling, a future
AT_TIMESTAMP, a queue name deleted less than 60 s ago), the command line's --backend."""

from __future__ import annotations

import ast
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from labhelpers.cli import build_parser
from labhelpers.infra import moto_rules
from labhelpers.stream import kinesis as kinesis_reader

PACKAGE = Path(__file__).resolve().parent.parent / "labhelpers"


# ---------------------------------------------------------------- times sent to AWS
def _naive_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that make a time without a zone: datetime.now() with no tz, fromtimestamp(t)
    with one argument and no tz, utcnow(), utcfromtimestamp()."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, kw = node.func.attr, {k.arg for k in node.keywords}
        if name in ("utcnow", "utcfromtimestamp"):
            found.append((node.lineno, name))
        elif name == "now" and not node.args and "tz" not in kw \
                and ast.unparse(node.func.value).endswith("datetime"):
            found.append((node.lineno, "datetime.now()"))
        elif name == "fromtimestamp" and len(node.args) < 2 and "tz" not in kw:
            found.append((node.lineno, "fromtimestamp(t)"))
    return found


def test_the_package_makes_no_time_without_a_zone():
    """botocore takes a naive time as UTC: a local one lands hours off (issue 25)."""
    bad = {str(p.relative_to(PACKAGE)): calls for p in sorted(PACKAGE.rglob("*.py"))
           if (calls := _naive_calls(ast.parse(p.read_text())))}
    assert bad == {}, f"naive times (pass tz=UTC): {bad}"


def test_the_scan_sees_a_naive_time():
    tree = ast.parse("from datetime import datetime\n"
                     "a = datetime.fromtimestamp(1)\nb = datetime.now()\n"
                     "c = datetime.utcnow()\nd = datetime.now(UTC)\n"
                     "e = datetime.fromtimestamp(1, UTC)\n")
    assert [n for _, n in _naive_calls(tree)] == ["fromtimestamp(t)", "datetime.now()",
                                                   "utcnow"]


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles", "UTC"])
def test_at_timestamp_is_utc_whatever_the_zone(monkeypatch, zone):
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        start = kinesis_reader.start_of(60, now=1_800_000_000.0)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert start["ShardIteratorType"] == "AT_TIMESTAMP"
    assert start["Timestamp"].utcoffset() is not None, "a naive time is read as UTC"
    assert start["Timestamp"].timestamp() == 1_800_000_000.0 - 60


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("argv", [
    ["run-lab", "--backend", "aws", "--emulator"],
    ["--backend", "aws", "run-lab", "--emulator"],
])
def test_backend_before_or_after_the_sub_command(argv):
    args = build_parser().parse_args(argv)
    assert (args.backend, args.emulator, args.command) == ("aws", True, "run-lab")


def test_a_sub_command_without_backend_keeps_the_default():
    args = build_parser().parse_args(["app", "status"])
    assert args.backend is None and args.prefix is None and args.region is None


def test_cloud_app_goes_through_the_backend_with_app_starts_default(monkeypatch):
    from labhelpers import cli
    from labhelpers.backends import aws

    calls = []
    monkeypatch.setattr(aws.AwsBackend, "start_app",
                        lambda self, params=None, **kw: calls.append((self.cfg.backend, kw))
                        or {"ok": True})
    monkeypatch.setenv("LAB_EMULATED", "1")
    assert cli.main(["cloud-app", "start"]) == 0
    app = build_parser().parse_args(["app", "start"])
    assert calls and calls[0][0] == "aws", calls
    assert calls[0][1]["start_position"] == app.start_position == "latest", calls


# ---------------------------------------------------------------- the emulator's rules
class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _iterator(stream: str, shard: str) -> str:
    import base64

    return base64.encodebytes(f"{stream}:{shard}:0".encode()).decode()


def test_rules_refuse_a_sixth_get_records_in_a_second():
    clock = _Clock()
    rules = moto_rules.Rules(clock=clock)
    body = {"ShardIterator": _iterator("s", "shardId-000000000000")}
    assert [rules.get_records(body) for _ in range(5)] == [None] * 5
    assert rules.get_records(body)[0] == "ProvisionedThroughputExceededException"
    other = {"ShardIterator": _iterator("s", "shardId-000000000001")}
    assert rules.get_records(other) is None, "the budget is per shard"
    clock.t += 1.0
    assert rules.get_records(body) is None, "the budget renews every second"


def test_rules_refuse_a_future_timestamp_and_a_recent_queue_name():
    clock = _Clock()
    rules = moto_rules.Rules(clock=clock, wall=lambda: 2000.0)
    assert rules.get_shard_iterator({"ShardIteratorType": "AT_TIMESTAMP",
                                     "Timestamp": 2000.0 + 9 * 3600})[0] == \
        "InvalidArgumentException"
    assert rules.get_shard_iterator({"ShardIteratorType": "AT_TIMESTAMP",
                                     "Timestamp": 1990.0}) is None
    rules.delete_queue("http://127.0.0.1:1/123456789012/lab-inbox")
    assert rules.create_queue("lab-inbox")[0] == "QueueDeletedRecently"
    clock.t += 61
    assert rules.create_queue("lab-inbox") is None


@pytest.mark.integration
def test_the_emulator_answers_like_aws(emulator_cfg):
    """Through boto3, against the lab's emulator: each refusal has AWS's error code."""
    cfg = emulator_cfg.with_(prefix="testrules")
    kinesis, sqs = cfg.client("kinesis"), cfg.client("sqs")
    kinesis.create_stream(StreamName="testrules-s", ShardCount=1)
    shard = kinesis.list_shards(StreamName="testrules-s")["Shards"][0]["ShardId"]
    with pytest.raises(ClientError) as err:
        kinesis.get_shard_iterator(StreamName="testrules-s", ShardId=shard,
                                   ShardIteratorType="AT_TIMESTAMP",
                                   Timestamp=time.time() + 3600)
    assert err.value.response["Error"]["Code"] == "InvalidArgumentException"
    it = kinesis.get_shard_iterator(StreamName="testrules-s", ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    # no retries: botocore retries a throttled call by itself and would hide the refusal
    kinesis = cfg.session().client("kinesis", endpoint_url=cfg.endpoint_url,
                                   config=Config(retries={"max_attempts": 1}))
    def one_call(_) -> str:
        try:
            kinesis.get_records(ShardIterator=it)
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    # ten calls at once: one after the other they may take longer than 1/5 s each on a busy
    # machine, and then none is over the limit
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(one_call, range(10)))
    assert "ProvisionedThroughputExceededException" in codes, codes
    url = sqs.create_queue(QueueName="testrules-q")["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as err:
        sqs.create_queue(QueueName="testrules-q")
    assert "QueueDeletedRecently" in err.value.response["Error"]["Code"]


@pytest.mark.integration
@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
def test_read_stream_reads_the_last_minute_in_any_zone(emulator_cfg, monkeypatch, zone):
    """The notebooks' "last records" outside UTC: east of it the old code asked for records
    from hours in the future (refused), west of it it read hours of old ones."""
    cfg = emulator_cfg.with_(prefix=f"testtz{zone[:4].lower()}")
    kinesis = cfg.client("kinesis")
    name = f"{cfg.prefix}-s"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.put_records(StreamName=name, Records=[
        {"Data": f'{{"n": {i}}}'.encode(), "PartitionKey": "k"} for i in range(14)])
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        lines = kinesis_reader.read_stream(cfg, name, since_s=60, limit=10)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert len(lines) == 10 and lines[-1] == '{"n": 13}', lines


@pytest.mark.integration
def test_read_stream_backs_off_when_the_shard_budget_is_spent(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testbackoff")
    kinesis = cfg.client("kinesis")
    name = "testbackoff-s"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.put_records(StreamName=name, Records=[{"Data": b"x", "PartitionKey": "k"}])
    results = [kinesis_reader.read_stream(cfg, name) for _ in range(12)]
    assert all(r == ["x"] for r in results), results


def test_no_test_of_this_file_needs_a_real_account():
    assert "amazonaws.com" not in os.environ.get("AWS_ENDPOINT_URL", "")


# ---------------------------------------------------------------- queue names
def test_deploy_waits_out_a_queue_name_deleted_less_than_60_s_ago(tmp_path, capsys):
    from labhelpers.infra import queue_names
    from labhelpers.infra.config import LabConfig

    cfg = LabConfig(home=tmp_path, prefix="qn25")
    slept = []
    assert queue_names.wait_for_queue_names(cfg, sleep=slept.append) == 0.0
    queue_names.note_deleted(cfg, queue_names.names(cfg))
    waited = queue_names.wait_for_queue_names(cfg, sleep=slept.append)
    assert 55 < waited <= 61 and slept == [waited]
    said = capsys.readouterr().out
    assert "qn25-inbox" in said and "60 s" in said and "waiting" in said, said


def test_a_refused_queue_name_is_tried_again_saying_so(monkeypatch, capsys):
    import boto3
    from botocore.stub import Stubber

    from labhelpers.infra import queue_names

    monkeypatch.setattr(queue_names.time, "sleep", lambda s: None)
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x", endpoint_url="http://127.0.0.1:1")
    stub = Stubber(sqs)
    for _ in range(2):
        stub.add_client_error("create_queue", http_status_code=400,
                              service_error_code="AWS.SimpleQueueService.QueueDeletedRecently")
    stub.add_response("create_queue", {"QueueUrl": "http://q/qn25-inbox"},
                      {"QueueName": "qn25-inbox"})
    with stub:
        assert queue_names.create_queue(sqs, True, QueueName="qn25-inbox") == \
            "http://q/qn25-inbox"
    assert "QueueDeletedRecently" in capsys.readouterr().out


# ---------------------------------------------------------------- the template's trust
def test_firehose_trusts_with_the_condition_its_guide_documents():
    """Firehose's guide conditions its role on sts:ExternalId = the account; whether it also
    sends aws:SourceAccount when it assumes the role is not documented (issue 25)."""
    from cfnlint.decode import decode

    from labhelpers.infra import stack

    template, errors = decode(str(stack.TEMPLATE_FILE))
    assert not errors, errors
    trust = template["Resources"]["FirehoseRole"]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId":
                                                       {"Ref": "AWS::AccountId"}}}


# ---------------------------------------------------------------- the alert function's SDK
def test_the_alert_function_says_so_when_the_runtimes_boto3_is_too_old():
    """Lambda's bundled boto3 is not pinned; one too old for put_object(IfNoneMatch) would fail
    every invocation without a word on why (issue 25)."""
    import boto3
    import botocore

    from labhelpers.alerts import handler

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
    assert handler.sdk_problem(s3) is None, "this environment's botocore has IfNoneMatch"

    class Old:
        class meta:  # noqa: N801  (the shape of a client's meta)
            class service_model:  # noqa: N801
                @staticmethod
                def operation_model(name):
                    class Op:
                        class input_shape:  # noqa: N801
                            members = {"Bucket": 1, "Key": 1, "Body": 1}
                    return Op

    text = handler.sdk_problem(Old())
    assert text and botocore.__version__ in text and "boto3 >= 1.35" in text, text


@pytest.mark.integration
@pytest.mark.live  # a minute of waiting, as on AWS
def test_a_deploy_right_after_cleanup_waits_for_the_queue_name(emulator_cfg, monkeypatch,
                                                              tmp_path, capsys):
    """Clean-up, then deploy at once: SQS (the emulator's rules) refuses the inbox's name for
    60 s; the deploy waits and says so instead of failing."""
    from labhelpers.infra import stack
    from tests.aws_env import aws_cfg_on_emulator

    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testqueue")
    cfg = cfg.with_(emulated=True)
    stack.deploy(cfg, progress=False)
    stack.delete(cfg, progress=False)
    t0 = time.monotonic()
    stack.deploy(cfg, progress=True)
    try:
        said = capsys.readouterr().out
        assert "60 s" in said and "testqueue-inbox" in said, said
        assert time.monotonic() - t0 >= 50
        assert cfg.client("sqs").get_queue_url(QueueName=cfg.inbox_queue)["QueueUrl"]
    finally:
        stack.delete(cfg, progress=False)
