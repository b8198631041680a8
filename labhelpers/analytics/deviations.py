"""The run rule's driving inputs: how far a window's counts are from what the site usually
sends, on the noise-stabilised scale 2*sqrt(n + 3/8) (forest.AlertRule sums them).

No forest here: these are plain functions of a window's counts and the running means that
forest.SiteModel keeps (usual, recent, slow), so they can be tested and reasoned about alone.
"""

from __future__ import annotations

import math

# Span (in learned windows) of the recent impressions the run rule compares a window with.
RECENT_SPAN = 10


def click_deviation(clicks: int, impressions: int, usual_clicks: float | None,
                    usual_impressions: float | None) -> float | None:
    """How far a window's clicks are from what the usual CTR expects for its impressions.

    Expected clicks = impressions x usual clicks / usual impressions; the deviation is
    2*sqrt(clicks + 3/8) - 2*sqrt(expected + 3/8), noise of about 1 at any traffic level.
    It depends on the CTR only, so a daily cycle of traffic (CTR steady) does not move it;
    clicks doubling or a CTR halving does, up and down. None (nothing to compare) without
    impressions or before a usual CTR exists."""
    if impressions <= 0 or not usual_impressions or usual_clicks is None:
        return None
    expected = impressions * usual_clicks / usual_impressions
    return 2.0 * (math.sqrt(clicks + 0.375) - math.sqrt(expected + 0.375))


def impression_deviation(impressions: int, usual_impressions: float | None) -> float | None:
    """Impressions against their usual count, on the same stabilised scale (a site going
    dark, an impression outage, a traffic surge); None before a usual count exists."""
    if usual_impressions is None:
        return None
    return 2.0 * (math.sqrt(impressions + 0.375) - math.sqrt(usual_impressions + 0.375))


# Below this many impressions per window lately (the recent count), a window with fewer
# impressions than usual is not counted as a drop: at night a low-volume site sends 0-2
# impressions per window by chance, a silence is indistinguishable from a quiet night. A
# site going dark after normal traffic still counts (its recent count is well above this:
# held windows are not learned, so the recent count stays at the level before the silence).
RECENT_FLOOR = 3.0
# Span (in learned windows) of the slow running means of clicks and impressions: the click
# inputs' deviations count only beyond both the usual and this slow baseline (``nearest``),
# so traffic coming back to its long-run level after a lasting change (the end of a level
# shift, clicks back after an outage: once the hold ends those windows are learned and move
# the usual values) is not flagged as a change.
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

    On lab-like traffic (about 10 clicks per window) clicks doubling give about 2.6 here
    against about 1.8 in ``click_deviation`` (impressions' own noise enters the expected
    clicks there); the usual count moves slowly enough that a few doubled windows do not
    become "usual", and fast enough to follow a daily cycle."""
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
    the slow running means (SLOW_SPAN); the clicks' deviations count only beyond both the
    usual and the slow baseline (``nearest``), so traffic coming back to its long-run level
    after a lasting change is not itself a change."""
    imp = impression_deviation(impressions, recent_impressions)
    if imp is not None and recent_impressions is not None and \
            recent_impressions < RECENT_FLOOR:
        imp = max(imp, 0.0)
    ctr = nearest(click_deviation(clicks, impressions, usual_clicks, usual_impressions),
                  click_deviation(clicks, impressions, slow_clicks, slow_impressions))
    rise = nearest(
        rise_deviation(clicks, busier(usual_clicks, usual_impressions, recent_impressions)),
        rise_deviation(clicks, busier(slow_clicks, slow_impressions, recent_impressions)))
    return [ctr, imp, rise]
