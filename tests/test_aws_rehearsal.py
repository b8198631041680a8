"""The aws backend rehearsed against the emulator (issue 13), shortened: the stack deployed
as on AWS, the lab's test traffic into the input Kinesis stream through the generator's
Kinesis sink, the PACKAGED app through the managed-service stand-in (the real connector,
Kinesis in and out), the alert function's event source mapping applied by the local runner,
SNS to the inbox queue, and a clean-up that leaves nothing. Fails in CI without the
connector jar (tests/connector_jar.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from labhelpers.backends import for_config
from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline_batches
from labhelpers.infra import stack
from labhelpers.infra.config import LabConfig
from labhelpers.run.cleanup import cleanup
from labhelpers.wait import wait_until
from tests.connector_jar import require_connector_jar

pytestmark = [pytest.mark.integration, pytest.mark.notebooks]  # it runs run_lab
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WARMUP_S = 300


def test_the_aws_path_on_the_emulator(emulator_cfg, tmp_path):
    from labhelpers.analytics import packaging
    from tests.test_packaging import installed_krcf_wheel

    jar = require_connector_jar()
    zip_path = packaging.build_zip(jar, [installed_krcf_wheel(tmp_path)], out=tmp_path / "a.zip")
    cfg = LabConfig(backend="aws", emulated=True, prefix="testrehearse", home=emulator_cfg.home,
                    emulator_port=emulator_cfg.emulator_port, region=emulator_cfg.region)
    lab = for_config(cfg)
    assert lab.name == "aws" and lab.runs_emulator
    stack.deploy(cfg, progress=False)
    try:
        sink = lab.input_sink()
        sent = 0
        for batch in timeline_batches(lab_test_plan(warmup_s=WARMUP_S), START, seed=5):
            sink.send(batch.lines, batch.keys)
            sent += len(batch.lines)
        assert sink.stats.acknowledged == sent, sink.stats
        t0 = time.monotonic()
        lab.start_app(zip_path=zip_path, start_position="earliest", warmup_windows=12)
        t_started = time.monotonic() - t0
        first = lab.wait_for_scores(count=1, timeout=600)
        seconds_to_first_score = time.monotonic() - t0
        n_windows = (WARMUP_S + 20) // 10 - 1  # the last window waits for later records
        rows = wait_until(lambda: len(lab.scores()) >= n_windows and lab.scores(),
                          "every window scored", timeout=300)
        inbox = wait_until(lab.inbox, "the alert in the inbox", timeout=120)
        time.sleep(5)  # a second (wrong) message would arrive within the runner's next polls
        inbox = lab.inbox()
        flagged = [r for r in rows if r["is_anomaly"]]
        spike = START.timestamp() + WARMUP_S
        assert flagged and all(
            datetime.fromisoformat(r["window_start"]).timestamp() >= spike for r in flagged), (
            f"flagged: {flagged}")
        assert len(inbox) == 1, f"one episode, one alert: {inbox}"
        assert lab.app_params().forest.warmup_windows == 12
        print(f"rehearsal: {sent} records, {len(rows)} windows; stand-in submitted after "
              f"{t_started:.0f} s, first score after {seconds_to_first_score:.0f} s, all "
              f"windows after {time.monotonic() - t0:.0f} s (first: {first[0]['window_end']})")
    finally:
        report = cleanup(cfg, stop_emulator=False, progress=False)
    assert report["leftovers"] == [], report
    assert not lab.app_running()
