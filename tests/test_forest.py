import json

import pytest

from labhelpers.analytics.forest import ForestParams, SiteModel
from labhelpers.errors import ConfigError


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
    with pytest.raises(ConfigError, match="inputs='log'.*anscombe, raw"):
        ForestParams(inputs="log")


def test_anscombe_point_stabilises_counts():
    from labhelpers.analytics.forest import anscombe_point

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
