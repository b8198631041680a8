"""bench/detection_limits.py's bounds: the exact CUSUM and the one that takes the traffic from
the window itself (what a detector that does not assume the impressions steady can do)."""

import importlib.util
import math
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location(
    "detection_limits", Path(__file__).resolve().parents[1] / "bench" / "detection_limits.py")
D = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(D)


def _binomial_log_pmf(k: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log(1 - p))


def test_the_conditional_ratio_is_the_binomial_one_of_the_clicks_share():
    for clicks, imps, changed in ((10, 100, 5.0), (3, 120, 5.0), (22, 90, 20.0)):
        n = clicks + imps
        want = (_binomial_log_pmf(clicks, n, changed / (changed + D.IMPRESSIONS))
                - _binomial_log_pmf(clicks, n, D.CLICKS / (D.CLICKS + D.IMPRESSIONS)))
        got = D._conditional_llr(np.array([clicks]), np.array([imps]), changed)[0]
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def test_the_ratio_given_the_window_does_not_move_with_the_traffic():
    # twice the traffic, CTR unchanged: the exact ratio (impressions assumed steady) reads the
    # doubled clicks as a rise; given the window, the clicks' share is the usual one, which
    # speaks against a rise
    clicks, imps = np.array([2 * int(D.CLICKS)]), np.array([2 * int(D.IMPRESSIONS)])
    exact = (D._log_pmf("poisson", 2 * D.CLICKS) - D._log_pmf("poisson", D.CLICKS))[clicks][0]
    assert exact > 3.0
    assert D._conditional_llr(clicks, imps, 2 * D.CLICKS)[0] < 0.0


def test_knowing_the_traffic_only_from_the_window_is_slower_at_the_same_threshold():
    # a halving within 6 windows at threshold 8: the bound catches more than the detector
    # that takes the traffic from the window (it knows the impressions exactly)
    exact = D.bound(np.random.default_rng(1), "poisson", 20_000, 3_000, D.CLICKS / 2, 6, (8,))
    window = D.bound(np.random.default_rng(1), "poisson", 20_000, 3_000, D.CLICKS / 2, 6, (8,),
                     conditional=True)
    assert exact[0]["caught"] > window[0]["caught"] + 0.02
    assert window[0]["detector"].startswith("bound: traffic from the window")
