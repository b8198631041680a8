import pytest

from labhelpers.errors import ConfigError
from labhelpers.job.contracts import BAD_REASONS, MAX_RECORD_CHARS
from labhelpers.job.params import JobParams
from labhelpers.job.pipeline import JobSettings, filesystem_sink, filesystem_source
from labhelpers.job.sqlfile import SQL_FILE, connector_options, render_sql, split_statements


def _settings(tmp_path, **params):
    return JobSettings(input_connector=filesystem_source(tmp_path / "in", True),
                       scores_connector=filesystem_sink(tmp_path / "s"),
                       dead_letter_connector=filesystem_sink(tmp_path / "d"),
                       params=JobParams.of(**params))


def test_sql_renders_with_no_placeholder_left(tmp_path):
    sql = _settings(tmp_path, window_seconds=30, lateness_seconds=2).sql()
    assert "{{" not in sql
    assert "INTERVAL '30' SECOND" in sql and "INTERVAL '2' SECOND" in sql
    names = [s.split()[2] if s.startswith("CREATE TABLE") else s.split()[3]
             for s in split_statements(sql)]
    assert names == ["click_records", "checked_records", "clicks", "bad_records",
                     "window_ctr", "scores", "dead_letters"], names


def test_missing_or_unused_placeholder_is_an_error(tmp_path):
    f = tmp_path / "x.sql"
    f.write_text("SELECT {{a}}, {{b}};")
    with pytest.raises(ConfigError, match="no value: b"):
        render_sql({"a": 1}, f)
    with pytest.raises(ConfigError, match="does not use value"):
        render_sql({"a": 1, "b": 2, "c": 3}, f)


def test_connector_options_quote_values():
    assert connector_options({"path": "it's"}) == "'path' = 'it''s'"


def test_properties_round_trip(tmp_path):
    s = _settings(tmp_path, window_seconds=20)
    back = JobSettings.from_properties(s.to_properties())
    assert back == s


def test_report_from_round_trips_and_is_checked(tmp_path):
    s = _settings(tmp_path)
    assert "lab.start" not in {g["PropertyGroupId"] for g in s.to_properties()}
    s.report_from_ms = 1_764_237_600_000
    assert JobSettings.from_properties(s.to_properties()) == s
    for bad in ({"report_from_ms": "soon"}, {"report_from": "1"}):
        props = [*_settings(tmp_path).to_properties(),
                 {"PropertyGroupId": "lab.start", "PropertyMap": bad}]
        with pytest.raises(ConfigError, match="lab.start"):
            JobSettings.from_properties(props)


def test_bad_properties(tmp_path):
    props = _settings(tmp_path).to_properties()
    with pytest.raises(ConfigError, match="lab.connector.input"):
        JobSettings.from_properties([g for g in props
                                     if g["PropertyGroupId"] != "lab.connector.input"])
    for g in props:
        if g["PropertyGroupId"] == "lab.forest":
            g["PropertyMap"]["num_tres"] = "3"
    with pytest.raises(ConfigError, match="num_tres"):
        JobSettings.from_properties(props)
    with pytest.raises(ConfigError, match="window_seconds"):
        _settings(tmp_path, window_seconds=0)


def test_the_sql_takes_the_record_rules_from_the_contract(tmp_path):
    """Every reason word and limit in the running SQL comes from labhelpers.job.contracts."""
    sql = _settings(tmp_path).sql()
    for word in BAD_REASONS:
        assert f"'{word}'" in sql, word
    assert f"CHAR_LENGTH(line) > {MAX_RECORD_CHARS}" in sql
    raw = SQL_FILE.read_text()
    for word in BAD_REASONS:
        assert f"'{word}'" not in raw, f"the SQL spells out {word!r}, not its placeholder"


def test_job_params_one_conversion():
    """A notebook's names, a nested forest and the command line's pairs meet in one object."""
    flat = JobParams.of({"window_seconds": 5, "threshold": 2.5})
    assert flat.window_seconds == 5 and flat.forest.threshold == 2.5
    assert flat.lateness_seconds == JobParams().lateness_seconds  # the one default
    assert JobParams.of(flat, num_trees=50).changes_from(flat) == ["num_trees 100 -> 50"]
    assert JobParams.from_pairs(["threshold=2.5", "window_seconds=5"]) == flat
    groups = {g["PropertyGroupId"]: g["PropertyMap"] for g in flat.groups()}
    assert JobParams.from_groups(groups) == flat
    with pytest.raises(ConfigError, match="num_tres"):
        JobParams.of(num_tres=3)
    with pytest.raises(ConfigError, match="not a number"):
        JobParams.from_pairs(["threshold=high"])
