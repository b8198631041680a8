"""The alert handler, in-process against moto's mock: one message per episode, CSVs, bad input."""

from __future__ import annotations

import ast
import base64
import csv
import io
import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from labhelpers.alerts import handler as alert_handler
from labhelpers.job.contracts import SCORE_COLUMNS

BUCKET = "unit-processed"
REGION = "us-east-1"


def score_row(window: int = 0, site: str = "example.com", anomaly: bool = True,
              episode: str | None = "example.com-1", **changes) -> dict:
    start = f"2026-11-27T10:00:{window * 10:02d}.000Z"
    end = f"2026-11-27T10:00:{window * 10 + 10:02d}.000Z"
    row = {
        "window_start": start, "window_end": end, "site": site,
        "clicks": 40, "impressions": 10, "ctr": 400.0,
        "anomaly_score": 3.5 if anomaly else 0.8, "is_anomaly": anomaly, "forest_ready": True,
        "attribution": json.dumps({"clicks": {"high": 2.1, "low": 0.0},
                                   "impressions": {"high": 0.1, "low": 0.3},
                                   "ctr": {"high": 1.0, "low": 0.0}}),
        "episode_id": episode if anomaly else None,
    }
    row.update(changes)
    return row


def record(data: bytes | str, seq: str) -> dict:
    if isinstance(data, str):
        data = data.encode()
    return {"kinesis": {"data": base64.b64encode(data).decode(), "sequenceNumber": seq,
                        "partitionKey": "k"}, "eventID": f"shardId-0:{seq}"}


def event(*rows, start: int = 1) -> dict:
    return {"Records": [record(json.dumps(r), str(start + i)) for i, r in enumerate(rows)]}


@pytest.fixture()
def aws(monkeypatch):
    """moto in-process: processed bucket, alert topic, and a queue subscribed to the topic."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    alert_handler._CLIENTS.clear()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="unit-alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="unit-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        monkeypatch.setenv("TOPIC_ARN", topic)
        monkeypatch.setenv("PROCESSED_BUCKET", BUCKET)

        def messages() -> list[dict]:
            out = []
            while True:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
                if not got:
                    return out
                for m in got:
                    out.append(json.loads(m["Body"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        def keys(prefix: str) -> list[str]:
            resp = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
            return sorted(o["Key"] for o in resp.get("Contents", []))

        yield {"s3": s3, "topic": topic, "messages": messages, "keys": keys}
    alert_handler._CLIENTS.clear()


def test_columns_match_contract():
    assert alert_handler.SCORE_COLUMNS == SCORE_COLUMNS, "handler and contracts must agree"


def test_handler_imports_only_stdlib_and_boto3():
    tree = ast.parse(Path(alert_handler.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the file is deployed alone"
            modules.add(node.module.split(".")[0])
    extra = modules - set(sys.stdlib_module_names) - {"boto3", "botocore", "__future__"}
    assert not extra, f"the Lambda zip holds only alert_handler.py; it cannot import {extra}"


def test_one_message_for_an_anomaly_with_words(aws):
    result = alert_handler.handler(event(score_row()), None)
    assert result["batchItemFailures"] == [], result
    assert result["counts"]["alerts_sent"] == 1, result
    (msg,) = aws["messages"]()
    assert msg["Subject"] == "Clickstream anomaly on example.com", msg["Subject"]
    body = msg["Message"]
    for words in ("example.com", "2026-11-27T10:00:00.000Z", "400.0 %", "Clicks: 40",
                  "impressions: 10", "Anomaly score: 3.50", "clicks unusually high"):
        assert words in body, f"{words!r} missing from the alert text:\n{body}"
    assert msg["MessageAttributes"]["episode_id"]["Value"] == "example.com-1"
    assert aws["keys"]("alerts/") == ["alerts/example.com/example.com-1.json"]
    claim = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=aws["keys"]("alerts/")[0])[
        "Body"].read())
    assert claim["message_id"] and claim["episode_id"] == "example.com-1", claim


def test_csv_per_anomalous_window(aws):
    alert_handler.handler(event(score_row(0), score_row(1), score_row(2, anomaly=False)), None)
    keys = aws["keys"]("anomalies/")
    assert len(keys) == 2, f"one CSV per anomalous window, none for normal ones: {keys}"
    text = aws["s3"].get_object(Bucket=BUCKET, Key=keys[0])["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(SCORE_COLUMNS) and rows[0]["ctr"] == "400.0", rows


def test_repeated_delivery_sends_once(aws):
    ev = event(score_row())
    first = alert_handler.handler(ev, None)
    second = alert_handler.handler(ev, None)
    assert first["counts"]["alerts_sent"] == 1 and second["counts"]["alerts_sent"] == 0
    assert second["counts"]["duplicates"] == 1, second
    assert len(aws["messages"]()) == 1, "a redelivered batch must not send a second message"


def test_windows_of_one_episode_send_once(aws):
    result = alert_handler.handler(event(score_row(0), score_row(1), score_row(2)), None)
    assert result["counts"] == {**result["counts"], "anomalies": 3, "alerts_sent": 1,
                                "duplicates": 2}, result
    later = alert_handler.handler(event(score_row(3), start=10), None)
    assert later["counts"]["alerts_sent"] == 0
    assert len(aws["messages"]()) == 1, "consecutive windows of one episode share one message"


def test_distinct_episodes_and_sites_each_send(aws):
    rows = [score_row(0, episode="example.com-1"), score_row(5, episode="example.com-2"),
            score_row(0, site="shop.example", episode="shop.example-1")]
    alert_handler.handler(event(*rows), None)
    subjects = sorted(m["Subject"] for m in aws["messages"]())
    assert subjects == ["Clickstream anomaly on example.com"] * 2 + [
        "Clickstream anomaly on shop.example"], subjects


def test_malformed_records_are_skipped(aws):
    good = score_row()
    missing = {k: v for k, v in good.items() if k != "clicks"}
    records = [
        {"kinesis": {"data": "***not base64***", "sequenceNumber": "1"}},
        record("not json {", "2"),
        record(json.dumps(missing), "3"),
        record(json.dumps({**good, "is_anomaly": "yes"}), "4"),
        record(json.dumps([1, 2]), "5"),
        {"no": "kinesis"},
        record(json.dumps(good), "7"),
    ]
    result = alert_handler.handler({"Records": records}, None)
    assert result["counts"]["malformed"] == 6, result
    assert result["counts"]["alerts_sent"] == 1, "the good record after bad ones is handled"
    assert result["batchItemFailures"] == [], "malformed records are skipped, not retried"
    assert len(aws["messages"]()) == 1


def test_publish_failure_releases_claim_and_reports_record(aws, monkeypatch):
    monkeypatch.setenv("TOPIC_ARN", aws["topic"] + "-missing")
    failed = alert_handler.handler(event(score_row(), start=42), None)
    assert failed["batchItemFailures"] == [{"itemIdentifier": "42"}], failed
    assert aws["keys"]("alerts/") == [], "a failed publish must release the episode claim"
    monkeypatch.setenv("TOPIC_ARN", aws["topic"])
    retried = alert_handler.handler(event(score_row(), start=42), None)
    assert retried["counts"]["alerts_sent"] == 1 and not retried["batchItemFailures"]
    assert len(aws["messages"]()) == 1, "the retry sends the alert exactly once"


def test_missing_episode_id_falls_back_to_window(aws):
    alert_handler.handler(event(score_row(0, episode=None), score_row(0, episode=None)), None)
    assert len(aws["messages"]()) == 1, "without episode_id: one message per window"


def test_message_without_attribution_or_ctr():
    row = score_row(attribution=None, ctr=None, impressions=0)
    text = alert_handler.alert_message(row, "e-1")
    assert "n/a (no impressions)" in text and "not available" in text, text
    assert alert_handler.main_driver('{"ctr": {"high": 0.2, "low": 1.5}}') == ("ctr", "low", 1.5)
    assert alert_handler.main_driver("not json") is None
    long_site = "s" * 200
    assert len(alert_handler.alert_subject(score_row(site=long_site))) <= 100


def test_key_parts_stay_distinct():
    a = alert_handler.claim_key({"site": "a/b"}, "e")
    b = alert_handler.claim_key({"site": "a_b"}, "e")
    assert a != b and a.count("/") == 2, (a, b)


def test_missing_configuration_fails_the_batch(monkeypatch):
    monkeypatch.delenv("TOPIC_ARN", raising=False)
    with pytest.raises(RuntimeError, match="TOPIC_ARN"):
        alert_handler.handler(event(score_row()), None)


def test_message_says_what_was_expected():
    row = score_row(usual_clicks=10.2, usual_impressions=9.8, usual_ctr=104.1)
    text = alert_handler.alert_message(row, "e-1")
    assert "Clicks: 40 (usually about 10), impressions: 10 (usually about 10)" in text, text
    assert "400.0 % (usually about 104.1 %)" in text, text
    assert "clicks unusually high: 40, usually about 10 (2.10 of the anomaly score)" in text
    dark = score_row(clicks=0, impressions=0, ctr=None, usual_clicks=10.0)
    assert "the site went silent" in alert_handler.alert_message(dark, "e-2")
    # a row from an older job has no usual values: the message leaves them out
    assert "usually about" not in alert_handler.alert_message(score_row(), "e-3")


def test_message_says_what_flagged_the_window():
    halving = score_row(clicks=4, impressions=100, ctr=4.0, anomaly_score=1.3,
                        run_score=5.26, flagged_by="run:clicks_given_ctr:low")
    assert ("Flagged by: a run of windows with fewer clicks than the usual click-through rate "
            "predicts (run sum 5.3)") in alert_handler.alert_message(halving, "e-1")
    spike = alert_handler.alert_message(score_row(flagged_by="score"), "e-2")
    assert "Flagged by: the anomaly score, above the alert threshold" in spike
    # rows from an older job have no flagged_by: no such line
    assert "Flagged by" not in alert_handler.alert_message(score_row(), "e-3")


def test_partial_window_never_alerts(aws):
    out = alert_handler.handler(event(score_row(0, complete=False)), None)
    assert out["counts"]["alerts_sent"] == 0 and not aws["messages"]()
