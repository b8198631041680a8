import json
import math
from dataclasses import replace

import pytest

from labhelpers.errors import ConfigError
from labhelpers.job.deviations import (
    RECENT_FLOOR,
    click_deviation,
    nearest,
    rise_deviation,
    symmetric_deviation,
    window_deviations,
)
from labhelpers.job.forest import ForestParams, SiteModel


def _row(i, clicks=10, impressions=10):
    ctr = None if impressions == 0 else 100.0 * clicks / impressions
    return {"window_start": f"2026-11-27T10:{i // 6:02d}:{i % 6 * 10:02d}.000Z",
            "window_end": "x", "site": "a", "clicks": clicks, "impressions": impressions,
            "ctr": ctr}


def _feed(model, n, start=0):
    return [model.score(_row(i), (start + i + 1) * 10_000) for i in range(start, start + n)]


def test_unknown_parameter_is_an_error_not_ignored():
    with pytest.raises(ConfigError, match="num_tres"):
        ForestParams.from_dict({"num_tres": 50})


@pytest.mark.parametrize("name,value", [("num_trees", 0), ("subsample_size", 2),
                                        ("shingle_size", 0), ("threshold", -1),
                                        ("num_trees", 2.5), ("time_decay", 0)])
def test_out_of_range_parameters(name, value):
    with pytest.raises(ConfigError, match=name):
        ForestParams(**{name: value})


def test_lab_names_map_to_krcf_options():
    opts = ForestParams(num_trees=50, subsample_size=32, time_decay=1000, shingle_size=2,
                        warmup_windows=5).krcf_options()
    assert opts == {"dimensions": 3, "shingle_size": 2, "num_trees": 50, "sample_size": 32,
                    "output_after": 5, "random_seed": 42, "lambda": 0.001}


def test_warmup_scores_zero_then_ready():
    model = SiteModel(ForestParams(warmup_windows=12))
    rows = _feed(model, 20)
    assert all(r["anomaly_score"] == 0 and not r["forest_ready"] for r in rows[:12])
    assert all(r["forest_ready"] and r["anomaly_score"] > 0 for r in rows[12:])
    assert not any(r["is_anomaly"] for r in rows)


def test_spike_is_flagged_with_attribution_and_one_episode():
    model = SiteModel(ForestParams())
    _feed(model, 30)
    spike = [model.score(_row(30 + k, clicks=40), (31 + k) * 10_000) for k in range(2)]
    after = model.score(_row(32), 33 * 10_000)
    assert all(r["is_anomaly"] for r in spike), [r["anomaly_score"] for r in spike]
    assert spike[0]["episode_id"] == spike[1]["episode_id"], "one spike, one episode"
    attr = json.loads(spike[0]["attribution"])
    assert attr["ctr"]["high"] > attr["impressions"]["high"], attr
    assert not after["is_anomaly"] and after["episode_id"] is None
    by_score = spike[0]["anomaly_score"] > ForestParams().threshold
    assert spike[0]["flagged_by"] == "score" if by_score else \
        spike[0]["flagged_by"].startswith("run:"), spike[0]
    assert after["flagged_by"] is None


def test_episodes_split_after_cooldown():
    model = SiteModel(ForestParams(cooldown_seconds=60))
    _feed(model, 30)
    first = model.score(_row(30, clicks=40), 31 * 10_000)
    _feed(model, 10, start=31)
    second = model.score(_row(41, clicks=40), 42 * 10_000)
    assert first["is_anomaly"] and second["is_anomaly"]
    assert first["episode_id"] != second["episode_id"]


def test_ctr_zero_and_impression_outage_are_scored():
    model = SiteModel(ForestParams())
    _feed(model, 30)
    zero = model.score(_row(30, clicks=0), 31 * 10_000)
    assert zero["ctr"] == 0 and zero["is_anomaly"], zero
    outage = model.score(_row(31, clicks=10, impressions=0), 32 * 10_000)
    assert outage["ctr"] is None and outage["is_anomaly"], "an impression outage is scored"
    assert json.loads(outage["attribution"])["impressions"]["low"] > 0, outage


def test_raw_inputs_are_the_original_labs():
    model = SiteModel(ForestParams(inputs="raw"))
    _feed(model, 30)
    assert model.learned_point == [10.0, 10.0, 100.0]
    none = model.score(_row(31, clicks=5, impressions=0), 32 * 10_000)
    assert none["anomaly_score"] is None and not none["is_anomaly"], "no CTR, not scored"
    with pytest.raises(ConfigError, match="inputs='log'.*anscombe, raw, ctr"):
        ForestParams(inputs="log")


def test_anscombe_point_stabilises_counts():
    from labhelpers.job.forest import anscombe_point

    low, high = anscombe_point(4, 4, 100.0), anscombe_point(400, 400, 100.0)
    assert low[2] == high[2] == 0.0, "same CTR, no difference"
    # one extra Poisson standard deviation moves the point by about 1 at any level
    assert anscombe_point(6, 4, None)[0] - low[0] == pytest.approx(0.87, abs=0.05)
    assert anscombe_point(420, 400, None)[0] - high[0] == pytest.approx(0.99, abs=0.05)


def test_state_round_trip_gives_identical_scores():
    params = ForestParams()
    model = SiteModel(params)
    _feed(model, 25)
    copy = SiteModel.from_bytes(params, model.to_bytes())
    a, b = _feed(model, 5, start=25), _feed(copy, 5, start=25)
    assert a == b, "a restored forest must continue exactly where it stopped"


def test_snapshot_plus_learned_points_restores_the_same_model():
    """What the job keeps in Flink state: an old forest snapshot + the points learned since."""
    params = ForestParams()
    model = SiteModel(params)
    _feed(model, 20)
    snapshot, learned = model.forest_bytes(), []
    for i in range(20, 33):
        row = _row(i, clicks=40 if i == 30 else 10)  # one held (unlearned) anomaly inside
        model.score(row, (i + 1) * 10_000)
        if model.learned_point is not None:
            learned.append(model.learned_point)
    assert len(learned) == 12, "the anomalous window is not learned"
    copy = SiteModel.restore(params, model.meta(), snapshot, learned)
    assert _feed(model, 5, start=33) == _feed(copy, 5, start=33)




def _busy(params, changed, n_before=300, n_after=8, seed=0, threshold_off=False):
    """A busy noisy site (about 100 impressions and 10 clicks per window, Poisson), then
    ``changed(rng)`` -> (clicks, impressions) for ``n_after`` windows. Returns the rows of
    the changed windows."""
    import numpy as np

    if threshold_off:
        params = replace(params, threshold=1e6)
    rng = np.random.default_rng(seed)
    model = SiteModel(params)
    for k in range(n_before):
        model.score(_row(k, int(rng.poisson(10)), int(rng.poisson(100))), (k + 1) * 10_000)
    rows = []
    for k in range(n_before, n_before + n_after):
        c, i = changed(rng)
        rows.append(model.score(_row(k, c, i), (k + 1) * 10_000))
    return rows


def test_run_rule_flags_a_sustained_x2_rise_below_the_threshold():
    """The issue's case: a busy noisy site, clicks x2 for 60 s; no window passes the
    threshold, the run rule (defaults) flags the run within 3 windows; off, nothing."""
    def x2(rng):
        return int(rng.poisson(20)), int(rng.poisson(100))

    rows = _busy(ForestParams(), x2, n_after=6)
    assert any(r["is_anomaly"] for r in rows[:3]), [(r["anomaly_score"], r["run_score"])
                                                    for r in rows]
    flagged = next(r for r in rows if r["is_anomaly"])
    p = ForestParams()
    assert flagged["anomaly_score"] < p.threshold < p.run_threshold < flagged["run_score"], (
        "flagged by the run rule; run_score shows the sum that crossed run_threshold")
    assert flagged["flagged_by"] in ("run:clicks_rise:high", "run:clicks_given_ctr:high"), (
        flagged["flagged_by"])
    assert all(r["flagged_by"] is None for r in rows if not r["is_anomaly"])
    off = _busy(ForestParams(threshold=1e6, run_threshold=0), x2, n_after=6)
    assert not any(r["is_anomaly"] for r in off)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_run_rule_flags_a_ctr_halving_within_six_windows(seed):
    """A CTR that halves (clicks 10 -> 5 on 100 impressions) on a busy noisy site is flagged
    by the run rule alone (threshold out of the way) within 6 windows (60 s)."""
    rows = _busy(ForestParams(), lambda rng: (int(rng.poisson(5)), int(rng.poisson(100))),
                 seed=seed, threshold_off=True)
    first = next((k for k, r in enumerate(rows) if r["is_anomaly"]), None)
    assert first is not None and first < 6, [r["run_score"] for r in rows]
    assert rows[first]["flagged_by"] == "run:clicks_given_ctr:low"


def _cycle_flags(seed, windows, period, night, clicks, impressions, forest=True):
    """The run rule's flags (threshold out of the way) on a daily cycle of Poisson traffic,
    CTR steady: the level goes from ``night`` to 1 and back every ``period`` windows.
    forest=False: the rule alone (SiteModel.decide on a score of 0), much faster."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model = SiteModel(ForestParams(threshold=1e6))
    flags = []
    for k in range(windows):
        level = night + (1 - night) * (1 - math.cos(2 * math.pi * k / period)) / 2
        c, i = int(rng.poisson(clicks * level)), int(rng.poisson(impressions * level))
        if forest:
            flags.append(model.score(_row(k, c, i), (k + 1) * 10_000)["is_anomaly"])
        else:
            row = {"clicks": c, "impressions": i, "ctr": None}
            flags.append(model.decide(row, 0.0, k >= 12)[0])
    return flags


def test_a_quiet_noisy_daily_cycle_gives_no_run_flag():
    """Traffic from 20 % to 100 % and back (a day compressed into 1,080 windows), CTR steady,
    Poisson noise: the run rule (threshold out of the way) flags nothing."""
    flags = _cycle_flags(5, 1080, 1080, 0.2, 10, 20)
    assert sum(flags) == 0, [k for k, f in enumerate(flags) if f]


def test_run_rule_state_round_trips_mid_run():
    """A checkpoint taken in the middle of a run continues the same run: same sums, same
    noise estimate, same flags."""
    import numpy as np

    params = ForestParams(threshold=1e6)
    rng = np.random.default_rng(3)
    model = SiteModel(params)
    rows = [(int(rng.poisson(10)), int(rng.poisson(100))) for _ in range(60)]
    rows += [(int(rng.poisson(5)), int(rng.poisson(100))) for _ in range(10)]
    for k, (c, i) in enumerate(rows[:63]):
        model.score(_row(k, c, i), (k + 1) * 10_000)
    assert model.rule.run > 0, "mid-run: a sum has started"
    copy = SiteModel.from_bytes(params, model.to_bytes())
    assert copy.rule.state() == model.rule.state()
    a = [model.score(_row(k, c, i), (k + 1) * 10_000) for k, (c, i) in
         enumerate(rows[63:], start=63)]
    b = [copy.score(_row(k, c, i), (k + 1) * 10_000) for k, (c, i) in
         enumerate(rows[63:], start=63)]
    assert a == b and any(r["is_anomaly"] for r in a)


def test_click_deviation_is_ctr_only():
    assert click_deviation(10, 100, 10.0, 100.0) == pytest.approx(0.0)
    assert click_deviation(5, 50, 10.0, 100.0) == pytest.approx(0.0), "less traffic, same CTR"
    assert click_deviation(20, 100, 10.0, 100.0) > 2.5
    assert click_deviation(5, 100, 10.0, 100.0) < -1.6
    assert click_deviation(3, 0, 10.0, 100.0) is None, "no impressions: no CTR to compare"
    assert click_deviation(3, 10, None, None) is None


def _skew(values):
    import numpy as np

    v = np.array([x for x in values if x is not None])
    return float(((v - v.mean()) ** 3).mean() / v.std() ** 3)


@pytest.mark.parametrize("clicks,impressions,old_skew", [(10, 10, None), (10, 100, -0.13),
                                                         (5, 50, -0.2)])
def test_the_click_deviation_is_as_likely_above_as_below(clicks, impressions, old_skew):
    """On steady Poisson traffic the click deviation is not skewed, so the run rule's sums
    for a rise and for a fall pass their bar about as often. The rule before (clicks against
    impressions x the usual CTR, square roots) was skewed low on busy sites: its sum for a
    fall flagged 1.1 times per site-day at 10 clicks and 100 impressions a window, its sum
    for a rise 0.06 times."""
    import numpy as np

    rng = np.random.default_rng(5)
    c, i = rng.poisson(clicks, 100_000), rng.poisson(impressions, 100_000)
    assert abs(_skew(click_deviation(int(a), int(b), float(clicks), float(impressions))
                     for a, b in zip(c, i, strict=True))) < 0.05
    if old_skew is not None:
        old = _skew(2 * (math.sqrt(a + 0.375) - math.sqrt(b * clicks / impressions + 0.375))
                    for a, b in zip(c, i, strict=True) if b > 0)
        assert old < old_skew + 0.03, old


def test_symmetric_deviation_has_unit_noise_and_no_skew():
    import numpy as np

    rng = np.random.default_rng(6)
    for mean in (5.0, 20.0, 100.0):
        d = [symmetric_deviation(int(x), mean) for x in rng.poisson(mean, 100_000)]
        assert abs(np.std(d) - 1) < 0.05, mean
        assert abs(_skew(d)) < 0.04, mean
    # binomial: 30 tries at 1/2 is symmetric as it is (the power is 1)
    d = [symmetric_deviation(int(x), 15.0, 0.5) for x in rng.binomial(30, 0.5, 100_000)]
    assert abs(np.std(d) - 1) < 0.05


def test_rise_deviation_counts_rises_only():
    assert rise_deviation(20, 10.0) == pytest.approx(2 * (20.375 ** 0.5 - 10.375 ** 0.5))
    assert rise_deviation(20, 10.0) > 2.5, "x2 on lab-like traffic: about 2.6 per window"
    assert rise_deviation(5, 10.0) == 0.0, "a fall is click_deviation's, not this sum's"
    assert rise_deviation(5, None) is None


def test_a_drop_is_not_counted_while_the_recent_count_is_tiny():
    """Below RECENT_FLOOR impressions per window lately (a quiet night), fewer impressions
    than that is not a drop; above it, it is; rises count either way."""
    low = RECENT_FLOOR / 2
    assert window_deviations(0, 0, 1.0, low, low)[1] == 0.0
    assert window_deviations(0, 3, 1.0, low, low)[1] > 0, "a rise still counts"
    assert window_deviations(0, 0, 5.0, 10.0, 10.0)[1] < -4, "a site going dark counts"


def test_lab_like_x2_for_60_s_is_mostly_flagged_by_the_run_rule():
    """Lab-like Poisson traffic (about 10 clicks and 10 impressions per window), clicks x2
    for 6 windows, threshold out of the way: the run rule flags it within 4 windows in at
    least 9 of 12 seeds (measured: 9; without the rise sum 3 of 12). Not all: at this volume
    a doubling is within reach of noise for a few windows."""
    import numpy as np

    firsts = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        model = SiteModel(ForestParams(threshold=1e6))
        for k in range(120):
            model.score(_row(k, int(rng.poisson(10)), int(rng.poisson(10))), (k + 1) * 10_000)
        rows = [model.score(_row(k, int(rng.poisson(20)), int(rng.poisson(10))),
                            (k + 1) * 10_000) for k in range(120, 126)]
        firsts.append(next((k for k, r in enumerate(rows) if r["is_anomaly"]), None))
    assert sum(f is not None and f < 4 for f in firsts) >= 9, firsts


def test_a_quiet_low_volume_night_gives_no_run_flag():
    """A low-volume daily cycle (at night 0-2 impressions per window), CTR steady: the run
    rule (threshold out of the way) flags nothing; the quiet night's silences are not
    drops."""
    for seed in range(3):
        flags = _cycle_flags(seed, 1080, 1080, 0.1, 1.5, 5)
        assert sum(flags) == 0, (seed, [k for k, f in enumerate(flags) if f])


def test_a_fast_daily_cycle_with_a_steady_ctr_is_mostly_quiet(monkeypatch):
    """Notebook 06's small suite compresses a day into 30 minutes (180 windows): traffic
    from 20 % to 100 % and back, CTR steady. The usual click count lags behind the rising
    side, which alone read as a rise (the small suite's one quiet false alarm); scaled up
    by the busier impressions lately (``busier``) it does not. Poisson counts, the run rule
    alone (decide, no forest), 20 seeds: measured 9 seeds with any flag now, 19 without the
    scaling."""
    import labhelpers.job.deviations as deviations

    def seeds_with_a_flag() -> int:
        return sum(any(_cycle_flags(seed, 540, 180, 0.2, 10, 20, forest=False))
                   for seed in range(20))

    assert seeds_with_a_flag() <= 12
    assert deviations.busier(10.0, 100.0, 150.0) == pytest.approx(
        10.0 * ((150.375 ** 0.5 - 0.25) ** 2 - 0.375) / 100)
    assert deviations.busier(10.0, 100.0, 50.0) == 10.0, "quieter lately: the usual count stays"
    monkeypatch.setattr(deviations, "busier", lambda clicks, usual, recent: clicks)
    assert seeds_with_a_flag() >= 16, "without the scaling the cycle reads as rises"


def test_nearest_counts_only_beyond_both_baselines():
    assert nearest(-2.0, -0.5) == -0.5 and nearest(3.0, 1.0) == 1.0
    assert nearest(-2.0, 1.0) == 0.0, "between the two baselines: no deviation"
    assert nearest(None, 1.5) == 1.5 and nearest(-1.0, None) == -1.0
    assert nearest(None, None) is None


def test_the_return_to_normal_after_a_long_shift_is_not_flagged():
    """Lab-like Poisson traffic, clicks x3 for 30 windows (5 min), then back: the shift is
    flagged; the 60 windows after it are not (the run rule alone, threshold out of the way;
    before the slow baseline, 1-3 flags after the return in 7 of these 8 seeds)."""
    import numpy as np

    def row(k, c, i):
        return {"window_start": f"2026-11-27T{k // 360:02d}:{k // 6 % 60:02d}:"
                f"{k % 6 * 10:02d}.000Z", "window_end": "x", "site": "a", "clicks": c,
                "impressions": i, "ctr": None if i == 0 else 100.0 * c / i}

    for seed in range(8):
        rng = np.random.default_rng(seed)
        model = SiteModel(ForestParams(threshold=1e6))
        flags = []
        for k in range(390):
            shifted = 300 <= k < 330
            c, i = int(rng.poisson(30 if shifted else 10)), int(rng.poisson(10))
            flags.append(model.score(row(k, c, i), (k + 1) * 10_000)["is_anomaly"])
        assert any(flags[300:330]), seed
        assert not any(flags[330:]), (seed, [k for k in range(330, 390) if flags[k]])


def test_a_silent_site_alerts_once_and_a_partial_window_never():
    model = SiteModel(ForestParams())
    _feed(model, 60)
    dark = [model.score(_row(60 + k, 0, 0), (61 + k) * 10_000) for k in range(30)]
    assert dark[0]["is_anomaly"], "the first silent window is flagged"
    episodes = {r["episode_id"] for r in dark if r["is_anomaly"]}
    assert len(episodes) == 1, f"one silence, one alert episode: {episodes}"
    back = model.score(_row(90), 91 * 10_000)
    assert back["episode_id"] != dark[0]["episode_id"]
    snapshot = model.forest_bytes()
    partial = model.score(_row(91, clicks=1, impressions=0), 92 * 10_000, complete=False)
    assert partial["complete"] is False and not partial["is_anomaly"]
    assert partial["anomaly_score"] is None and model.learned_point is None
    assert model.forest_bytes() == snapshot, "a partial window is not learned"


def test_usual_values_describe_the_learned_windows():
    model = SiteModel(ForestParams())
    _feed(model, 40)
    spike = model.score(_row(40, clicks=40), 41 * 10_000)
    assert spike["is_anomaly"] and spike["usual_clicks"] == pytest.approx(10.0)
    assert spike["usual_ctr"] == pytest.approx(100.0)


def test_original_lab_preset_is_ctr_alone():
    params = ForestParams.preset("original-lab")
    assert (params.inputs, params.subsample_size, params.threshold) == ("ctr", 12, 2.0)
    assert params.krcf_options()["dimensions"] == 1
    model = SiteModel(params)
    rows = _feed(model, 30)
    assert model.learned_point == [100.0]
    assert set(json.loads(rows[-1]["attribution"])) == {"ctr"}
    with pytest.raises(ConfigError, match="preset 'nope'"):
        ForestParams.preset("nope")


def test_hold_is_bounded_then_a_new_level_is_learned():
    model = SiteModel(ForestParams(anomaly_hold_windows=3))
    _feed(model, 40)
    rows = [model.score(_row(40 + k, clicks=40), (41 + k) * 10_000) for k in range(40)]
    learned = [k for k, r in enumerate(rows) if r["is_anomaly"]]
    assert learned[:3] == [0, 1, 2]
    assert not rows[-1]["is_anomaly"], "a lasting new level stops being an anomaly"


def test_older_meta_still_restores():
    params = ForestParams()
    model = SiteModel(params)
    _feed(model, 20)
    meta = {k: model.meta()[k] for k in ("windows_seen", "episode_id", "last_anomaly_end_ms",
                                         "held")}
    copy = SiteModel.restore(params, meta, model.forest_bytes(), [])
    assert copy.rule.run == 0.0 and copy.silent == 0
