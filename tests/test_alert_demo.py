"""Invoking the alert function once with a sample event, and leaving nothing behind."""

from __future__ import annotations

import io
import json

import pytest

from labhelpers.alerts import demo as alert_demo
from labhelpers.alerts import handler as alert_handler
from labhelpers.alerts import inbox as alert_inbox
from labhelpers.alerts import poller as alerts
from labhelpers.errors import AlertError
from labhelpers.infra import stack
from labhelpers.infra.config import LabConfig
from labhelpers.job.contracts import SCORE_COLUMNS

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/x-scores"


@pytest.mark.parametrize("anomalous", [True, False])
def test_sample_rows_are_score_rows_the_handler_reads(anomalous):
    row = alert_demo.sample_row(anomalous=anomalous)
    assert tuple(row) == SCORE_COLUMNS, "the columns of the scores stream, in order"
    event = alerts.kinesis_event([row], ARN)
    assert alert_handler.decode_record(event["Records"][0]) == row
    assert row["is_anomaly"] is anomalous and row["site"] == alert_demo.DEMO_SITE
    assert (row["episode_id"] is not None) is anomalous


def test_each_anomalous_sample_is_a_new_episode():
    a, b = alert_demo.sample_row(), alert_demo.sample_row()
    assert a["episode_id"] != b["episode_id"]
    assert a["episode_id"].startswith(alert_demo.DEMO_SITE)
    assert alert_demo.sample_row(episode_id="e1")["episode_id"] == "e1"


def test_decoded_shows_what_each_record_carries():
    event = alerts.kinesis_event([{"site": "a"}, "not json"], ARN)
    assert alert_demo.decoded(event) == [{"site": "a"}, "not json"]


def _aws(monkeypatch, tmp_path, answer):
    """An aws-backend config whose Lambda client returns ``answer`` for invoke."""
    calls = []

    class FakeLambda:
        def invoke(self, FunctionName, Payload):  # noqa: N803 - boto3's argument names
            calls.append((FunctionName, json.loads(Payload)))
            return answer

    monkeypatch.setattr(LabConfig, "client", lambda self, service: FakeLambda())
    monkeypatch.setattr(stack, "outputs", lambda cfg: {"AlertFunctionName": "x-alert",
                                                       "ScoresStreamArn": ARN})
    return LabConfig(backend="aws", home=tmp_path), calls


def test_invoke_on_aws_calls_the_deployed_lambda(monkeypatch, tmp_path):
    result = {"batchItemFailures": [], "counts": {"alerts_sent": 1}}
    cfg, calls = _aws(monkeypatch, tmp_path,
                      {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())})
    event = alert_demo.sample_event(cfg)
    assert alert_demo.invoke(cfg, event) == result
    assert calls == [("x-alert", event)]
    assert event["Records"][0]["eventSourceARN"] == ARN


def test_invoke_on_aws_reports_a_function_error(monkeypatch, tmp_path):
    cfg, _ = _aws(monkeypatch, tmp_path, {
        "StatusCode": 200, "FunctionError": "Unhandled",
        "Payload": io.BytesIO(b'{"errorMessage": "TOPIC_ARN and PROCESSED_BUCKET must be set"}')})
    with pytest.raises(AlertError, match="TOPIC_ARN.*log group /aws/lambda/x-alert"):
        alert_demo.invoke(cfg, {"Records": []})


@pytest.mark.integration
def test_demo_sends_once_takes_only_its_message_and_cleans_up(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testdemo")
    outs = stack.deploy(cfg, progress=False)
    try:
        # A real alert of another site is waiting in the inbox queue: the demo leaves it.
        real = alert_demo.sample_row(site="example.com", episode_id="example.com-e1")
        assert alert_demo.invoke(cfg, alert_demo.sample_event(cfg, rows=[real]))[
            "counts"]["alerts_sent"] == 1

        event = alert_demo.sample_event(cfg, anomalous=True)
        first = alert_demo.invoke(cfg, event)
        assert first["counts"]["alerts_sent"] == 1 and not first["batchItemFailures"], first
        taken = alert_demo.take_messages(cfg, wait_seconds=5)
        assert [m["site"] for m in taken] == [alert_demo.DEMO_SITE], taken
        assert "400.0 %" in taken[0]["message"]

        again = alert_demo.invoke(cfg, event)
        assert again["counts"]["duplicates"] == 1 and again["counts"]["alerts_sent"] == 0
        assert alert_demo.take_messages(cfg, wait_seconds=1) == []

        normal = alert_demo.invoke(cfg, alert_demo.sample_event(cfg, anomalous=False))
        assert normal["counts"]["normal"] == 1 and normal["counts"]["alerts_sent"] == 0

        assert alert_demo.remove_demo_objects(cfg) == 2, "the claim and the CSV"
        s3 = cfg.client("s3")
        left = s3.list_object_versions(Bucket=outs["ProcessedBucketName"],
                                       Prefix=f"alerts/{alert_demo.DEMO_SITE}/")
        assert not left.get("Versions") and not left.get("DeleteMarkers"), left
        assert alert_demo.remove_demo_objects(cfg) == 0

        inbox = alert_inbox.inbox(cfg)
        assert [m["site"] for m in inbox] == ["example.com"], "only the real alert is left"
    finally:
        stack.delete(cfg, progress=False)
