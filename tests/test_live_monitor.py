"""The live monitor of notebook 04, without a browser: fake frames, and a real stream folder."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest

from labhelpers.errors import AlertError
from labhelpers.infra.config import LabConfig
from labhelpers.monitor import live as live_monitor
from labhelpers.monitor.live import LiveMonitor, Snapshot, status_html
from labhelpers.stream.log import StreamLogWriter
from labhelpers.wait import WaitTimeout

# plot_scores on no windows yet draws empty legends (silenced in the kernel; pytest resets it)
pytestmark = pytest.mark.filterwarnings("ignore:No artists with labels found")
PNG = b"\x89PNG\r\n\x1a\n"
T0 = pd.Timestamp("2026-11-27T10:00:00Z")


def score_row(i: int, site: str = "a.example", score: float = 1.0, anomaly: bool = False,
              ready: bool = True, clicks: int = 10) -> dict:
    start = T0 + pd.Timedelta(seconds=10 * i)
    return {"window_start": start.strftime("%Y-%m-%d %H:%M:%S"),
            "window_end": (start + pd.Timedelta(seconds=10)).strftime("%Y-%m-%d %H:%M:%S"),
            "site": site, "clicks": clicks, "impressions": 10, "ctr": 10.0 * clicks,
            "anomaly_score": score, "is_anomaly": anomaly, "forest_ready": ready,
            "attribution": None, "episode_id": f"{site}@x" if anomaly else None}


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(live_monitor.SCORE_COLUMNS))
    for col in ("window_start", "window_end"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


class Source:
    """Stand-ins for the scores stream, the inbox and the generator's spike counter."""

    def __init__(self):
        self.rows: list[dict] = []
        self.messages: list[dict] = []
        self.spikes = 0
        self.inbox_error: Exception | None = None
        self.frame_error: Exception | None = None
        self.calls = 0

    def frames(self):
        self.calls += 1
        if self.frame_error:
            raise self.frame_error
        return frame(self.rows)

    def inbox(self):
        if self.inbox_error:
            raise self.inbox_error
        return list(self.messages)

    def spike_count(self):
        return self.spikes


@pytest.fixture
def src():
    return Source()


@pytest.fixture
def mon(tmp_path, src):
    m = LiveMonitor(LabConfig(home=tmp_path), 3.0, refresh_s=0.05, frames=src.frames,
                    inbox=src.inbox, spikes=src.spike_count)
    yield m
    m.stop()


def test_refresh_updates_status_plot_table_and_inbox_in_place(mon, src):
    snap = mon.refresh()
    assert snap.windows == 0 and "windows scored: 0" in mon.status.value, mon.status.value
    assert "no scored windows yet" in mon.table.value
    assert bytes(mon.plot.value).startswith(PNG), "a plot is shown even before the first window"
    src.rows = [score_row(i, ready=i >= 2, score=0.0 if i < 2 else 1.0) for i in range(5)]
    src.rows.append(score_row(5, score=4.2, anomaly=True, clicks=40))
    src.messages = [{"subject": "Anomaly on a.example", "site": "a.example",
                     "received_at": "2026-11-27T10:01:05.000+00:00"}]
    src.spikes = 1
    snap = mon.refresh()
    status = mon.status.value
    for text in ("windows scored: 6", "anomalies: 1", "alerts: 1", "spikes: 1",
                 "forest ready: yes", "learned per site: 5", "threshold: 3"):
        assert text in status, f"status should say {text!r}: {status}"
    assert "class='lab-monitor-anomalies'" in status, "the browser test finds it by class"
    assert "lab-monitor-anomaly" in mon.table.value and "4.20" in mon.table.value
    assert mon.table.value.count("<tr class=") == 6, "one row per window (at most 8)"
    assert "Anomaly on a.example" in mon.inbox.value and "10:01:05" in mon.inbox.value
    assert bytes(mon.plot.value).startswith(PNG)
    assert snap.anomalies == 1 and snap.alerts == 1 and snap.learned == 5, snap
    assert {"lab-monitor-status", "lab-monitor-plot"} <= {
        *mon.status._dom_classes, *mon.plot._dom_classes}, "stable CSS classes"
    assert "lab-monitor" in mon.widget._dom_classes


def test_plot_is_drawn_again_only_when_the_data_changed(mon, src):
    src.rows = [score_row(i) for i in range(3)]
    mon.refresh()
    mon.refresh()
    assert mon.renders == 1, "unchanged windows: the plot is not drawn again"
    src.rows.append(score_row(3))
    mon.refresh()
    assert mon.renders == 2, "a new window: drawn again"


def test_no_figure_is_left_for_the_notebook_to_show(mon, src):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    src.rows = [score_row(i) for i in range(3)]
    mon.refresh()
    assert plt.get_fignums() == before, "the monitor's figures are closed (no cell spam)"


def test_problems_are_shown_not_raised(mon, src):
    src.rows = [score_row(0)]
    mon.refresh()
    src.inbox_error = AlertError("The inbox queue x does not exist", "deploy the stack first.")
    snap = mon.refresh()
    assert "lab-monitor-error" in mon.status.value and "does not exist" in mon.status.value
    assert snap.windows == 1, "the scores still update when the inbox fails"
    src.inbox_error = RuntimeError("connection refused")  # the emulator went away
    assert "connection refused" in (mon.refresh().errors[0])
    src.inbox_error = None
    src.frame_error = KeyError("window_start")  # a broken read
    snap = mon.refresh()
    assert snap.windows == 1 and "scores: KeyError" in snap.errors[0], "last frame kept"


def test_start_and_stop_are_idempotent_and_clean(mon, src, tmp_path):
    src.rows = [score_row(i) for i in range(3)]
    assert mon.start() is mon and mon.running
    thread = mon._thread
    mon.start()
    assert mon._thread is thread, "a second start keeps the one thread"
    deadline = time.monotonic() + 10
    while src.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert src.calls >= 3, "the thread keeps polling"
    assert "state" in mon.status.value and "live" in mon.status.value
    assert mon.stop() is None, "no run folder, no save_to: nothing saved"
    assert not mon.running and not thread.is_alive()
    assert "stopped" in mon.status.value
    assert mon.stop() is None, "stopping twice is fine"
    calls = src.calls
    time.sleep(0.2)
    assert src.calls == calls, "stopped: no more polling"
    saved = mon.stop(save_to=tmp_path / "out" / "final.png")
    assert saved.read_bytes().startswith(PNG), "the final plot is saved as PNG"
    assert mon.start().running, "it can be started again"


def test_stop_saves_scores_png_into_the_run_folder(tmp_path, src):
    src.rows = [score_row(i) for i in range(4)]
    m = LiveMonitor(LabConfig(home=tmp_path), 3.0, run_dir=tmp_path / "run", refresh_s=0.05,
                    frames=src.frames, inbox=src.inbox, spikes=src.spike_count).start()
    path = m.stop()
    assert path == tmp_path / "run" / "scores.png", path
    assert path.stat().st_size > 10_000, "the same size of figure as monitor.plot_scores saves"


def test_a_failing_thread_stops_quietly(mon, src, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("widget closed")

    monkeypatch.setattr(live_monitor, "render_png", boom)
    src.rows = [score_row(0)]
    mon.start()
    mon._thread.join(2)
    assert not mon.running, "the thread ended instead of raising into the kernel"
    assert "monitor stopped: widget closed" in mon.status.value
    monkeypatch.undo()
    mon.stop()  # no error either


def test_wait_for_returns_the_predicates_value_or_times_out(mon, src):
    src.rows = [score_row(i) for i in range(3)]
    mon.start()

    def spike_later():
        time.sleep(0.3)
        src.rows.append(score_row(3, score=5.0, anomaly=True))
        src.messages.append({"subject": "alert"})

    threading.Thread(target=spike_later).start()
    assert mon.wait_for(lambda s: s.anomalies, "an anomaly", timeout=10) == 1
    assert mon.wait_for(lambda s: s.inbox, "an alert", timeout=10)[0]["subject"] == "alert"
    with pytest.raises(WaitTimeout, match="No a second anomaly after 1 s"):
        mon.wait_for(lambda s: s.anomalies >= 2, "a second anomaly", timeout=1)
    assert mon.latest()["is_anomaly"].sum() == 1
    assert mon.alerts() == src.messages


def test_wait_for_forest_needs_ready_and_enough_learned_windows(mon, src):
    src.rows = [score_row(i, ready=False, score=0.0) for i in range(3)]
    with pytest.raises(WaitTimeout):
        mon.wait_for_forest(learned=3, timeout=0.5)  # 3 learned, not ready yet
    src.rows += [score_row(i) for i in range(3, 6)]
    assert mon.wait_for_forest(learned=6, timeout=5).learned == 6


def test_wait_for_spike_waits_for_the_counter_to_go_up(mon, src):
    src.spikes = 2
    mon.start()
    time.sleep(0.1)

    def press():
        time.sleep(0.4)
        assert "press Spike in notebook 02" in mon.status.value, "the note tells what to do"
        src.spikes = 3

    t = threading.Thread(target=press)
    t.start()
    assert mon.wait_for_spike(timeout=10) == 3
    t.join()
    mon.refresh()
    assert "lab-monitor-note" not in mon.status.value, "the note is gone after the spike"


def test_snapshot_figures_per_site():
    rows = [score_row(i, "a") for i in range(5)] + [score_row(i, "b") for i in range(3)]
    rows += [score_row(5, "a", 4.0, anomaly=True), score_row(6, "a"), score_row(7, "a")]
    s = Snapshot(frame=frame(rows))
    assert s.sites == ["a", "b"] and s.windows == 11 and s.anomalies == 1
    assert s.learned == 3, "the site with the fewest learned windows counts"
    assert s.normal_after_last_anomaly == 2
    assert not Snapshot(frame=frame([score_row(0, ready=False)])).forest_ready
    assert Snapshot().learned == 0 and Snapshot().normal_after_last_anomaly == 0
    assert "updated: never" in status_html(Snapshot(), 3.0, False)


def test_reads_the_real_scores_stream_of_a_lab_home(tmp_path, monkeypatch):
    """Default sources: the app's scores stream under LAB_HOME and the inbox (the emulator
    is not running here: shown as an error, the scores still come through)."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    cfg = LabConfig(home=tmp_path, prefix="monlab", emulator_port=1999)
    writer = StreamLogWriter(cfg.stream_dir(cfg.scores_stream))
    writer.append(json.dumps(score_row(i)) for i in range(4))
    writer.append([json.dumps(score_row(4, score=3.5, anomaly=True, clicks=40))])
    m = LiveMonitor(cfg, 3.0, run_dir=tmp_path / "run")
    snap = m.refresh()
    assert snap.windows == 5 and snap.anomalies == 1, snap.frame
    assert "anomalies: 1" in m.status.value
    assert snap.errors and snap.errors[0].startswith("inbox:"), snap.errors
    assert m.stop().name == "scores.png"


def test_show_replaces_a_monitor_already_running(tmp_path, src, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda w: shown.append(w))
    cfg = LabConfig(home=tmp_path)
    kw = {"frames": src.frames, "inbox": src.inbox, "spikes": src.spike_count}
    first = live_monitor.show(cfg, 3.0, refresh_s=0.05, **kw)
    second = live_monitor.show(cfg, 3.0, refresh_s=0.05, **kw)
    try:
        assert not first.running and second.running, "re-running the cell: one monitor"
        assert shown == [first.widget, second.widget]
    finally:
        second.stop()
        live_monitor._stop_all()


def test_learned_counts_the_windows_learned_before_a_warm_start(tmp_path):
    """A warm start's warm-up windows (learned, not reported) count as learned, and the status
    line says how many came before the start; the monitor reads them from the backend."""
    rows = [score_row(i, site) for i in range(5) for site in ("a.example", "b.example")]
    snap = Snapshot(frame=frame(rows), warm_up={"a.example": 17, "b.example": 15})
    assert snap.learned == 20 and snap.learned_before_start == 15, snap
    assert "learned per site: 20 (15 before the start)" in status_html(snap, 3.0, True)
    plain = Snapshot(frame=frame(rows))
    assert plain.learned == 5 and "learned per site: 5<" in status_html(plain, 3.0, True)
    src = Source()
    src.rows = rows
    m = LiveMonitor(LabConfig(home=tmp_path), 3.0, frames=src.frames, inbox=src.inbox,
                    spikes=src.spike_count, warm_up=lambda: {"a.example": 15, "b.example": 15})
    assert m.refresh().learned == 20
    m.stop()
