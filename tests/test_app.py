"""The local app runner: background Flink job, idempotent start, status, logs, stop."""

import pytest

from labhelpers import app
from labhelpers.config import LabConfig
from labhelpers.errors import AppError
from labhelpers.generator import steady_plan, timeline, to_line
from labhelpers.streamlog import StreamLogWriter

pytestmark = pytest.mark.integration


def test_app_lifecycle_without_alerts(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="applab")
    with pytest.raises(AppError, match="has not been started"):
        app.settings(cfg)
    lines = [to_line(r) for r in timeline(steady_plan(), 1_795_770_000, 120)]
    StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append(lines + ["garbage"])
    first = app.start(cfg, alerts=False, forest={"warmup_windows": 3}, start_position="earliest")
    try:
        assert first["running"]
        assert app.start(cfg)["pid"] == first["pid"], "a second start reuses the running app"
        rows = app.wait_for_scores(cfg, count=10, timeout=120)
        assert {r["clicks"] for r in rows} == {10} and rows[5]["forest_ready"]
        st = app.status(cfg)
        assert st["bad_records"] == 1, f"the garbage line must be set aside: {st}"
        assert app.settings(cfg).forest.warmup_windows == 3
        assert "job submitted" in app.logs(cfg)
    finally:
        assert app.stop(cfg) is True
    assert app.stop(cfg) is False, "stopping twice is harmless"
    assert not app.status(cfg)["running"]
    with pytest.raises(AppError, match="not running"):
        app.wait_for_scores(cfg, count=10_000, timeout=5)
