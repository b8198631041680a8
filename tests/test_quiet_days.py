"""Long quiet days (labhelpers/evaluate/quiet_days.py): the quiet scenarios' traffic as the
job's windows, for many site-days."""

import numpy as np
import pytest

from labhelpers.errors import ConfigError
from labhelpers.evaluate.evaluation import rescore
from labhelpers.evaluate.quiet_days import QUIET, episode_rate, quiet_windows
from labhelpers.evaluate.scenarios import SCENARIOS
from labhelpers.job.forest import ForestParams


def test_every_quiet_scenario_is_simulated():
    assert set(QUIET) == {n for n in SCENARIOS if n.startswith("quiet-")}
    for name in QUIET:
        w = quiet_windows(name, 0.05, seed=1)
        assert len(w) and set(w["scenario"]) == {name}
        assert all(s.startswith(f"{name}/") for s in w["site"])


def test_lab_traffic_is_poisson_at_the_scenarios_rates():
    """quiet-noisy: two sites of lab traffic, 1 Impression and 1 Click per second."""
    w = quiet_windows("quiet-noisy", 2.0, seed=2)
    assert set(w["site"]) == {"quiet-noisy/site1", "quiet-noisy/site2"}
    assert len(w) == 2 * 86_400 // 10
    for col in ("clicks", "impressions"):
        assert w[col].mean() == pytest.approx(10.0, rel=0.02)
        assert w[col].var() / w[col].mean() == pytest.approx(1.0, abs=0.06), "Poisson noise"
    for _, g in w.groupby("site"):
        assert (g["window_start_ms"].diff().dropna() == 10_000).all(), "one window after another"


def test_a_compressed_day_goes_on_without_a_jump():
    """The daily cycle is defined over one scenario (3 h): followed forwards then backwards,
    the traffic climbs and falls smoothly over many such days."""
    w = quiet_windows("quiet-daily-cycle", 1.0, seed=3)
    site = w[w["site"] == "quiet-daily-cycle/site1"]["impressions"].to_numpy()
    smooth = np.convolve(site, np.ones(30) / 30, mode="valid")
    assert smooth.max() > 3 * smooth.min(), "a cycle from 20 % to 100 %"
    assert np.abs(np.diff(smooth)).max() < 1.5, "no jump where a day ends"


def test_unknown_quiet_scenario_is_a_clear_error():
    with pytest.raises(ConfigError, match="quiet-nope"):
        quiet_windows("quiet-nope", 1.0, seed=0)
    with pytest.raises(ConfigError):
        quiet_windows("lab-spike", 1.0, seed=0)


def test_episodes_are_counted_per_site_with_the_cooldown():
    w = quiet_windows("quiet-noisy", 0.1, seed=4)
    flags = np.zeros(len(w), bool)
    site1 = np.flatnonzero(w["site"] == "quiet-noisy/site1")
    flags[site1[[100, 101, 103]]] = True  # one episode: within the cooldown of each other
    flags[site1[300]] = True  # a second one
    flags[np.flatnonzero(w["site"] == "quiet-noisy/site2")[100]] = True  # another site
    r = episode_rate(w, flags, cooldown_s=60)
    assert r["episodes"] == 3
    assert r["per_site_day"] == pytest.approx(3 / 0.1, rel=0.01)
    assert r["per_scenario"]["quiet-noisy"]["episodes"] == 3
    # 5 flagged windows in 0.1 site-days: 12.5 in a run of the suite's scenario (2 sites x 3 h)
    assert r["max_windows_per_suite_run"] == pytest.approx(12.5, rel=0.01)


def test_the_job_code_scores_long_quiet_days_quietly():
    """The lab's defaults on a simulated quiet site-day of lab traffic: at most a couple of
    alert episodes (about 0.35 per site-day measured over 20; today's rule the same)."""
    w = quiet_windows("quiet-noisy", 1.0, seed=5)
    p = ForestParams()
    r = episode_rate(w, rescore(w, p)["is_anomaly"], p.cooldown_seconds)
    assert r["episodes"] <= 2, r
