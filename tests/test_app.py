"""The local app through the seam: background Flink job, idempotent start, status, logs,
stop (labhelpers.backends.local, labhelpers.analytics.runner)."""

import pytest

from labhelpers.backends import for_config
from labhelpers.errors import AppError
from labhelpers.generate.plan import steady_plan
from labhelpers.generate.timeline import timeline, to_line
from labhelpers.infra.config import LabConfig
from labhelpers.job.params import JobParams
from labhelpers.stream.log import StreamLogWriter

pytestmark = pytest.mark.integration


def test_app_lifecycle_without_alerts(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="applab")
    lab = for_config(cfg)
    with pytest.raises(AppError, match="has not been started"):
        lab.app_params()
    lines = [to_line(r) for r in timeline(steady_plan(), 1_795_770_000, 120)]
    StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append(lines + ["garbage"])
    params = JobParams.of(warmup_windows=3)
    first = lab.start_app(params, alerts=False, start_position="earliest")
    try:
        assert first["running"]
        again = lab.start_app(params, alerts=False)
        assert again["pid"] == first["pid"], "a second start with the same settings reuses it"
        rows = lab.wait_for_scores(count=10, timeout=120)
        assert {r["clicks"] for r in rows} == {10} and rows[5]["forest_ready"]
        st = lab.app_status()
        assert st["bad_records"] == 1, f"the garbage line must be set aside: {st}"
        assert st["bad_reasons"] == {"not_json": 1}, st
        assert lab.app_params() == params
        assert "job submitted" in lab.app_logs()
    finally:
        assert lab.stop_app() is True
    assert lab.stop_app() is False, "stopping twice is harmless"
    assert not lab.app_status()["running"]
    with pytest.raises(AppError, match="not running"):
        lab.wait_for_scores(count=10_000, timeout=5)
