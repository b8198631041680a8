"""A class on one server (issue 12): two students' labs at once, each in its own lab home
(as two users get by default: ~/.clicklab per user) with the emulator port the home chose.
Each goes through deploy, traffic, the app, an alert and the clean-up; neither sees the
other's records, scores or alerts, and one student's clean-up leaves the other's lab as it
was."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from labhelpers import backend_for, load_config
from labhelpers.generate.plan import lab_test_plan, steady_plan
from labhelpers.generate.timeline import timeline_batches
from labhelpers.infra import emulator, stack
from labhelpers.run.cleanup import cleanup
from labhelpers.wait import wait_until

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WARMUP_S = 300


def _student(home, prefix, sites, spike):
    cfg = load_config(home=home, prefix=prefix)  # the port: the home's own choice
    lab = backend_for(cfg)
    emulator.start(cfg)
    stack.deploy(cfg, progress=False)
    plan = lab_test_plan(warmup_s=WARMUP_S, sites=sites) if spike else steady_plan(
        sites, duration_s=WARMUP_S + 50)
    sink = lab.input_sink()
    for batch in timeline_batches(plan, START, seed=len(prefix)):
        sink.send(batch.lines, batch.keys)
    lab.start_app(start_position="earliest", window_seconds=10, warmup_windows=12)
    return cfg, lab


def test_two_students_at_once_never_see_each_other(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_EMULATOR_PORT", raising=False)
    monkeypatch.delenv("LAB_HOME", raising=False)
    made: dict[str, tuple] = {}
    errors: list[BaseException] = []

    def run(name, sites, spike):
        try:
            made[name] = _student(tmp_path / name, f"lab-{name}", sites, spike)
        except BaseException as err:  # reported below, with the other student's result
            errors.append(err)

    threads = [threading.Thread(target=run, args=("ana", ("ana.example",), True)),
               threading.Thread(target=run, args=("ben", ("ben.example",), False))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        (a_cfg, ana), (b_cfg, ben) = made["ana"], made["ben"]
        assert a_cfg.emulator_port != b_cfg.emulator_port, "one emulator each"
        n_windows = (WARMUP_S + 20) // 10 - 1
        for lab in (ana, ben):
            wait_until(lambda lab=lab: len(lab.scores()) >= n_windows, "the windows scored",
                       timeout=300)
        alert = wait_until(ana.inbox, "Ana's alert", timeout=120)
        assert len(alert) == 1 and alert[0]["site"] == "ana.example", alert
        assert ben.inbox() == [], "Ben's steady traffic gives no alert, and never Ana's"
        assert {r["site"] for r in ana.scores()} == {"ana.example"}
        assert {r["site"] for r in ben.scores()} == {"ben.example"}
        assert all("ben.example" not in line for line in ana.input_lines(None))
        assert all("ana.example" not in line for line in ben.input_lines(None))

        report = cleanup(a_cfg, progress=False)  # Ana is done first
        assert report["leftovers"] == [] and report["emulator_stopped"], report
        assert ben.app_running() and emulator.status(b_cfg)["running"], "Ben's lab runs on"
        assert stack.outputs(b_cfg)["InputStreamName"] == b_cfg.input_stream
        assert len(ben.scores()) >= n_windows
        report = cleanup(b_cfg, progress=False)
        assert report["leftovers"] == [], report
    finally:
        for cfg, _ in made.values():
            cleanup(cfg, progress=False)
        print(json.dumps({n: c.emulator_port for n, (c, _) in made.items()}))
