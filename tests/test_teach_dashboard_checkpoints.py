"""Flink's dashboard link from the app's log; the restart table from score rows."""

from __future__ import annotations

import pandas as pd

from labhelpers.analytics.runner import app_dir
from labhelpers.infra.config import LabConfig
from labhelpers.teach import checkpoints, dashboard


def test_dashboard_url_from_the_apps_log(tmp_path, monkeypatch):
    cfg = LabConfig(home=tmp_path, prefix="dash")
    assert "No local Flink dashboard" in repr(dashboard.dashboard(cfg))
    log = app_dir(cfg) / "log"
    log.mkdir(parents=True)
    (log / "flink-x-python-vm.log").write_text(
        "... Web frontend listening at http://127.0.0.1:1111.\n"
        "... Web frontend listening at http://127.0.0.1:40123.\n")
    assert dashboard.local_url(cfg) == "http://127.0.0.1:40123/"
    monkeypatch.setattr(dashboard, "answers", lambda url: False)
    d = dashboard.dashboard(cfg)
    assert d.direct == "http://127.0.0.1:40123/" and not d.alive
    assert "does not answer" in repr(d) and "Checkpoints" in d._repr_html_()
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    monkeypatch.setattr(dashboard.importlib.util, "find_spec", lambda name: object())
    assert dashboard.proxy_url("http://127.0.0.1:40123/") == "/user/ann/proxy/40123/"


def _rows(starts, ready=True):
    t0 = pd.Timestamp("2026-11-27T10:00:00Z")
    return pd.DataFrame([{"site": "a", "window_start": t0 + pd.Timedelta(seconds=10 * i),
                          "window_end": t0 + pd.Timedelta(seconds=10 * i + 10), "clicks": 10,
                          "impressions": 10, "forest_ready": ready, "anomaly_score": 0.6}
                         for i in starts])


def test_restart_table():
    before = _rows(range(20))
    ok = checkpoints.restored(before, _rows(range(26))).loc["a"]
    assert ok["windows before the stop"] == 20 and ok["windows after the restart"] == 6
    assert ok["windows missing in between"] == 0 and ok["windows counted twice"] == 0
    assert bool(ok["forest ready at once"])
    gap = checkpoints.restored(before, _rows([*range(20), 22, 23])).loc["a"]
    assert gap["windows missing in between"] == 1
    twice = checkpoints.restored(before, _rows([*range(20), 19, 20])).loc["a"]
    assert twice["windows counted twice"] == 1
    fresh = checkpoints.restored(before, pd.concat([before, _rows([20], ready=False)]))
    assert not bool(fresh.loc["a", "forest ready at once"])
