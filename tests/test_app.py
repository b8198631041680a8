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


def test_warm_up_windows_counts_the_windows_before_the_start_position(tmp_path):
    """runner.warm_up_windows: per site, the windows with records before report_from_ms (what
    a warm start learns without reporting), kept once every such record can have arrived."""
    import json

    from labhelpers.analytics import runner
    from labhelpers.job.contracts import format_event_time

    cfg = LabConfig(home=tmp_path, prefix="warmcount")
    assert runner.warm_up_windows(cfg) == {}, "no start yet: no warm-up"
    t0 = 1_764_237_600.0  # a window boundary
    lines = [json.dumps({"browseraction": action, "site": site,
                         "event_time": format_event_time(t0 + s)})
             for s in range(0, 60, 2) for site in ("a.example", "b.example")
             for action in ("Click", "Impression") if site == "a.example" or s < 30]
    lines.append("not json")
    StreamLogWriter(cfg.stream_dir(cfg.input_stream)).append(lines)
    work = runner.app_dir(cfg)
    work.mkdir(parents=True)
    props = runner.local_settings(cfg, JobParams()).to_properties()
    (work / "properties.json").write_text(json.dumps(props))
    start = work / "start.json"
    start.write_text(json.dumps({"start_position": "warm",
                                 "report_from_ms": int(t0 + 40) * 1000}))
    assert runner.warm_up_windows(cfg) == {"a.example": 4, "b.example": 3}
    assert "warm_up_windows" in json.loads(start.read_text()), "long past: kept"
    start.write_text(json.dumps({"start_position": "latest", "start_ms": int(t0) * 1000}))
    assert runner.warm_up_windows(cfg) == {}, "a latest start learns nothing before it"
