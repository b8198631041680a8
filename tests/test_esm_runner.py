"""The event-source-mapping stand-in (labhelpers.alerts.esm_runner) on the emulator: it applies the
deployed mapping's own settings (batch size, bisect on error, partial batch responses,
retries, the on-failure queue), keeps its position, and with the real handler an anomalous
score row becomes exactly one alert in the SNS-subscribed inbox queue."""

from __future__ import annotations

import json

import pytest

from labhelpers.alerts import esm_runner
from labhelpers.alerts import inbox as alerts
from labhelpers.errors import AlertError
from labhelpers.infra import stack

pytestmark = pytest.mark.integration


def _row(i: int, *, anomaly: bool = False, site: str = "example.com") -> dict:
    start = f"2026-12-01T10:{i // 6:02d}:{(i % 6) * 10:02d}.000Z"
    return {"window_start": start, "window_end": start, "site": site, "clicks": 10,
            "impressions": 100, "ctr": 10.0, "anomaly_score": 5.0 if anomaly else 0.8,
            "is_anomaly": anomaly, "forest_ready": True, "attribution": None,
            "episode_id": f"{site}-ep-{i}" if anomaly else None}


@pytest.fixture(scope="module")
def deployed(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="testesm")
    outs = stack.deploy(cfg, progress=False)
    yield cfg, outs
    stack.delete(cfg, progress=False)


def _put(cfg, outs, rows) -> list[str]:
    resp = cfg.client("kinesis").put_records(StreamName=outs["ScoresStreamName"], Records=[
        {"Data": json.dumps(r).encode(), "PartitionKey": r["site"]} for r in rows])
    return [r["SequenceNumber"] for r in resp["Records"]]


def _failure_messages(cfg, outs) -> list[dict]:
    sqs = cfg.client("sqs")
    url = sqs.get_queue_url(QueueName=outs["AlertFailureQueueArn"].rsplit(":", 1)[1])["QueueUrl"]
    got = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return got
        for m in msgs:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class Recorder:
    """A handler that fails on purpose for rows of the poison site."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "raise" (function error) or "partial" (batchItemFailures)
        self.batches: list[list[dict]] = []
        self.succeeded: list[str] = []

    def __call__(self, event, context):
        import base64

        rows = [(r["kinesis"]["sequenceNumber"], json.loads(base64.b64decode(r["kinesis"]["data"])))
                for r in event["Records"]]
        self.batches.append([row for _, row in rows])
        assert context.get_remaining_time_in_millis() > 0
        poison = [seq for seq, row in rows if row["site"] == "poison.example"]
        if poison and self.mode == "raise":
            raise RuntimeError("poison row")
        if poison:
            first = rows.index(next(r for r in rows if r[0] == poison[0]))
            self.succeeded += [seq for seq, _ in rows[:first]]
            return {"batchItemFailures": [{"itemIdentifier": s} for s in poison]}
        self.succeeded += [seq for seq, _ in rows]
        return {"batchItemFailures": []}


def test_settings_are_the_deployed_mappings(deployed):
    cfg, outs = deployed
    s = esm_runner.EsmRunner(cfg).load_settings()
    assert s["stream_arn"] == outs["ScoresStreamArn"]
    assert (s["batch_size"], s["bisect"], s["report_item_failures"], s["max_retries"]) == (
        100, True, True, 5)
    assert s["on_failure"] == outs["AlertFailureQueueArn"]
    assert s["environment"]["TOPIC_ARN"] == outs["AlertTopicArn"]
    assert s["timeout_s"] == 60


def test_refuses_a_non_local_endpoint(deployed):
    cfg, _ = deployed
    with pytest.raises(AlertError, match="not a local emulator"):
        esm_runner.EsmRunner(cfg, endpoint="https://kinesis.us-east-1.amazonaws.com")


@pytest.mark.parametrize("mode", ["raise", "partial"])
def test_a_poison_row_is_isolated_retried_and_sent_to_the_failure_queue(deployed, tmp_path,
                                                                        mode):
    cfg, outs = deployed
    _failure_messages(cfg, outs)  # start empty
    rows = [_row(i) for i in range(9)]
    rows.insert(5, {**_row(99), "site": "poison.example"})
    seqs = _put(cfg, outs, rows)
    poison_seq = seqs[5]
    handler = Recorder(mode)
    runner = esm_runner.EsmRunner(cfg, handler=handler, position_file=tmp_path / "pos.json")
    # Only this test's records: skip what earlier tests left in the stream.
    runner.load_settings()
    runner._commit("shardId-000000000000", _before(cfg, outs, seqs[0]))
    totals = runner.poll_once()
    good = [s for i, s in enumerate(seqs) if i != 5]
    assert sorted(set(handler.succeeded)) == sorted(good), "every good row handled"
    assert poison_seq not in handler.succeeded
    failures = _failure_messages(cfg, outs)
    assert len(failures) == 1, failures
    info = failures[0]["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_seq
    assert info["batchSize"] == 1 and info["streamArn"] == outs["ScoresStreamArn"]
    assert failures[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failures[0]["requestContext"]["approximateInvokeCount"] == 6, "1 try + 5 retries"
    assert totals["retries"] == 5 and totals["sent_to_on_failure"] == 1
    if mode == "raise":
        assert totals["bisected"] >= 3, "10 rows halved down to the poison row"
        assert len(handler.batches[0]) == 10, "one batch first (BatchSize 100)"
    else:
        assert totals["partial_failures"] >= 6
        assert handler.batches[1][0]["site"] == "poison.example", (
            "the retry starts at the reported record: the rows before it are checkpointed")
    # The position is kept: a new runner re-reads nothing, then takes only new rows.
    again = Recorder(mode)
    runner2 = esm_runner.EsmRunner(cfg, handler=again, position_file=tmp_path / "pos.json")
    runner2.poll_once()
    assert again.batches == []
    new = _put(cfg, outs, [_row(50)])
    runner2.poll_once()
    assert again.succeeded == new


def _before(cfg, outs, first_seq: str) -> str:
    """The sequence number just before ``first_seq`` in the stream (or itself if first)."""
    kinesis = cfg.client("kinesis")
    it = kinesis.get_shard_iterator(StreamName=outs["ScoresStreamName"],
                                    ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    prev = None
    while it:
        page = kinesis.get_records(ShardIterator=it, Limit=1000)
        for r in page["Records"]:
            if r["SequenceNumber"] == first_seq:
                return prev or "0"
            prev = r["SequenceNumber"]
        if not page["Records"]:
            break
        it = page.get("NextShardIterator")
    raise AssertionError(f"{first_seq} not in the stream")


def test_real_handler_sends_one_alert_to_the_inbox(deployed, tmp_path):
    """An anomalous row twice (a redelivery) and a normal row: one SNS message, which the
    inbox queue (subscribed to the topic) receives."""
    cfg, outs = deployed
    alerts.inbox(cfg)  # drain
    seqs = _put(cfg, outs, [_row(1), _row(2, anomaly=True, site="alerts.example"),
                            _row(2, anomaly=True, site="alerts.example")])
    runner = esm_runner.EsmRunner(cfg, position_file=tmp_path / "pos.json")
    runner.load_settings()
    runner._commit("shardId-000000000000", _before(cfg, outs, seqs[0]))
    totals = runner.poll_once()
    assert totals["alerts_sent"] == 1 and totals["sent_to_on_failure"] == 0, totals
    got = alerts.read_inbox(cfg, wait_seconds=5)
    assert [g["site"] for g in got] == ["alerts.example"], got
    assert got[0]["episode_id"] == "alerts.example-ep-2"


def test_background_process_keeps_its_position(deployed):
    """start / status / stop as a process; the position file outlives it."""
    import time

    cfg, outs = deployed
    seqs = _put(cfg, outs, [_row(7)])
    info = esm_runner.start(cfg)
    try:
        assert info["running"] and esm_runner.status(cfg)["pid"] == info["pid"]
        position = cfg.lab_dir / esm_runner.POSITION_FILE
        deadline = time.time() + 60
        while time.time() < deadline:
            saved = json.loads(position.read_text()) if position.exists() else {}
            (key,) = saved or [None]
            if key and key.startswith(outs["ScoresStreamArn"] + "@") and (
                    saved[key].get("shardId-000000000000") == seqs[0]):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no position after 60 s; log:\n{esm_runner.status(cfg)}")
    finally:
        assert esm_runner.stop(cfg) is True
    assert esm_runner.status(cfg)["running"] is False and position.exists()
