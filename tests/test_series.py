"""score-series: any timestamp,value CSV scored by the lab's forest (one-dimensional points)."""

import csv
import json
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from labhelpers.errors import ConfigError
from labhelpers.evaluate.series import (
    OUTPUT_COLUMNS,
    SeriesModel,
    read_series,
    score_series,
    series_options,
    series_params,
)
from labhelpers.job.forest import ForestParams


def _write(path, text):
    path.write_text(text)
    return path


def _noisy_series(path, n=300, spike_at=200, seed=1):
    rng = random.Random(seed)
    lines = ["timestamp,value"]
    for i in range(n):
        v = 100 + rng.gauss(0, 2) + (60 if i == spike_at else 0)
        lines.append(f"2026-11-27T{i // 60:02d}:{i % 60:02d}:00Z,{v:.3f}")
    return _write(path, "\n".join(lines) + "\n")


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_options_are_the_jobs_with_one_dimension():
    params = ForestParams(num_trees=50, subsample_size=32, shingle_size=2)
    assert series_options(params) == {**params.krcf_options(), "dimensions": 1}


def test_spike_in_a_noisy_series_is_flagged(tmp_path):
    src = _noisy_series(tmp_path / "in.csv")
    summary = score_series(src, tmp_path / "out.csv")
    rows = _read(tmp_path / "out.csv")
    assert list(rows[0]) == list(OUTPUT_COLUMNS)
    assert len(rows) == summary["points"] == 300
    spike = rows[200]
    assert spike["timestamp"] == "2026-11-27T03:20:00Z" and spike["is_anomaly"] == "True", spike
    assert float(spike["anomaly_score"]) > 4, spike
    # warm-up: score 0 and no flag for the first warmup_windows points
    assert all(float(r["anomaly_score"]) == 0 and r["is_anomaly"] == "False"
               for r in rows[:12]), "warm-up points must score 0"
    assert summary["anomalies"] <= 3, f"2-sigma noise should rarely pass 3: {summary}"


def test_each_flagged_point_says_what_was_expected_and_which_rule_flagged_it(tmp_path):
    """As the clickstream alerts do: the value expected (the running level), the range
    around it a value must leave to score above the threshold, and the rule that flagged."""
    _noisy_series(tmp_path / "in.csv")
    score_series(tmp_path / "in.csv", tmp_path / "out.csv")
    rows = _read(tmp_path / "out.csv")
    spike = rows[200]
    assert spike["flagged_by"] == "score", spike
    low, high = (float(x) for x in spike["expected_range"].split(".."))
    assert low < float(spike["usual_value"]) < high < float(spike["value"]), spike
    assert 95 < float(spike["usual_value"]) < 105 and high - low < 40, spike
    assert all(r["flagged_by"] == "" for r in rows if r["is_anomaly"] == "False")
    assert rows[0]["expected_range"] == "", "no level before the first point"
    # a lasting shift the forest's score misses is the run rule's, and says which way
    model = SeriesModel(series_params({"threshold": 1e6}))
    rng = random.Random(3)
    flags = []
    for i in range(400):
        model.score(100 + rng.gauss(0, 2) - (20 if i >= 300 else 0))
        flags.append(model.flagged_by)
    assert "run:value:low" in flags[300:320] and not any(flags[:300]), flags[295:320]


def test_same_input_same_scores_and_threshold_applies(tmp_path):
    src = _noisy_series(tmp_path / "in.csv")
    a = score_series(src, tmp_path / "a.csv")
    b = score_series(src, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text(), (
        "the seed must make scores repeatable")
    # both rules off: the threshold and the run rule (its own parameter)
    high = score_series(src, tmp_path / "c.csv", forest={"threshold": 100.0, "run_threshold": 0})
    assert a == {**b, "output": a["output"]} and high["anomalies"] == 0


def test_hold_keeps_a_two_point_spike_flagged_twice():
    # the lab's reason for anomaly_hold_windows, on a series: the 2nd point of a level jump
    # is still an anomaly because the 1st was not learned
    model = SeriesModel(ForestParams())
    for i in range(100):
        model.score(100.0 + (i % 5))
    first, second = model.score(300.0), model.score(300.0)
    assert first[1] and second[1], (first, second)
    unheld = SeriesModel(ForestParams(anomaly_hold_windows=0))
    for i in range(100):
        unheld.score(100.0 + (i % 5))
    assert unheld.score(300.0)[1]
    assert unheld.score(300.0)[0] < second[0], "holding must keep the 2nd score higher"


def test_numbers_as_timestamps_and_other_header_names(tmp_path):
    src = _write(tmp_path / "in.csv", "day,sales\n1,10\n2,11\n3,12\n")
    pts = read_series(src)
    assert [(p.timestamp, p.value, p.line) for p in pts] == [("1", 10.0, 2), ("2", 11.0, 3),
                                                             ("3", 12.0, 4)]
    extra = _write(tmp_path / "x.csv", "id,value,timestamp\na,1.5,2026-01-01\nb,2,2026-01-02\n")
    assert [p.value for p in read_series(extra)] == [1.5, 2.0]


@pytest.mark.parametrize("text,match", [
    ("2026-01-01,5\n2026-01-02,6\n", r"line 1: .* looks like data, not a header"),
    ("timestamp,value\n2026-01-01,5\n2026-01-02,abc\n", r"line 3: value 'abc' is not a number"),
    ("timestamp,value\n2026-01-01,5\n2026-01-02,\n", r"line 3: value '' is not a number"),
    ("timestamp,value\n2026-01-01,nan\n", r"line 2: .* not a finite number"),
    ("timestamp,value\n2026-01-02,5\n2026-01-01,6\n", r"line 3: .* is before .*line 2"),
    ("timestamp,value\n2026-01-01,5\n7,6\n", r"line 3: .* earlier lines have datetimes"),
    ("timestamp,value\nyesterday,5\n", r"line 2: timestamp 'yesterday'"),
    ("time,value,x\n1,2,3\n", r"no `timestamp`"),
    ("timestamp,value\n", r"no data"),
    ("", r"is empty"),
])
def test_clear_errors_name_the_line_and_the_fix(tmp_path, text, match):
    src = _write(tmp_path / "in.csv", text)
    with pytest.raises(ConfigError, match=match) as err:
        read_series(src)
    assert "Fix:" in str(err.value)


def test_unknown_forest_parameter_is_an_error(tmp_path):
    src = _noisy_series(tmp_path / "in.csv", n=20)
    with pytest.raises(ConfigError, match="thresold"):
        score_series(src, tmp_path / "o.csv", forest={"thresold": 3})


def test_cli_scores_and_reports_errors(tmp_path):
    src = _noisy_series(tmp_path / "in.csv", n=60, spike_at=50)
    out = subprocess.run([sys.executable, "-m", "labhelpers", "score-series", str(src),
                          # 60 points: the forest holds few, scores stay lower (series.py)
                          "--out", str(tmp_path / "o.csv"), "--forest", '{"threshold": 2.5}'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["points"] == 60
    assert _read(tmp_path / "o.csv")[50]["is_anomaly"] == "True"
    bad = _write(tmp_path / "bad.csv", "timestamp,value\n2,1\n1,1\n")
    out = subprocess.run([sys.executable, "-m", "labhelpers", "score-series", str(bad),
                          "--out", str(tmp_path / "b.csv")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "line 3" in out.stderr and "Fix:" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "labhelpers", "score-series", str(src),
                          "--out", str(tmp_path / "b.csv"), "--forest", "{threshold: 3}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not JSON" in out.stderr, out.stderr


def test_repeated_timestamps_are_scored_in_file_order_with_a_warning(tmp_path, capsys):
    src = _write(tmp_path / "in.csv", "timestamp,value\n2026-10-25T01:00:00,5\n"
                 "2026-10-25T02:00:00,6\n2026-10-25T02:00:00,7\n2026-10-25T03:00:00,8\n")
    summary = score_series(src, tmp_path / "o.csv")
    assert [r["value"] for r in _read(tmp_path / "o.csv")] == ["5.0", "6.0", "7.0", "8.0"]
    assert len(summary["warnings"]) == 1 and "line 4" in summary["warnings"][0]
    assert "repeats line 3" in capsys.readouterr().err


def _level_shift(n=600, at=300, jump=10.0, seed=3):
    rng = random.Random(seed)
    return [100 + rng.gauss(0, 1) + (jump if i >= at else 0) for i in range(n)]


@pytest.mark.parametrize("jump", [10.0, -10.0, 40.0])
def test_a_level_shift_is_flagged_a_few_times_not_forever(jump):
    model = SeriesModel(series_params())
    flags = [model.score(v)[1] for v in _level_shift(jump=jump)]
    after = [i for i, f in enumerate(flags) if f and i >= 300]
    assert after and after[0] <= 301, "the shift is found at once"
    assert len(after) <= 4 and after[-1] < 320, f"a flood after the shift: {after}"


def test_a_trend_keeps_scores_off_the_ceiling():
    rng = random.Random(4)
    model = SeriesModel(series_params())
    scores = [model.score(10 + 0.5 * i + rng.gauss(0, 1)) for i in range(800)]
    late = [s for s, _ in scores[200:]]
    assert sum(f for _, f in scores) <= 2
    assert sorted(late)[len(late) // 2] < 1.5, "a drifting series must not score at the ceiling"


def test_labelled_series_suite_as_deployed():
    from labhelpers.evaluate.series_suite import build_series_suite, evaluate_series

    table = evaluate_series(build_series_suite("small", seed=1))
    quiet = table[table["quiet"]]
    assert (table["found"] == table["events"]).all(), table.to_string()
    assert 1000 * quiet["false_alarms"].sum() / quiet["points"].sum() <= 2, table.to_string()


# ---------------------------------------------------------------------------------------------
# Seasons (issue 27): the daily / weekly expectation, what each point was compared with
# ---------------------------------------------------------------------------------------------

_MIDNIGHT = 1_780_000_000 - 1_780_000_000 % 86_400  # a UTC midnight


def _square_day(days=14, noise=0.0, seed=0):
    """A daily square wave on 5-minute points: 100 at night, 150 from 8 to 20 h."""
    rng = random.Random(seed)
    ts = [_MIDNIGHT + 300.0 * i for i in range(days * 288)]
    vals = [100.0 + (50.0 if 96 <= i % 288 < 240 else 0.0) + rng.gauss(0, noise)
            for i in range(days * 288)]
    return ts, vals


def _flags(ts, vals, seasons=True):
    model = SeriesModel(series_params(), seasons=seasons)
    out = []
    for t, v in zip(ts, vals, strict=True):
        model.score(v, t)
        out.append((model.flagged_by, model.compared_with))
    return out


@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_a_daily_square_wave_is_quiet_after_its_first_days(noise):
    ts, vals = _square_day(noise=noise)
    flags = _flags(ts, vals)
    late = [i for i, (f, _) in enumerate(flags) if f and i >= 2 * 288]
    assert not late, f"flags after day 2 at {[(i // 288, i % 288) for i in late]}"
    assert flags[-1][1] in ("same time yesterday", "same time last week"), flags[-1]
    # without seasons every rise and fall is a surprise (noisy) or the resolution floor hides
    # them (noiseless); either way the season is what makes a noisy square wave quiet
    if noise:
        plain = [i for i, (f, _) in enumerate(_flags(ts, vals, seasons=False)) if f]
        assert len(plain) > 40, f"--no-seasons should flag the rises and falls: {len(plain)}"


def test_a_late_rise_of_a_clean_square_wave_is_flagged():
    ts, vals = _square_day()
    late = 10 * 288 + 96
    for i in range(late, late + 24):  # the rise comes two hours late
        vals[i] = 100.0
    flags = _flags(ts, vals)
    assert flags[late][0] and flags[late][1] == "same time yesterday", flags[late]
    assert not any(f for f, _ in flags[2 * 288:late]), "quiet before the late rise"


def test_the_seasonal_expectation_has_no_look_ahead():
    ts, vals = _square_day(days=5, noise=2.0, seed=4)

    def run(values):
        model = SeriesModel(series_params())
        rows = []
        for t, v in zip(ts, values, strict=True):
            s, f = model.score(v, t)
            rows.append((s, f, model.expected, model.compared_with, model.range))
        return rows

    base = run(vals)
    for k in (300, 3 * 288 + 100):
        changed = list(vals)
        changed[k] += 500.0
        for j in range(k + 1, len(changed)):
            changed[j] += 7.0
        other = run(changed)
        assert other[:k] == base[:k], f"a change at point {k} moved an earlier point"
        assert other[k] != base[k]


def test_weekly_season_on_hourly_points():
    # weekdays busy from 8 to 18 h, weekends low: hourly points, 6 weeks
    rng = random.Random(5)
    ts, vals = [], []
    for i in range(6 * 168):
        day, hour = (i // 24) % 7, i % 24
        weekend = day in (3, 4)  # epoch day 0 was a Thursday: days 3, 4 are Sun, Mon
        ts.append(_MIDNIGHT + 3600.0 * i)
        vals.append((60.0 if weekend else 100.0 + (80.0 if 8 <= hour < 18 else 0.0))
                    + rng.gauss(0, 3))
    flags = _flags(ts, vals)
    assert flags[-1][1] == "same time last week", flags[-1]
    late = [i for i, (f, _) in enumerate(flags) if f and i >= 3 * 168]
    assert len(late) <= 2, f"weeks 4-6 should be quiet: {late}"


def test_explanation_columns_and_no_seasons(tmp_path):
    ts, vals = _square_day(days=4, noise=2.0, seed=6)
    vals[3 * 288 + 30] += 40.0  # a night spike on day 4
    lines = ["timestamp,value"] + [
        f"{datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ},{v:.3f}"
        for t, v in zip(ts, vals, strict=True)]
    src = _write(tmp_path / "in.csv", "\n".join(lines) + "\n")
    summary = score_series(src, tmp_path / "out.csv")
    rows = _read(tmp_path / "out.csv")
    assert list(rows[0]) == list(OUTPUT_COLUMNS) and "compared_with" in OUTPUT_COLUMNS
    spike = rows[3 * 288 + 30]
    assert spike["is_anomaly"] == "True" and spike["flagged_by"] == "score", spike
    assert spike["compared_with"] == "same time yesterday", spike
    assert 95 < float(spike["usual_value"]) < 105, spike
    assert all(r["compared_with"] and r["flagged_by"] for r in rows if r["is_anomaly"] == "True")
    assert summary["compared_with"]["same time yesterday"] > 288, summary
    out = subprocess.run([sys.executable, "-m", "labhelpers", "score-series", str(src),
                          "--out", str(tmp_path / "plain.csv"), "--no-seasons"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    plain = _read(tmp_path / "plain.csv")
    assert {r["compared_with"] for r in plain[1:]} == {"recent level"}
    assert rows[0]["compared_with"] == "" and rows[0]["usual_value"] == ""


def test_numbers_as_timestamps_get_no_seasons():
    from labhelpers.evaluate.series import Point, point_times

    pts = [Point(str(i), float(i), 1.0, i + 2) for i in range(3)]
    assert point_times(pts) == [None, None, None]
