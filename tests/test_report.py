"""The instructor's one-page report of a headless run."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from labhelpers.run.report import REPORT_FILE, checks, write_report  # noqa: E402

GOOD = {
    "records_sent": 471, "windows_scored": 18, "anomalies": 3, "alerts_received": 1,
    "ok": True, "failed": None, "seconds": 283.7,
    "notebook_seconds": {"00_setup.ipynb": 12.3, "04_monitor_alerts.ipynb": 162.6},
    "values": {"alert_latency_s": 9.2, "leftovers": [], "max_score": 3.79,
               "stack_outputs": {"InputStreamName": "clicklab-clicks"}},
}


def _run(tmp_path: Path, summary: dict) -> Path:
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "scores.png")
    fig.savefig(tmp_path / "extra.png")
    plt.close(fig)
    (tmp_path / "04_monitor_alerts.ipynb").write_text("{}")
    return tmp_path


def test_a_good_run_passes_with_figures_timings_and_embedded_plots(tmp_path):
    out = write_report(_run(tmp_path, GOOD))
    page = out.read_text()
    assert out.name == REPORT_FILE
    assert "PASS" in page and "FAIL" not in page
    assert "9.2 s after the window closed" in page
    assert "04_monitor_alerts.ipynb" in page and "163 s" in page
    # plots are embedded (the page stands alone), the lab's own plot first
    assert page.count("data:image/png;base64,") == 2
    assert page.index('alt="scores.png"') < page.index('alt="extra.png"')
    # nested values (stack outputs) are not dumped into the figures table
    assert "clicklab-clicks" not in page


def test_each_broken_promise_fails_the_report_and_says_which():
    def failed(**changes):
        summary = json.loads(json.dumps(GOOD))
        values = changes.pop("values", {})
        summary.update(changes)
        summary["values"].update(values)
        return [c.name for c in checks(summary) if not c.passed]

    assert failed() == []
    assert failed(alerts_received=2) == ["exactly one alert arrived"]
    assert failed(anomalies=0) == ["the spike was flagged"]
    assert failed(values={"leftovers": ["stream clicklab-clicks"]}) == ["cleanup left nothing"]
    assert failed(values={"alert_latency_s": 40.0}) == ["alert within 20 s"]
    assert "every notebook ran" in failed(ok=False, failed="03_analytics_app.ipynb: boom")


def test_a_failed_run_says_so_at_the_top(tmp_path):
    bad = dict(GOOD, ok=False, failed="03_analytics_app.ipynb: app did not start",
               alerts_received=0, values={"leftovers": []})
    page = write_report(_run(tmp_path, bad)).read_text()
    assert "FAIL" in page.split("<h2>")[0]
    assert "stopped at 03_analytics_app.ipynb: app did not start" in page
