"""The job for real (replay): a site that goes silent gets zero-count windows and one alert;
a replay whose last record falls just after a window boundary reports that window as
partial (``complete`` false) and never flags it; no window is invented after the input."""

import json
from datetime import UTC, datetime

import pytest

from labhelpers.analytics.replay import replay
from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline, to_line

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DARK = (600, 720)  # site b sends nothing from 10 to 12 minutes


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("dark")
    plan = lab_test_plan(warmup_s=1170, spike_s=10, after_s=20,
                         sites=("a.example", "b.example"))  # 20 minutes in all
    t0 = START.timestamp()
    recs = [r for r in timeline(plan, START, seed=3)
            if not (r["site"] == "b.example"
                    and DARK[0] <= datetime.fromisoformat(r["event_time"]).timestamp() - t0
                    < DARK[1])]
    # the last record falls 0.5 s after the scenario's end: 1 click, 0 impressions
    recs.append({"browseraction": "Click", "site": "a.example",
                 "event_time": "2026-11-27T10:20:00.500Z"})
    (d / "in.jsonl").write_text("\n".join(to_line(r) for r in recs) + "\n")
    replay(d / "in.jsonl", d / "out", forest={"warmup_windows": 6})
    return [json.loads(line) for line in (d / "out" / "scores.jsonl").read_text().splitlines()]


def test_last_window_is_partial_and_never_flagged(run):
    last = [r for r in run if r["window_start"] == "2026-11-27T10:20:00.000Z"]
    assert len(last) == 1, last
    assert (last[0]["clicks"], last[0]["impressions"]) == (1, 0)
    assert last[0]["complete"] is False and not last[0]["is_anomaly"]
    before = [r for r in run if r["window_start"] == "2026-11-27T10:19:50.000Z"]
    assert before and all(r["complete"] for r in before), "a window the input went past is whole"
    assert not any(r["window_start"] > "2026-11-27T10:20:00.000Z" for r in run), (
        "no window may be invented after the input ended")


def test_dark_site_gets_zero_windows_and_one_alert(run):
    b = [r for r in run if r["site"] == "b.example"
         and "2026-11-27T10:10:00" <= r["window_start"] < "2026-11-27T10:12:00"]
    assert len(b) == 12 and all(r["clicks"] == r["impressions"] == 0 for r in b), b
    first = min(r["window_start"] for r in b if r["is_anomaly"])
    assert first <= "2026-11-27T10:10:30", "flagged within 40 s of going dark"
    assert len({r["episode_id"] for r in b if r["is_anomaly"]}) == 1, "one silence, one alert"
    assert not [r for r in run if r["site"] == "a.example" and r["clicks"] == 0
                and r["impressions"] == 0], "a site that kept sending gets no zero window"
    assert {r["site"] for r in run} == {"a.example", "b.example"}, "no site is invented"
