"""The lab's own test through the live app, in event time: emulator + stack + Flink app +
alert poller + SNS + SQS inbox. Ten minutes of normal traffic, then the spike: the spike's
windows are flagged and exactly one alert arrives."""

import json
import time
from datetime import UTC, datetime

import pytest

from labhelpers.alerts import inbox as alert_inbox
from labhelpers.analytics import runner as app
from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline, to_line
from labhelpers.infra import stack
from labhelpers.monitor.tables import scores_frame
from labhelpers.stream.log import StreamLogWriter
from labhelpers.wait import wait_until

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WARMUP_S = 600


@pytest.fixture()
def flow_cfg(emulator_cfg):
    cfg = emulator_cfg.with_(prefix="flowlab")
    stack.deploy(cfg, progress=False)
    yield cfg
    app.stop(cfg)
    stack.delete(cfg, progress=False)


def test_lab_spike_test_through_the_app(flow_cfg):
    cfg = flow_cfg
    plan = lab_test_plan(warmup_s=WARMUP_S, sites=("example.com",))
    lines = [to_line(r) for r in timeline(plan, START, seed=3)]
    # one file: files found in one directory scan are read in random order (FINDINGS)
    StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append(lines)
    app.start(cfg, start_position="earliest")
    n_windows = (WARMUP_S + 20 + 30) // 10 - 1  # the last window waits for later records
    wait_until(lambda: len(scores_frame(cfg)) >= n_windows, "all windows scored", timeout=180)
    got = wait_until(lambda: alert_inbox.inbox(cfg), "the alert", timeout=60)
    time.sleep(5)  # a second (wrong) message would arrive within the poller's next rounds
    inbox = alert_inbox.inbox(cfg)
    df = scores_frame(cfg)
    spike_start = START.timestamp() + WARMUP_S
    flagged = df[df["is_anomaly"]]
    starts = flagged["window_start"].map(lambda t: t.timestamp())
    assert len(flagged) >= 2 and (starts >= spike_start).all(), (
        f"flagged windows:\n{flagged}")
    assert len(inbox) == 1, f"expected one alert for one episode, got {inbox}"
    assert inbox[0]["episode_id"] == flagged.iloc[0]["episode_id"]
    assert "example.com" in inbox[0]["subject"] and "400.0 %" in json.dumps(got)
    status = app.status(cfg)
    assert status["running"] and status["bad_records"] == 0, status
