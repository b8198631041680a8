"""The analytics job for real (Flink mini-cluster) through ``replay``: the lab's test in
event time, bad records set aside, and the SQL's record rules equal to contracts.py."""

import csv
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest

from labhelpers.analytics.replay import replay
from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline, to_line
from labhelpers.job.contracts import check_record, parse_event_time
from tests.records import GARBAGE_KINDS, with_garbage

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WARMUP_S = 600  # ten minutes of normal traffic before the spike (the bar)


def _expected_windows(lines):
    """Clicks and impressions per (window_start, site), computed in plain Python."""
    counts: Counter = Counter()
    for line in lines:
        rec, why = check_record(line)
        if why is None and rec["browseraction"] in ("Click", "Impression"):
            t = int(parse_event_time(rec["event_time"]).timestamp()) // 10 * 10
            counts[(t, rec["site"], rec["browseraction"])] += 1
    return counts


def _read_jsonl(summary):
    path = summary["scores_csv"].replace("scores.csv", "scores.jsonl")
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def lab_lines():
    plan = lab_test_plan(warmup_s=WARMUP_S, sites=("example.com", "shop.example"))
    return [to_line(r) for r in timeline(plan, START, seed=1)]


@pytest.fixture(scope="module")
def clean_run(lab_lines, tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    (d / "in.jsonl").write_text("\n".join(lab_lines) + "\n")
    summary = replay(d / "in.jsonl", d / "out")
    return summary, _read_csv(d / "out" / "scores.csv")


def test_replay_counts_match_and_spike_is_flagged(lab_lines, clean_run):
    summary, rows = clean_run
    expected = _expected_windows(lab_lines)
    got = Counter()
    for r in rows:
        t = int(parse_event_time(r["window_start"]).timestamp())
        got[(t, r["site"], "Click")] = int(r["clicks"])
        got[(t, r["site"], "Impression")] = int(r["impressions"])
    assert +got == expected, "window counts differ from a plain recount of the input"
    spike_start = START.timestamp() + WARMUP_S
    flagged = [r for r in rows if r["is_anomaly"] == "True"]
    spike_windows = {(r["window_start"], r["site"]) for r in rows
                     if r["site"] == "example.com"
                     and spike_start <= parse_event_time(r["window_start"]).timestamp()
                     < spike_start + 20}
    assert len(spike_windows) == 2
    assert {(r["window_start"], r["site"]) for r in flagged} >= spike_windows, (
        f"spike windows not all flagged: {flagged}")
    # both sites get the spike (lab_test_plan spikes every site); nothing before it
    early = [r for r in flagged if parse_event_time(r["window_start"]).timestamp() < spike_start]
    assert not early, f"false alarms in {WARMUP_S} s of normal traffic: {early}"
    assert summary["bad_records"] == 0
    assert list(rows[0]) == ["window_start", "window_end", "site", "clicks", "impressions",
                             "ctr", "anomaly_score", "is_anomaly", "complete"]
    # exactly one alert episode per site: the spike (the lab's own test)
    episodes = {(r["site"], r["episode_id"]) for r in _read_jsonl(summary)
                if r["is_anomaly"]}
    assert len(episodes) == 2, episodes


def test_garbage_is_set_aside_and_changes_nothing(lab_lines, clean_run, tmp_path):
    lines = list(with_garbage(lab_lines, 0.10, seed=7))
    bad = [ln for ln in lines if check_record(ln)[1] is not None]
    assert len(bad) > 100, "the test needs real garbage"
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    summary = replay(tmp_path / "in.jsonl", tmp_path / "out")
    assert _read_csv(tmp_path / "out" / "scores.csv") == clean_run[1], (
        "10% garbage changed the results of the good records")
    dead = [json.loads(d) for d in (tmp_path / "out" / "dead_letters.jsonl").read_text()
            .splitlines()]
    assert summary["bad_records"] == len(bad) == len(dead)
    sql_reasons = Counter(d["reason"] for d in dead)
    py_reasons = Counter(check_record(ln)[1] for ln in bad)
    assert sql_reasons == py_reasons, "the SQL and contracts.py disagree on bad records"
    assert set(sql_reasons) <= set(GARBAGE_KINDS.values())


def test_warm_up_windows_are_learned_not_reported(lab_lines, clean_run, tmp_path):
    """The forest warms up on the windows before report_from_ms: they are not reported, and
    every later window (score, readiness, episode) is what the job that reported them all
    gave: the forest learned them exactly as it would have."""
    rows = _read_jsonl(clean_run[0])
    # past the forest's warm-up (12 windows) and before the spike
    cut = datetime.fromisoformat(rows[len(rows) // 3]["window_end"]).timestamp()
    report_from_ms = int(cut * 1000)
    (tmp_path / "in.jsonl").write_text("\n".join(lab_lines) + "\n")
    summary = replay(tmp_path / "in.jsonl", tmp_path / "out", report_from_ms=report_from_ms)
    warm = _read_jsonl(summary)
    later = [r for r in rows
             if datetime.fromisoformat(r["window_end"]).timestamp() * 1000 > report_from_ms]
    assert 0 < len(warm) < len(rows), "the warm-up windows must not be reported"
    assert warm == later, "a window after the warm-up differs from the uninterrupted job's"
    assert warm[0]["forest_ready"], "the forest must be ready at the first reported window"


def test_cli_replay_writes_scores_csv(tmp_path, lab_lines):
    (tmp_path / "in.jsonl").write_text("\n".join(lab_lines[:400]) + "\n")
    out = subprocess.run([sys.executable, "-m", "labhelpers", "replay",
                          str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o"),
                          "--forest", '{"warmup_windows": 4}'],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["windows"] > 0
    assert (tmp_path / "o" / "scores.csv").read_text().startswith("window_start,window_end")


def test_cli_replay_missing_input_is_a_clear_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "labhelpers", "replay",
                          str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Fix:" in out.stderr
