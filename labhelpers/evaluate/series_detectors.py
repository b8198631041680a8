"""Detectors compared on labelled series (bench/series_benchmark.py): score-series itself and a
plain Random Cut Forest baseline.

Each detector maps one series (timestamps in epoch seconds, values) to per-point scores and its
own deployed flags; the window score (window_score.py) then measures the flags as deployed
and the best single threshold on the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import krcf

from ..job.forest import ForestParams

# The plain baseline: the same krcf, one-dimensional raw values, sample 256, the lab's trees,
# decay, warm-up and seed, no rules (no hold, no run rule, no deviation, no seasons): every
# point is scored, then learned. Deployed, it flags a score above the lab's threshold.
PLAIN_SAMPLE_SIZE = 256


@dataclass(frozen=True)
class Detection:
    """One detector's output on one series: a score per point and its deployed flags."""

    scores: list[float]
    flags: list[bool]


def plain_forest_options() -> dict[str, Any]:
    p = ForestParams()
    return {**p.krcf_options(), "dimensions": 1, "sample_size": PLAIN_SAMPLE_SIZE,
            "shingle_size": 1}


def plain_forest(timestamps: Sequence[float], values: Sequence[float]) -> Detection:
    """Plain RCF: score, then learn, every raw value; flag a score above ForestParams'
    threshold."""
    forest = krcf.RandomCutForest(plain_forest_options())
    threshold = ForestParams().threshold
    scores = []
    for v in values:
        point = [float(v)]
        scores.append(float(forest.score(point)))
        forest.update(point)
    return Detection(scores, [s > threshold for s in scores])


def score_series_detector(timestamps: Sequence[float], values: Sequence[float],
                          seasons: bool = True,
                          forest: dict[str, Any] | None = None) -> Detection:
    """score-series as the command runs it (series.SERIES_DEFAULTS, seasons unless told
    otherwise): its anomaly_score and its is_anomaly."""
    from .series import SeriesModel, series_params

    model = SeriesModel(series_params(forest), seasons=seasons)
    scores, flags = [], []
    for t, v in zip(timestamps, values, strict=True):
        s, f = model.score(v, t)
        scores.append(s)
        flags.append(f)
    return Detection(scores, flags)


DETECTORS = {
    "score-series": score_series_detector,
    "plain-forest": plain_forest,
}
