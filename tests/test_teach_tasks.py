"""The checked tasks: a verdict in one sentence for every answer, never a stack trace."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labhelpers.job.forest import ForestParams
from labhelpers.teach import instructor_solutions as sol
from labhelpers.teach import sql_exercises as sx
from labhelpers.teach import tasks
from tests.test_teach_run_rule import START, job_rows


def test_template_verdicts():
    v = tasks.check_template(sol.answer("02_template"))
    assert v.ok and str(v).startswith("done:"), v
    cases = {
        "": "empty",
        '### Other\n{"browseraction": "Click"}\n': "no template named Purchase",
        '### Purchase\n{"browseraction": "Click"}\n': "no field 'user'",
        '### Purchase\n{"browseraction": "Click", "user": "bob", "price": 3, "device": "x"}\n':
            "not a UUID",
        '### Purchase\n{"browseraction": "Click", "user": "{{uuid}}", "price": "{{float(5, 500, '
        '2)}}", "device": "mobile"}\n': "not a number",
        '### Purchase\n{"browseraction": "Click", "user": "{{uuid}}", "price": {{float(5, 500, '
        '2)}}, "device": "mobile"}\n': "devices are",
        '### Purchase\n{"browseraction": "Click", "user": "{{uuid}}", "price": {{float(5, 500, '
        '2)}\n': "",  # a broken placeholder: the generator's own message
    }
    for text, words in cases.items():
        v = tasks.check_template(text)
        assert not v.ok and str(v).startswith("not yet: ") and words in v.message, (text, v)
        assert "\n" not in v.message and "Traceback" not in v.message


def test_verdicts_go_to_the_run_record(tmp_path):
    v = tasks.record(tmp_path, tasks.check_template(""))
    said = tasks.record_prediction(tmp_path, "spike_score", 5)
    values = json.loads((tmp_path / "values.json").read_text())
    assert values["exercise_02_template"] == {"ok": False, "message": v.message}
    assert values["prediction_spike_score"] == 5 and "saved" in said
    assert "No prediction" in tasks.record_prediction(tmp_path, "other", None)


def test_tumble_ctr_checker_on_live_like_records():
    records = sx.exercise_records()
    want = sx.expected_hop(records, 10, 10)
    cols = ["window_start", "window_end", "site", "clicks", "impressions", "ctr"]

    def result(rows):
        return sx.QueryResult(columns=cols, rows=rows)

    def iso(t):
        from datetime import UTC, datetime
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    good = [[iso(s), iso(s + 10), site, c, i, 100.0 * c / i if i else None]
            for (s, site), (c, i) in sorted(want.items())]
    assert sx.check_tumble_ctr(result(good), records).ok
    int_div = [r[:5] + [100.0 * (r[3] // r[4]) if r[4] else None] for r in good]
    v = sx.check_tumble_ctr(result(int_div), records)
    assert not v.ok and "integer division" in v.message, v
    thirty = [[r[0], iso(sx._epoch(r[0]) + 30)] + r[2:] for r in good]
    v = sx.check_tumble_ctr(result(thirty), records)
    assert not v.ok and "TUMBLE" in v.message, v
    starter = sx.QueryResult(columns=["site", "records"], rows=[["a", 1]])
    v = sx.check_tumble_ctr(starter, records)
    assert not v.ok and "no column window_start" in v.message, v


def test_forest_threshold_verdicts():
    params = ForestParams()
    rng = np.random.default_rng(1)
    counts = [(10, 10)] * 30 + [(40, 10)] * 2 + [(10, 10)] * 2
    df = job_rows(counts, params)
    spike_start = START.timestamp() + 300
    right = sol.answer("04_threshold", df=df, params=params, spike_start=spike_start)
    v = tasks.check_forest_threshold(df, params, spike_start, right)
    assert v.ok, v
    assert "raise it" in tasks.check_forest_threshold(df, params, spike_start, 0.01).message
    assert "lower it" in tasks.check_forest_threshold(df, params, spike_start, 99).message
    for bad in (None, "3", float("nan"), -1):
        v = tasks.check_forest_threshold(df, params, spike_start, bad)
        assert not v.ok and "write a number" in v.message, v
    del rng


@pytest.mark.integration
def test_stack_tasks_on_the_emulator(emulator_cfg):
    from labhelpers.infra import stack
    from labhelpers.run.cleanup import cleanup

    cfg = emulator_cfg.with_(prefix="testtask")
    try:
        stack.deploy(cfg, progress=False)
        v = tasks.check_shards(cfg, 2)
        assert not v.ok and "shard_count=2" in v.message, v
        sol.solve("01_shards", cfg)
        assert tasks.check_shards(cfg, 2).ok
        outside = tasks.outside_stack(cfg)
        # the stack owns its streams, buckets, topic, queues, roles, function and log groups
        # (queues as URLs, the topic as an ARN); the artifacts bucket is made before it
        assert len(outside) == 1 and outside[0].startswith("testtask-artifacts-"), outside
        assert tasks.check_outside_stack(cfg, sol.answer("05_outside_stack", cfg=cfg)).ok
        v = tasks.check_outside_stack(cfg, [f"{cfg.prefix}-inbox"])
        assert not v.ok and "not outside the stack" in v.message, v
        v = tasks.check_outside_stack(cfg, [*outside, f"{cfg.input_stream}"])
        assert not v.ok and "not outside the stack" in v.message, v
        assert "empty" in tasks.check_outside_stack(cfg, []).message
    finally:
        cleanup(cfg, progress=False, stop_emulator=False)
