"""The run rule taught on windows: the re-computed sums are the job's, each flag has its rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from labhelpers.job.forest import ForestParams, SiteModel
from labhelpers.teach import run_rule

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def job_rows(counts: list[tuple[int, int]], params: ForestParams) -> pd.DataFrame:
    """Score rows as the job writes them: SiteModel over (clicks, impressions) windows."""
    model, rows = SiteModel(params), []
    for i, (c, n) in enumerate(counts):
        ws, we = START + timedelta(seconds=10 * i), START + timedelta(seconds=10 * (i + 1))
        row = {"window_start": ws.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "window_end": we.strftime("%Y-%m-%dT%H:%M:%SZ"), "site": "example.com",
               "clicks": c, "impressions": n, "ctr": 100.0 * c / n if n else None}
        rows.append(model.score(row, int(we.timestamp() * 1000)))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def spiked():
    params = ForestParams()
    # Poisson traffic of 10 clicks and 10 impressions a window, then the clicks doubled (the
    # run rule's case: no window stands out alone), then the lab's x4 spike (the forest's)
    rng = np.random.default_rng(0)
    counts = ([(int(rng.poisson(10)), int(rng.poisson(10))) for _ in range(60)]
              + [(int(rng.poisson(20)), int(rng.poisson(10))) for _ in range(8)]
              + [(int(rng.poisson(10)), int(rng.poisson(10))) for _ in range(20)]
              + [(40, 10)] * 2 + [(10, 10)] * 3)
    return params, job_rows(counts, params)


def test_sums_are_the_jobs(spiked):
    params, df = spiked
    sums = run_rule.sums_frame(df, params)
    assert len(sums) == len(df), "one row per window"
    top = sums[run_rule.sum_names()].max(axis=1)
    assert (abs(top - sums["run_score"]) < 1e-5).all(), \
        "the largest re-computed sum must equal the job's run_score in every window"
    assert (abs(sums["score"] - sums["anomaly_score"]) < 1e-9).all(), "same forest scores"


def test_a_warm_starts_windows_are_learned_first(spiked):
    """A warm start reports only the windows after its start: re-scoring them after the
    windows it learned (lab.warm_up_rows()) gives the job's sums and scores again."""
    params, df = spiked
    learned = df.iloc[:50][["window_start", "window_end", "site", "clicks", "impressions",
                            "ctr"]].to_dict("records")
    reported = df.iloc[50:]
    sums = run_rule.sums_frame(reported, params, learned)
    assert len(sums) == len(reported)
    top = sums[run_rule.sum_names()].max(axis=1)
    assert (abs(top - sums["run_score"]) < 1e-5).all()
    assert (abs(sums["score"] - sums["anomaly_score"]) < 1e-9).all()
    cold = run_rule.sums_frame(reported, params)
    assert not (abs(cold["score"].fillna(0) - cold["anomaly_score"]) < 1e-9).all(), \
        "without the learned windows the re-score cannot be the job's"


def test_each_flag_names_its_rule(spiked):
    params, df = spiked
    table = run_rule.flags_table(df, params)
    assert len(table) == int(df["is_anomaly"].sum()) >= 2, table
    assert set(table["flagged by"]) <= {"forest", "run rule", "both"}
    runs = table[table["flagged by"] == "run rule"]
    assert len(runs) >= 1, f"the x1.6 run must be flagged by the run rule:\n{table}"
    assert runs["the sum that passed its bar"].str.contains("clicks").all(), runs
    assert (runs["run_score"] > params.run_threshold).all()


def test_plot_marks_the_leading_sum(spiked, tmp_path):
    params, df = spiked
    sums = run_rule.sums_frame(df, params)
    assert run_rule.leading_sum(sums).startswith("clicks"), run_rule.leading_sum(sums)
    fig = run_rule.plot(sums, params, path=str(tmp_path / "run.png"))
    assert (tmp_path / "run.png").stat().st_size > 10_000
    assert len(fig.axes) == 2


def test_cusum_by_hand():
    steps = run_rule.cusum_steps([0.2, 1.5, 1.5, 1.5, 1.5, 1.5, 0.0], slack=0.75, bar=3)
    assert steps["sum after"].tolist()[:2] == [0.0, 0.75], steps
    # 0, 0.75, 1.5, 2.25, 3.0 (not above 3), 3.75: passes, starts again
    assert steps["passes the bar"].tolist() == [False, False, False, False, False, True, False]


def test_explain_names_the_rule(spiked):
    params, df = spiked
    bad = df[df["is_anomaly"]]
    texts = [run_rule.explain(r, params) for _, r in bad.iterrows()]
    assert any("flagged by the run rule" in t and "clicks" in t for t in texts), texts
    steady = job_rows([(10, 10)] * 30 + [(40, 10)], params)
    text = run_rule.explain(steady.iloc[-1], params)
    assert "flagged by the forest's score" in text and "run rule would have" in text, text
    assert all("\n" not in t for t in texts)
