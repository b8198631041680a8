"""The by-hand timeline, compressed: traffic runs well ahead of the app; the app is stopped
while traffic goes on, then resumed; killed (SIGKILL) while traffic goes on, then resumed.
Every scored window equals a recount of the input stream, none twice, none missing from
the first one on; both start positions. Live traffic from the lab's own generator."""

import json
import os
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from labhelpers.analytics import runner as app
from labhelpers.backends import for_config
from labhelpers.errors import AppError
from labhelpers.generate import traffic
from labhelpers.infra.config import LabConfig
from labhelpers.job.contracts import LATE
from labhelpers.monitor.tables import scores_frame
from labhelpers.stream.log import StreamLogWriter, read_all_lines
from labhelpers.wait import wait_until

# `live`: minutes of real-time traffic, mostly waiting: make test runs it in the second lane
pytestmark = [pytest.mark.integration, pytest.mark.live]
WINDOW = 2
SITES = ("example.com", "shop.example")
FOREST = {"warmup_windows": 3}
START_S = 300  # a job start takes 15-30 s here, far more when the machine is busy


def _start(cfg, **kw):
    return app.start(cfg, alerts=False, wait_seconds=START_S, **kw)


def _recount(cfg, window=WINDOW):
    """Clicks and impressions per (window_start ms, site) from the input stream itself."""
    counts: Counter = Counter()
    for line in read_all_lines(cfg.stream_dir(cfg.input_stream)):
        rec = json.loads(line)
        ms = int(datetime.fromisoformat(rec["event_time"].replace("Z", "+00:00"))
                 .timestamp() * 1000)
        start = ms - ms % (window * 1000)
        counts[(start, rec["site"], rec["browseraction"])] += 1
    return counts


def _scored(cfg):
    df = scores_frame(cfg)
    keys = [(int(r.window_start.timestamp() * 1000), r.site) for r in df.itertuples()]
    assert len(keys) == len(set(keys)), f"a window was reported twice: {Counter(keys)}"
    return {k: (r.clicks, r.impressions) for k, r in zip(keys, df.itertuples(), strict=True)}


def _check(cfg, first_start_ms):
    """Every scored window equals the recount; none missing from the first one on."""
    counts = _recount(cfg)
    got = _scored(cfg)
    assert got, "no window scored"
    first = min(k[0] for k in got)
    assert first == first_start_ms, (first, first_start_ms)
    last = max(k[0] for k in got)
    for (start, site), (clicks, imps) in got.items():
        assert (clicks, imps) == (counts[(start, site, "Click")],
                                  counts[(start, site, "Impression")]), (
            f"window {start} {site}: scored {clicks}/{imps}, the stream holds "
            f"{counts[(start, site, 'Click')]}/{counts[(start, site, 'Impression')]}")
    expected = {(s, site) for (s, site, _a) in counts if first <= s <= last}
    missing = sorted(expected - set(got))
    assert not missing, f"windows missing between the first and the last: {missing}"
    return got


def _wait_windows_past(cfg, t_ms, timeout=120):
    wait_until(lambda: any(k[0] >= t_ms for k in _scored(cfg)),
               f"a window after {t_ms}", timeout=timeout)


def test_earliest_backlog_stop_and_kill_while_traffic_goes_on(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="semlab")
    traffic.start(cfg, sites=SITES, click_rate=3, impression_rate=5)
    try:
        time.sleep(12)  # traffic well ahead of the app: ~12 files of backlog
        first_ms = min(k[0] for k in _recount(cfg))
        _start(cfg, forest=FOREST, window_seconds=WINDOW,
                  lateness_seconds=1, start_position="earliest")
        _wait_windows_past(cfg, int(time.time() * 1000))
        app.stop(cfg)  # stopped while traffic goes on
        time.sleep(6)
        resumed = _start(cfg, forest=FOREST, window_seconds=WINDOW,
                            lateness_seconds=1, start_position="earliest")
        assert resumed["resumed_from"], "the second start must resume from the checkpoint"
        _wait_windows_past(cfg, int(time.time() * 1000))
        time.sleep(3)  # a checkpoint after those windows
        os.killpg(app.status(cfg)["pid"], signal.SIGKILL)  # a crash while traffic goes on
        wait_until(lambda: not app.status(cfg)["running"], "the app to die", timeout=30)
        time.sleep(6)
        assert _start(cfg, forest=FOREST, window_seconds=WINDOW,
                         lateness_seconds=1, start_position="earliest")["resumed_from"]
        _wait_windows_past(cfg, int(time.time() * 1000))
        traffic.stop(cfg)
        time.sleep(6)  # what is in flight is committed
        got = _check(cfg, first_ms)
        st = app.status(cfg)
        assert st["late_records"] == 0 and st["bad_records"] == 0, st
        assert st["not_read_before_start"] == 0, st
        assert len(got) >= 2 * 15, f"only {len(got)} windows"
    finally:
        traffic.stop(cfg)
        app.stop(cfg)


def test_latest_skips_the_backlog_counts_a_late_record_and_takes_new_settings(tmp_path, capsys):
    """Also: settings changed between two starts take effect, or fail clearly."""
    cfg = LabConfig(home=tmp_path, prefix="latelab")
    with pytest.raises(AppError, match="start position"):
        app.start(cfg, start_position="newest")
    traffic.start(cfg, sites=SITES[:1], click_rate=3, impression_rate=5)
    try:
        time.sleep(8)
        before = len(read_all_lines(cfg.stream_dir(cfg.input_stream)))
        _start(cfg, forest=FOREST, window_seconds=WINDOW, lateness_seconds=1)
        said = capsys.readouterr().out
        assert "latest position" in said and "not read" in said, said
        point = json.loads((app.app_dir(cfg) / "start.json").read_text())
        assert point["not_read"] >= before > 0
        _wait_windows_past(cfg, point["start_ms"] + 4000)
        # a record really later than the lateness allows: counted, set aside as "late"
        old = datetime.fromtimestamp(point["start_ms"] / 1000 + 2, UTC)
        StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append([json.dumps(
            {"browseraction": "Click", "site": SITES[0],
             "event_time": old.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})])
        wait_until(lambda: app.status(cfg)["late_records"] == 1, "the late record counted",
                   timeout=60)
        dead = [json.loads(d) for d in read_all_lines(cfg.stream_dir(cfg.dead_letter_stream))]
        assert [d["reason"] for d in dead] == [LATE]
        _wait_windows_past(cfg, int(time.time() * 1000))
        traffic.stop(cfg)
        time.sleep(6)
        counts = _recount(cfg)
        got = _scored(cfg)
        assert min(k[0] for k in got) == point["start_ms"], "the first window is complete"
        late_key = (point["start_ms"] + 2000, SITES[0], "Click")
        counts[late_key] -= 1  # not in its window: in the dead letters
        for (start, site), (clicks, imps) in got.items():
            assert (clicks, imps) == (counts[(start, site, "Click")],
                                      counts[(start, site, "Impression")]), (start, site)
        assert app.status(cfg)["not_read_before_start"] >= before
        _restart_with_new_settings(cfg, capsys)
    finally:
        traffic.stop(cfg)
        app.stop(cfg)


def _restart_with_new_settings(cfg, capsys):
    traffic.start(cfg, sites=SITES[:1], click_rate=3, impression_rate=5)
    capsys.readouterr()
    first = _start(cfg)  # nothing given: the last run's settings
    assert "already running with these settings" in capsys.readouterr().out
    changed = _start(cfg, window_seconds=4,
                        forest={**FOREST, "threshold": 4.0})
    said = capsys.readouterr().out
    assert "window_seconds 2 -> 4" in said and re.search(r"threshold [0-9.]+ -> 4.0", said), said
    assert changed["pid"] != first["pid"] and changed["running"]
    assert changed["parameters"]["window_seconds"] == 4
    assert changed["parameters"]["threshold"] == 4.0
    rows = for_config(cfg).wait_for_scores(count=1, timeout=120)
    assert all(datetime.fromisoformat(r["window_end"]).timestamp()
               - datetime.fromisoformat(r["window_start"]).timestamp() == 4 for r in rows)
    # traffic: a second site restarts the generator with the new plan
    traffic.start(cfg, sites=SITES, click_rate=3, impression_rate=5)
    said = capsys.readouterr().out
    assert "sites" in said and "restart" in said.lower(), said
    assert traffic.status(cfg)["plan"]["sites"] == list(SITES)


def test_warm_start_learns_the_backlog_and_reports_from_the_latest_position(tmp_path, capsys):
    """start_position="warm": the records already in the stream are read and learned, not
    reported; reporting starts at the latest position, with a forest that is already ready.
    The generator first writes 20 s of past traffic (past_seconds): learned too."""
    cfg = LabConfig(home=tmp_path, prefix="warmlab")
    traffic.start(cfg, sites=SITES[:1], click_rate=3, impression_rate=5, past_seconds=20)
    try:
        assert traffic.status(cfg)["past_records"] == 20 * 8, traffic.status(cfg)
        time.sleep(12)  # six 2-s windows: more than the forest's warm-up (3)
        before = len(read_all_lines(cfg.stream_dir(cfg.input_stream)))
        _start(cfg, forest=FOREST, window_seconds=WINDOW, start_position="warm")
        said = capsys.readouterr().out
        assert "warmed up" in said and "not reported" in said, said
        point = json.loads((app.app_dir(cfg) / "start.json").read_text())
        assert point["warm_up_records"] >= before > 0, point
        _wait_windows_past(cfg, point["report_from_ms"] + 4000, timeout=START_S)
        traffic.stop(cfg)
        time.sleep(6)  # what is in flight is committed
        _check(cfg, point["report_from_ms"])  # nothing before it; every window recounted
        first = scores_frame(cfg).iloc[0]
        assert bool(first["forest_ready"]), "the forest did not learn the backlog's windows"
        assert app.status(cfg)["warm_up_records"] == point["warm_up_records"]
        # past (20 s) + live (12 s) before the start: at least 15 2-s windows learned, none
        # reported (_check above); the seam says the same
        warm = app.status(cfg)["warm_up_windows"]
        assert warm >= 15, app.status(cfg)
        assert for_config(cfg).app_status()["warm_up_windows"] == warm
    finally:
        traffic.stop(cfg)
        app.stop(cfg)
