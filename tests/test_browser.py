"""The lab in a real browser: JupyterLab headless, driven by Chromium through Playwright.

It also types a solution into notebook 02's checked task and reads the checker's verdict.

Sets the lab up headless with the labhelpers API (what notebooks 00, 01 and 03 do: emulator,
stack, analytics app), while JupyterLab and Chromium start. In JupyterLab it runs the
generator notebook (02), moves its Click rate slider and checks that the achieved rate went
up (the panel's counters, cross-checked with ``traffic.status``), runs the monitor notebook
(04) with ``SPIKE_FROM="panel"``, presses the panel's Spike button and reads the anomaly and
the alert from the monitor's DOM; 04's own check then passes (one alert, plot saved).
Screenshots go to pytest's tmp folder and, if set, to ``$LAB_SCREENSHOTS``. Everything is
cleaned up (``labhelpers.run.cleanup``), also on failure. Budget: under 3 minutes (issue 6).

Needs Debian's Chromium at /usr/bin/chromium (or ``$LAB_CHROMIUM``) and the ``playwright``
package (its own browser downloads are never used). Skipped without them, except in CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from labhelpers.generate.panel import achieved_rates
from labhelpers.infra.config import LabConfig
from tests.browser_lab import CHROMIUM, CHROMIUM_ARGS, JupyterLab, Lab, free_port, prepare

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

BUDGET_S = 180  # issue 6: the browser test takes under 3 minutes
PREFIX = "brlab"
# Short windows so that the forest learns enough of them within the budget. What limits a
# spike's score is the number of windows the forest has learned, not their length: measured
# with labhelpers.job.forest.SiteModel on this test's traffic (short windows, a partial first
# window and the window of the rate change among them), a full spike window scores ~3.2
# after 16 learned windows, ~3.55 after 20 and ~3.7 after 24, against the threshold 3.0. So
# 24 learned windows of 2 s. The traffic starts only once the app runs: a backlog found at
# the app's start is read in random order and partly dropped as late (README, known
# limits), which leaves odd, partial windows that could be flagged once warm-up is over.
WINDOW_SECONDS = 2
LEARNED_WINDOWS = 24
SPIKE_SECONDS = 5  # the panel's spike slider, moved down from 20: 2-3 windows, as in the lab
# What a student types into notebook 02's checked task (the whole cell).
TYPED_TEMPLATE_CELL = '''MY_TEMPLATE = """
### Purchase
{"browseraction": "Click", "user": "{{uuid}}", "price": {{float(5, 500, 2)}},
 "device": "{{weighted({'mobile': 6, 'desktop': 4})}}"}
"""
from labhelpers.teach import tasks
tasks.record(RUN_DIR, tasks.check_template(MY_TEMPLATE))
'''


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the browser test must run; .ci/run installs it)")
    pytest.skip(reason)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, what: str) -> None:
        self.marks[what] = round(self.elapsed, 1)
        print(f"[browser test] {self.marks[what]:6.1f} s  {what}", flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0


class Setup:
    """What notebooks 00, 01 and 03 do, through the labhelpers API, in two background
    threads: the analytics app (short windows; the longest step, so it starts first: it needs
    the emulator only once there are scores to alert on), and the emulator then the stack."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.deployed, self.app_started = threading.Event(), threading.Event()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._guard, args=(f, e), daemon=True)
                        for f, e in ((self._infra, self.deployed),
                                     (self._app, self.app_started))]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _guard(self, step, done: threading.Event) -> None:
        try:
            step()
            done.set()
        except BaseException as err:
            self.errors.append(repr(err))

    def _infra(self) -> None:
        from labhelpers.infra import emulator, stack

        emulator.start(self.cfg)
        stack.deploy(self.cfg)

    def _app(self) -> None:
        from labhelpers.analytics import runner as app
        from labhelpers.job.forest import ForestParams

        app.start(self.cfg, forest=ForestParams(), window_seconds=WINDOW_SECONDS,
                  wait_seconds=150)

    def wait(self, event: threading.Event, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not event.wait(0.2):
            if self.errors:
                raise AssertionError(f"set-up failed before {what}: {self.errors}")
            if time.monotonic() > deadline:
                raise AssertionError(f"set-up: no {what} after {timeout:.0f} s")

    def join(self, timeout: float) -> None:
        for t in self.threads:
            t.join(timeout)


def _count(lab: Lab, path: str, name: str) -> int:
    """A counter of the generator panel (``lab-count-<name>``), from the DOM."""
    digits = re.sub(r"\D", "", lab.text(path, f".lab-count-{name} b"))
    return int(digits) if digits else -1


def _dom_rate(lab: Lab, path: str, seconds: float) -> float:
    """Acknowledged records/s, from two readings of the panel's counter."""
    a0, t0 = _count(lab, path, "acknowledged"), time.monotonic()
    lab.page.wait_for_timeout(seconds * 1000)
    a1, t1 = _count(lab, path, "acknowledged"), time.monotonic()
    assert a0 >= 0 and a1 >= 0, "the panel shows no acknowledged counter"
    return (a1 - a0) / (t1 - t0)


def _status_number(text: str, name: str) -> int:
    m = re.search(rf"{name}: (\d+)", text)
    return int(m.group(1)) if m else -1


def test_generator_and_monitor_in_a_real_browser(tmp_path):
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM}: apt-get install chromium "
                 "(or set LAB_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed: pip install -e '.[dev]'")
    from labhelpers.generate import traffic

    timer = Timer()
    home, run, served = tmp_path / "home", tmp_path / "run", tmp_path / "notebooks"
    shot_dir = tmp_path / "screenshots"
    for d in (run, served, shot_dir):
        d.mkdir()
    emulator_port = free_port()
    env = {**os.environ, "LAB_HOME": str(home), "LAB_EMULATOR_PORT": str(emulator_port),
           "LAB_PREFIX": PREFIX, "PYTHONUNBUFFERED": "1"}
    cfg = LabConfig(home=home, emulator_port=emulator_port, prefix=PREFIX)
    base = {"PREFIX": PREFIX, "RUN_DIR": str(run)}
    shots: list[Path] = []
    setup = Setup(cfg)
    jupyter: JupyterLab | None = None
    pw = browser = lab = None
    ok = False
    try:
        setup.start()
        # the served folder: notebooks 02 and 04 with their parameters (papermill's
        # injected-parameters cell), so Run All in the browser uses them
        # no past traffic: this app is already running from the latest position (02's past
        # traffic is for 03's warm start), so past records would be its first windows and
        # the forest would be ready before the rate change below instead of learning it
        prepare("02_generate.ipynb", served, {**base, "PAST_SECONDS": 0})
        prepare("04_monitor_alerts.ipynb", served, {
            **base, "LEARNED_WINDOWS": LEARNED_WINDOWS, "SPIKE_FROM": "panel",
            "TIMEOUT_SECONDS": 150,
            # the test ends after 04's check: the restart of section 5 must not start the
            # app again while the cleanup runs (the kernel is stopped long before 600 s)
            "DOWNTIME_SECONDS": 600})
        jupyter = JupyterLab(served, tmp_path, env)
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        lab = Lab(page, shots, shot_dir)
        jupyter.wait_ready()
        page.goto(f"{jupyter.url}/lab?token={jupyter.token}")
        page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
        timer.mark("JupyterLab open in Chromium")
        nb02, nb04 = "02_generate.ipynb", "04_monitor_alerts.ipynb"
        lab.open(nb04)  # both kernels start while the app does
        lab.open(nb02)
        timer.mark("notebooks 02 and 04 open")
        setup.wait(setup.deployed, "emulator and stack", 90)
        timer.mark("emulator started, stack deployed")
        setup.wait(setup.app_started, "analytics app", 150)
        timer.mark("analytics app running")

        # ---- notebook 02 in the browser: traffic and its panel
        lab.run_all(nb02)
        lab.wait(nb02, lambda: "running" in lab.text(nb02, ".lab-counters"),
                 "running generator in the panel", 60)
        lab.wait(nb02, lambda: _count(lab, nb02, "acknowledged") > 0, "acknowledged records",
                 30)
        timer.mark("02 runs: traffic started, panel shown")
        before = _dom_rate(lab, nb02, 3)
        lab.press_slider(nb02, ".lab-rate-Click", "ArrowRight", 2)  # 1.0 -> 2.0 Click/s
        lab.wait(nb02, lambda: "2.0" in lab.text(nb02, ".lab-rate-Click .widget-readout"),
                 "Click slider at 2.0", 10)
        lab.wait(nb02, lambda: (traffic.status(cfg).get("rates") or {}).get("Click") == 2.0,
                 "Click rate 2.0 in the generator", 15)
        lab.page.wait_for_timeout(1500)  # let the new rate settle
        # 10 s: the panel's counter moves in batches and, on a busy machine, late; over 4 s
        # that read 2.1 records/s while the generator achieved 3.06 (a CI run of make test)
        after = _dom_rate(lab, nb02, 10)
        history = achieved_rates(traffic.status(cfg)["history"], seconds=10)
        status_rate = sum(r for _, r in history) / max(1, len(history))
        lab.shot("generator-panel", nb02, ".lab-generator")
        timer.mark(f"rate slider moved: {before:.2f} -> {after:.2f} records/s acknowledged "
                   f"(generator: {status_rate:.2f})")
        # Impression 1 + Click 1 -> Impression 1 + Click 2 records/s for the one site
        assert before < 2.6 and after > 2.5 and after > before + 0.5, (
            f"the achieved rate did not go up: {before:.2f} -> {after:.2f} records/s")
        assert status_rate > 2.5, f"traffic.status disagrees: {history}"

        # ---- notebook 02's checked task: the starter's verdict, then a solution typed in
        lab.wait(nb02, lambda: "not yet:" in lab.text(nb02, ".lab-verdict-no"),
                 "the template task's 'not yet' verdict", 30)
        lab.type_into_cell(nb02, "MY_TEMPLATE = ", TYPED_TEMPLATE_CELL)
        lab.wait(nb02, lambda: "done:" in lab.text(nb02, ".lab-verdict-ok"),
                 "the template task's 'done' verdict", 30)
        lab.shot("task-verdict", nb02, ".lab-verdict-ok")
        verdict = json.loads((run / "values.json").read_text())["exercise_02_template"]
        assert verdict["ok"] and "records rendered" in verdict["message"], verdict
        timer.mark("02's checked task: a typed solution got its verdict")

        # ---- notebook 04 in the browser: the live monitor
        lab.run_all(nb04)
        lab.wait(nb04, lambda: lab.text(nb04, ".lab-monitor-status"), "live monitor", 60)
        timer.mark("04 runs: live monitor shown")
        lab.wait(nb04, lambda: "press Spike" in lab.text(nb04, ".lab-monitor-note"),
                 f"{LEARNED_WINDOWS} learned windows (the monitor asking for a spike)", 150)
        lab.shot("monitor-before-spike", nb04, ".lab-monitor")
        timer.mark("forest warmed up; the monitor asks for the Spike button")

        # ---- press Spike in the panel (notebook 02's tab)
        lab.activate(nb02)
        lab.press_slider(nb02, ".lab-spike-seconds", "ArrowLeft", 3)  # 20 -> 5 s
        lab.wait(nb02, lambda: lab.text(nb02, ".lab-spike-seconds .widget-readout").strip()
                 == str(SPIKE_SECONDS), f"spike seconds slider at {SPIKE_SECONDS}", 10)
        lab.find(nb02, ".lab-spike").click()
        lab.wait(nb02, lambda: "x4: done" in lab.text(nb02, ".lab-message"),
                 "the spike acknowledged by the panel", 15)
        lab.wait(nb02, lambda: _count(lab, nb02, "spikes") == 1, "spikes: 1 in the counters",
                 10)
        timer.mark("Spike pressed")
        lab.shot("generator-spiked")

        # ---- the anomaly and the alert, read from the monitor's DOM
        lab.activate(nb04)
        lab.wait(nb04, lambda: _status_number(lab.text(nb04, ".lab-monitor-anomalies"),
                                              "anomalies") >= 1, "anomaly in the monitor", 90)
        timer.mark("anomaly shown by the monitor")
        lab.wait(nb04, lambda: _status_number(lab.text(nb04, ".lab-monitor-alerts"),
                                              "alerts") == 1, "alert in the monitor", 60)
        lab.shot("monitor-anomaly", nb04, ".lab-monitor")
        assert "ANOMALY" in lab.text(nb04, ".lab-monitor-table"), "anomalous row in the table"
        assert "Inbox (1 alert)" in lab.text(nb04, ".lab-monitor-inbox")
        timer.mark("alert shown by the monitor")
        # the notebook's own check: the spike flagged, exactly one alert, the plot saved
        lab.wait(nb04, lambda: (run / "values.json").exists()
                 and "alerts_received" in json.loads((run / "values.json").read_text()),
                 "04's final check", 90)
        values = json.loads((run / "values.json").read_text())
        assert values["alerts_received"] == 1 and values["anomalies"] >= 1, values
        assert "stopped" in lab.text(nb04, ".lab-monitor-state"), "the monitor stopped"
        assert (run / "scores.png").stat().st_size > 10_000, "the final plot was not saved"
        lab.shot("monitor-final", nb04, ".lab-monitor")
        lab.shot("notebook-04")
        timer.mark(f"04 passed its check: {values['anomalies']} anomalous window(s), "
                   f"max score {values['max_score']:.2f}, "
                   f"{values['windows_learned_before_spike']} windows learned before")
        ok = True
    finally:
        if lab is not None and not ok:
            with contextlib.suppress(Exception):
                lab.shot("failure")
        from labhelpers.run.cleanup import cleanup

        report = None
        for closer in (lambda: browser.close(), lambda: pw.stop()):
            with contextlib.suppress(Exception):
                closer()
        # the kernels and JupyterLab stop while the lab is cleaned up
        stopper = threading.Thread(target=lambda: jupyter and jupyter.stop(), daemon=True)
        stopper.start()
        try:
            setup.join(150)  # an app still starting is stopped by the cleanup
            report = cleanup(cfg, progress=False)
        finally:
            stopper.join(30)
            keep = os.environ.get("LAB_SCREENSHOTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                for shot in shots:
                    shutil.copy2(shot, Path(keep) / shot.name)
            timer.mark(f"cleaned up; screenshots in {shot_dir}"
                       + (f" and {keep}" if keep else ""))
            (shot_dir / "timings.json").write_text(json.dumps(timer.marks, indent=2))
        if ok:
            assert report and report["leftovers"] == [], f"cleanup left {report}"
    if timer.elapsed > BUDGET_S:
        print(f"[browser test] WARNING: {timer.elapsed:.0f} s, over the {BUDGET_S} s budget")
