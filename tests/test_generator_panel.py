"""The generator panel: buttons and sliders call the traffic functions; counters and chart."""

from __future__ import annotations

import pytest

from labhelpers.errors import GeneratorError
from labhelpers.generate.panel import (
    GeneratorPanel,
    achieved_rates,
    counters_html,
    css_name,
    rate_chart_svg,
)
from labhelpers.infra.config import LabConfig


class FakeTraffic:
    """Stands in for labhelpers.generate.traffic: records calls, reports a status."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.running = False
        self.fail_next: str | None = None

    def _maybe_fail(self):
        if self.fail_next:
            what, self.fail_next = self.fail_next, None
            raise GeneratorError(what, "do something else.")

    def status(self, cfg):
        hist = [[float(t), 10 * t, 10 * t - (5 if t == 3 else 0)] for t in range(6)]
        return {"running": self.running, "records": 50, "rates": {"Impression": 1.0,
                                                                  "Click": 2.0},
                "history": hist if self.running else [], "spikes": 0,
                "sink": {"sent": 50, "acknowledged": 48, "retried": 3, "throttled": 3,
                         "failed": 2, "last_error": "Throttled: slow down"},
                "warning": "falling <behind>", "last_event_time": "2026-01-01T00:00:00.000Z"}

    def start(self, cfg, **kw):
        self._maybe_fail()
        self.calls.append(("start", kw))
        self.running = True

    def stop(self, cfg):
        self.calls.append(("stop",))
        self.running = False

    def spike(self, cfg, **kw):
        self._maybe_fail()
        self.calls.append(("spike", kw))

    def set_rate(self, cfg, name, rate):
        self._maybe_fail()
        self.calls.append(("rate", name, rate))


@pytest.fixture
def panel(tmp_path):
    fake = FakeTraffic()
    p = GeneratorPanel(LabConfig(home=tmp_path), sites=["a.example"],
                       rates={"Impression": 1.0, "Click": 1.0}, backend=fake)
    yield p, fake
    p.close()


def test_buttons_and_sliders_drive_the_traffic(panel):
    p, fake = panel
    assert set(p.sliders) == {"Impression", "Click"}, "one slider per template"
    assert not p.start_button.disabled and p.stop_button.disabled, "stopped: only Start"
    p.sliders["Click"].value = 3.0  # not running: remembered for Start, not sent
    assert fake.calls == [], f"no call while stopped: {fake.calls}"
    p.start_button.click()
    assert fake.calls[-1] == ("start", {"sites": ["a.example"], "rates": {
        "Impression": 1.0, "Click": 3.0}, "templates": None}), fake.calls
    assert p.start_button.disabled and not p.spike_button.disabled, "running: Stop, Spike"
    p.sliders["Impression"].value = 0.0
    assert fake.calls[-1] == ("rate", "Impression", 0.0), fake.calls
    p.spike_extra.value, p.spike_seconds.value = 5, 30
    p.spike_button.click()
    assert fake.calls[-1] == ("spike", {"extra_senders": 5, "seconds": 30,
                                        "payload": "Click"}), fake.calls
    assert "x6" in p.message.value, f"the spike's size is shown: {p.message.value}"
    p.stop_button.click()
    assert fake.calls[-1] == ("stop",) and not p.start_button.disabled


def test_errors_are_shown_not_raised(panel):
    p, fake = panel
    fake.fail_next = "Kinesis stream 'x' does not exist"
    p.start_button.click()
    assert "does not exist" in p.message.value and "Fix:" in p.message.value, p.message.value
    assert not fake.running, "a failed start leaves it stopped"


def test_counters_and_chart_show_the_status(panel):
    p, fake = panel
    fake.running = True
    p.refresh()
    for text in ("running", ">48<", ">3<", ">2<", "falling &lt;behind&gt;",
                 "Throttled: slow down"):
        assert text in p.counters.value, f"counters should show {text!r}: {p.counters.value}"
    assert "<polyline" in p.chart.value and 'class="planned"' in p.chart.value, p.chart.value


def test_rates_from_history_and_chart_scale():
    hist = [[0.0, 0, 0], [1.0, 10, 10], [2.0, 20, 15], [2.0, 20, 15], [4.0, 40, 35]]
    assert achieved_rates(hist) == [(1.0, 10.0), (2.0, 5.0), (4.0, 10.0)], "per interval"
    assert achieved_rates([]) == []
    svg = rate_chart_svg([(1.0, 10.0), (2.0, 5.0)], planned=20)
    assert svg.startswith("<svg") and ">23<" in svg, f"y axis tops at 1.15 x max: {svg}"
    assert "<polyline" not in rate_chart_svg([]), "no line without data"
    assert "stopped" in counters_html({}), "an empty status reads as stopped"


def test_widgets_carry_stable_css_classes(panel):
    """tests/test_browser.py finds the widgets by these classes."""
    p, fake = panel
    assert "lab-generator" in p.widget._dom_classes
    assert "lab-rate-Click" in p.sliders["Click"]._dom_classes
    assert "lab-rate-Impression" in p.sliders["Impression"]._dom_classes
    for widget, cls in ((p.spike_button, "lab-spike"), (p.start_button, "lab-start"),
                        (p.spike_seconds, "lab-spike-seconds"), (p.counters, "lab-counters"),
                        (p.chart, "lab-rate-chart")):
        assert cls in widget._dom_classes, (cls, widget._dom_classes)
    fake.running = True
    p.refresh()
    assert "class='lab-count-acknowledged'" in p.counters.value, p.counters.value
    assert css_name("My Purchase+1") == "My_Purchase_1"
