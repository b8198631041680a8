"""The original lab beside the new one (labhelpers.teach.original)."""

import pytest

from labhelpers.errors import ConfigError
from labhelpers.job.pipeline import SNAPSHOT_EVERY
from labhelpers.teach import original


def test_original_sql_shows_what_the_lab_reference_describes():
    sql = original.original_sql()
    for must in ("ROWTIME", "STEP(", "JOIN", "RANDOM_CUT_FOREST", "100, 12, 100000, 1",
                 "ANOMALY_SCORE > 2", "DESTINATION_SQL_STREAM"):
        assert must in sql, f"the original SQL lacks {must}"
    assert "NOT run" in sql, "the file must say it does not run"


def test_side_by_side_names_the_differences():
    sbs = original.side_by_side()
    html = sbs._repr_html_()
    assert "sql/anomaly_detection.sql" in html and "sql/original_kda_lab.sql" in html
    assert "TUMBLE(TABLE clicks" in sbs.new and "STEP(" in sbs.original
    aspects = [a for a, _, _ in sbs.differences]
    for must in ("time of a window", "clicks and impressions", "the model", "anomaly and alert"):
        assert must in aspects
    # each difference names something that is really in the new SQL or the job
    assert "FILTER (WHERE" in sbs.new and "WATERMARK" in sbs.new


def test_forest_excerpt_is_read_from_the_job():
    ex = original.forest_excerpt()
    assert ex.wiring.startswith("windows = t_env.to_data_stream")
    assert "key_by" in ex.wiring and ex.wiring.rstrip().endswith(")")
    assert ex.scorer.startswith("def on_timer(self, timestamp: int, ctx):")
    assert "model.score(row" in ex.scorer and "SNAPSHOT_EVERY" in ex.scorer
    lines = ex.path.read_text().splitlines()
    assert lines[ex.wiring_line - 1].strip() == ex.wiring.splitlines()[0].strip()
    assert lines[ex.scorer_line - 1].strip() == ex.scorer.splitlines()[0].strip()
    assert SNAPSHOT_EVERY > 0 and "pipeline.py" in ex.text()


def test_a_renamed_definition_fails_with_the_fix(tmp_path):
    f = tmp_path / "job.py"
    f.write_text("def other():\n    pass\n")
    with pytest.raises(ConfigError, match="update labhelpers/teach/original.py"):
        original._source_segment(f, ("build",))
