"""The local alert runtime: Kinesis-shaped events, the poller, the SNS -> SQS inbox."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from labhelpers.alerts import inbox as alert_inbox
from labhelpers.alerts import poller as alerts
from labhelpers.errors import AlertError
from labhelpers.infra import stack
from labhelpers.infra.config import LabConfig
from labhelpers.stream.log import StreamLogWriter
from labhelpers.wait import wait_until

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/x-scores"


def score_row(window: int, anomaly: bool, episode: str | None = None,
              site: str = "example.com") -> dict:
    return {
        "window_start": f"2026-11-27T10:{window:02d}:00.000Z",
        "window_end": f"2026-11-27T10:{window:02d}:10.000Z",
        "site": site, "clicks": 40 if anomaly else 10, "impressions": 10,
        "ctr": 400.0 if anomaly else 100.0, "anomaly_score": 3.9 if anomaly else 0.7,
        "is_anomaly": anomaly, "forest_ready": True,
        "attribution": json.dumps({"clicks": {"high": 2.5, "low": 0.0}}),
        "episode_id": episode,
    }


def test_kinesis_event_shape():
    ev = alerts.kinesis_event([{"site": "a", "n": 1}, "not json"], ARN)
    first, second = ev["Records"]
    assert json.loads(base64.b64decode(first["kinesis"]["data"])) == {"site": "a", "n": 1}
    assert base64.b64decode(second["kinesis"]["data"]) == b"not json", "str is sent as is"
    assert first["eventSourceARN"] == ARN and first["eventSource"] == "aws:kinesis"
    assert first["kinesis"]["partitionKey"] == "a" and first["awsRegion"] == "us-east-1"
    seqs = [r["kinesis"]["sequenceNumber"] for r in ev["Records"]]
    seqs += [r["kinesis"]["sequenceNumber"] for r in alerts.kinesis_event([{}], ARN)["Records"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, f"increasing and unique: {seqs}"


def test_poller_refuses_aws_backend(tmp_path):
    with pytest.raises(AlertError, match="local emulator"):
        alerts.LocalPoller(LabConfig(backend="aws", home=tmp_path))


@pytest.mark.integration
def test_episode_alert_reaches_inbox_exactly_once(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testalerts")
    outs = stack.deploy(cfg, progress=False)
    try:
        log = StreamLogWriter(cfg.stream_dir(cfg.scores_stream))
        anomaly1 = score_row(1, True, "example.com-e1")
        first_file = log.append([
            json.dumps(score_row(0, False)),
            json.dumps(anomaly1),
            "{this is not a score row",
        ])
        # The next file: a second window of the same episode and the first one again
        # (a redelivery, as after a retry).
        log.append([json.dumps(score_row(2, True, "example.com-e1")), json.dumps(anomaly1)])

        counts = alerts.LocalPoller(cfg).poll_once()
        assert counts["files"] == 2 and counts["rows"] == 5, counts
        assert counts["malformed"] == 1, f"the bad line is skipped, not fatal: {counts}"
        assert counts["anomalies"] == 3 and counts["alerts_sent"] == 1, counts
        assert counts["duplicates"] == 2 and counts["failed"] == 0, counts

        got = alert_inbox.read_inbox(cfg, wait_seconds=2)
        assert len(got) == 1, f"one message per episode, got {len(got)}: {got}"
        msg = got[0]
        assert msg["subject"] == "Clickstream anomaly on example.com", msg
        assert msg["site"] == "example.com" and msg["episode_id"] == "example.com-e1", msg
        assert "400.0 %" in msg["message"] and msg["received_at"], msg

        s3 = cfg.client("s3")
        keys = {o["Key"] for o in s3.list_objects_v2(
            Bucket=outs["ProcessedBucketName"]).get("Contents", [])}
        assert f"scores/{first_file.name}" in keys, f"score files are archived: {keys}"
        assert len([k for k in keys if k.startswith("anomalies/")]) == 2, keys

        # A new poller (as in another kernel) continues after what was handled.
        assert alerts.LocalPoller(cfg).poll_once()["files"] == 0, "position must persist"
        # Replaying everything (position lost) still sends nothing new.
        (cfg.lab_dir / alerts.POSITION_FILE).unlink()
        replay = alerts.LocalPoller(cfg).poll_once()
        assert replay["files"] == 2 and replay["alerts_sent"] == 0, replay
        assert alert_inbox.read_inbox(cfg, wait_seconds=1) == [], "no second message on replay"

        everything = alert_inbox.inbox(cfg)
        assert [m["episode_id"] for m in everything] == ["example.com-e1"], everything
        lines = alert_inbox.inbox_file(cfg).read_text().splitlines()
        assert len(lines) == 1, "received messages are kept on disk for later notebooks"
    finally:
        stack.delete(cfg, progress=False)


@pytest.mark.integration
def test_run_forever_in_a_thread(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testpoll")
    stack.deploy(cfg, progress=False)
    stop = threading.Event()
    poller = alerts.LocalPoller(cfg)
    thread = threading.Thread(target=poller.run_forever, args=(stop, 0.1), daemon=True)
    thread.start()
    try:
        StreamLogWriter(cfg.stream_dir(cfg.scores_stream)).append(
            [json.dumps(score_row(3, True, "shop-e7", site="shop.example"))])
        # the inbox is read once the thread has sent: on a loaded 2-core CI machine the
        # thread's first pass took longer than one 5-s read (an alert sent, an empty read)
        wait_until(lambda: poller.totals["alerts_sent"], "the poller thread to send the alert",
                   timeout=60, interval=0.1, progress=False)
        got = alert_inbox.read_inbox(cfg, wait_seconds=5)
        assert [m["site"] for m in got] == ["shop.example"], got
    finally:
        stop.set()
        thread.join(5)
        stack.delete(cfg, progress=False)
    assert not thread.is_alive(), "run_forever must return when the stop event is set"
    assert poller.totals["alerts_sent"] == 1, poller.totals


@pytest.mark.integration
def test_read_inbox_before_deploy_says_how(emulator_cfg):
    with pytest.raises(AlertError, match="deploy"):
        alert_inbox.read_inbox(emulator_cfg.with_(prefix="testnoinbox"))
