"""The run rule's driving inputs: how far a window's counts are from what the site usually
sends, in units of their noise (forest.AlertRule sums them): the two-sided ones on a scale
where a count as much above as below is as likely (``symmetric_deviation``), the rise on the
square-root scale 2*sqrt(n + 3/8).

No forest here: these are plain functions of a window's counts and the running means that
forest.SiteModel keeps (usual, recent, slow), so they can be tested and reasoned about alone.
"""

from __future__ import annotations

import math


def symmetric_deviation(count: float, expected: float, p: float = 0.0) -> float:
    """A count against the count expected, in units of its noise, on a scale where a count
    as much above as below is as likely: Poisson (``p`` 0) or binomial out of
    expected / ``p`` tries. The scale is the power count^lam with
    lam = 1 - (1 - 2p) / (3 (1 - p)), which cancels the count's skew to first order (2/3
    for a Poisson count, 1 for a fair coin), both counts + 1/6.

    The square root (2*sqrt(n + 3/8), the usual variance-stabilising scale) leaves counts of
    random arrivals skewed low: at 10 per window a deviation below -3 is three times as likely
    as one above +3, so a sum watching for a fall passes its bar several times as often as one
    watching for a rise (bench/detection_limits.py)."""
    lam = 1.0 - (1.0 - 2.0 * p) / (3.0 * (1.0 - p))
    base = expected + 1 / 6
    slope = lam * base ** (lam - 1.0) * math.sqrt(base * (1.0 - p))
    return ((count + 1 / 6) ** lam - base ** lam) / slope


# Span (in learned windows) of the recent impressions the run rule compares a window with.
RECENT_SPAN = 10


def click_deviation(clicks: int, impressions: int, usual_clicks: float | None,
                    usual_impressions: float | None) -> float | None:
    """How far a window's clicks are from what the usual CTR expects for its impressions.

    Clicks and impressions both arrive at random, so the test is the one for a ratio of two
    random counts: of the window's clicks + impressions, the share that are clicks, against
    the usual share (usual clicks / (usual clicks + usual impressions)), as a binomial count
    (``symmetric_deviation``): noise of 1 and two tails alike whether impressions are few or
    many (comparing the clicks with impressions x the usual CTR instead lets the impressions'
    own noise in: on lab-like traffic, 10 of each a window, a deviation above +3 was nine
    times as likely as one below -3).
    It depends on the CTR only, so a daily cycle of traffic (CTR steady) does not move it;
    clicks doubling or a CTR halving does, up and down. None (nothing to compare) without
    impressions or before a usual CTR exists."""
    if impressions <= 0 or not usual_impressions or usual_clicks is None:
        return None
    share = usual_clicks / (usual_clicks + usual_impressions)
    return symmetric_deviation(clicks, (clicks + impressions) * share, share)


def impression_deviation(impressions: int, usual_impressions: float | None) -> float | None:
    """Impressions against their usual count, on the same scale (a site going
    dark, an impression outage, a traffic surge); None before a usual count exists."""
    if usual_impressions is None:
        return None
    return symmetric_deviation(impressions, usual_impressions)


# Below this many impressions per window lately (the recent count), a window with fewer
# impressions than usual is not counted as a drop: at night a low-volume site sends 0-2
# impressions per window by chance, a silence is indistinguishable from a quiet night. A
# site going dark after normal traffic still counts (its recent count is well above this:
# held windows are not learned, so the recent count stays at the level before the silence).
RECENT_FLOOR = 3.0
# Span (in learned windows) of the slow running means of clicks and impressions: every
# input's deviation counts only beyond both its faster baseline and this slow one
# (``nearest``), so traffic coming back to its long-run level after a lasting change (the end
# of a level shift, clicks or impressions back after an outage: once the hold ends those
# windows are learned and move the faster baselines) is not flagged as a change.
SLOW_SPAN = 360


# How far (stabilised units) the recent impressions must be above the usual count before the
# expected clicks follow them (``busier``): about one standard deviation of the recent count's
# noise. Chosen by hand on the tuning seeds and simulated Poisson traffic (0 makes a x2 rise
# on lab-like traffic slower: 6 of 12 seeds within 4 windows instead of 9; 0.25-0.5 keep 9
# and quiet the compressed daily cycle; 0.75 and more do not quiet it).
BUSIER_MARGIN = 0.5


def busier(usual_clicks: float | None, usual_impressions: float | None,
           recent_impressions: float | None) -> float | None:
    """The clicks to expect when traffic is busier lately than usual: ``usual_clicks`` x
    recent / usual impressions, never below ``usual_clicks``. On the rising side of a daily
    cycle the usual count lags behind, so clicks that merely follow more impressions are not a
    rise; quieter traffic lately (night, a site back from dark) leaves the usual count as it
    is, so a real rise on quiet traffic still counts."""
    if usual_clicks is None or not usual_impressions or recent_impressions is None:
        return usual_clicks
    # the recent count less BUSIER_MARGIN on the stabilised scale: the recent count's own
    # noise (a mean of about 10 windows: about 0.45 units) does not raise the expected clicks
    busy = max(0.0, math.sqrt(recent_impressions + 0.375) - BUSIER_MARGIN / 2) ** 2 - 0.375
    return usual_clicks * max(1.0, busy / usual_impressions)


def rise_deviation(clicks: int, usual_clicks: float | None) -> float | None:
    """Clicks above their usual count (USUAL_SPAN), on the stabilised scale; a fall counts as
    0 (a CTR that falls shows in ``click_deviation``). None before a usual count exists.

    The square root's upper tail is the shorter one, which keeps this one-sided sum quiet.
    On lab-like traffic (about 10 clicks and 10 impressions per window) clicks doubling give
    about 2.5 here (root mean square 0.65 on steady traffic, the deviation is 0 half the
    time), about 1.8 in ``click_deviation`` (noise 1: the doubled clicks are measured
    against the clicks and the impressions together). The usual count moves slowly enough
    that a few doubled windows do not become "usual", and fast enough to follow a daily
    cycle."""
    if usual_clicks is None:
        return None
    return max(0.0, 2.0 * (math.sqrt(clicks + 0.375) - math.sqrt(usual_clicks + 0.375)))


# The run rule's driving inputs of a window (forest.AlertRule): clicks given the usual CTR,
# impressions against their recent count (a faster running mean, over RECENT_SPAN learned
# windows: traffic follows a daily cycle, which a slower mean would lag behind; a drop to
# nothing still stands out at once; a drop below a recent count under RECENT_FLOOR is not
# counted), clicks rising above their usual count (``rise_deviation``; the usual count scaled
# up when traffic is busier lately, ``busier``).
RUN_INPUTS = ("clicks_given_ctr", "impressions", "clicks_rise")


def nearest(a: float | None, b: float | None) -> float | None:
    """The deviation from the nearer of two baselines: 0 between them (signs differ), the
    smaller one when both agree; one alone when the other is None."""
    if a is None or b is None:
        return a if b is None else b
    if (a > 0) != (b > 0):
        return 0.0
    return a if abs(a) < abs(b) else b


def window_deviations(clicks: int, impressions: int, usual_clicks: float | None,
                      usual_impressions: float | None, recent_impressions: float | None,
                      slow_clicks: float | None = None, slow_impressions: float | None = None
                      ) -> list[float | None]:
    """The deviations of RUN_INPUTS for one window. ``slow_clicks``, ``slow_impressions``:
    the slow running means (SLOW_SPAN); each deviation counts only beyond both its faster
    baseline and the slow one (``nearest``), so traffic coming back to its long-run level
    after a lasting change (impressions back after an outage the recent count had learned)
    is not itself a change."""
    imp = nearest(impression_deviation(impressions, recent_impressions),
                  impression_deviation(impressions, slow_impressions))
    if imp is not None and recent_impressions is not None and \
            recent_impressions < RECENT_FLOOR:
        imp = max(imp, 0.0)
    ctr = nearest(click_deviation(clicks, impressions, usual_clicks, usual_impressions),
                  click_deviation(clicks, impressions, slow_clicks, slow_impressions))
    rise = nearest(
        rise_deviation(clicks, busier(usual_clicks, usual_impressions, recent_impressions)),
        rise_deviation(clicks, busier(slow_clicks, slow_impressions, recent_impressions)))
    return [ctr, imp, rise]
