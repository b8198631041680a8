"""A NAB-like window score for labelled series (issue 27): one number per detector and corpus.

Each labelled anomaly is a window of points [start, end). For one series and its flags:

- the first flag inside a window is a true positive worth ``sigmoid(y)`` (A_TP = 1), where y is
  the flag's position relative to the window's end: -1 at the window's start, 0 at its end, so
  an early detection is worth ~0.99 and one at the window's end ~0; later flags in the same
  window are neither rewarded nor penalised;
- a window with no flag costs A_FN = 1;
- a flag outside every window is a false positive costing A_FP = 0.11 (the NAB standard
  profile) times ``-sigmoid(y)`` with y its distance past the end of the nearest earlier window
  in window widths (a flag just after a window costs little, one far from any window the full
  A_FP), or the full A_FP when no window came before.

sigmoid(y) = 2 / (1 + exp(5 y)) - 1 (NAB's scaled sigmoid). Raw scores are summed over all
series of a corpus and normalised: 100 * (raw - null) / (perfect - null), where "null" flags
nothing (every window missed) and "perfect" flags each window's first point only. So a perfect
detector scores 100, one that never flags 0, and one that flags noise scores below 0.

One threshold for all series: ``best_threshold`` tries thresholds on the detectors' scores and
keeps the best corpus score (the detector's ceiling); ``corpus_score`` of the deployed flags is
what a user gets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

A_TP = 1.0
A_FN = 1.0
A_FP = 0.11


@dataclass(frozen=True)
class Window:
    """A labelled anomaly over points [start, end) of one series."""

    start: int
    end: int


def sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: ~1 at y = -1, 0 at y = 0, towards -1 for y > 0."""
    return 2.0 / (1.0 + math.exp(min(50.0, 5.0 * y))) - 1.0


def raw_score(flags: Sequence[bool], windows: Sequence[Window]) -> float:
    """The un-normalised score of one series' flags against its windows (see module)."""
    wins = sorted(windows, key=lambda w: w.start)
    total = 0.0
    detected = [False] * len(wins)
    for i, flag in enumerate(flags):
        if not flag:
            continue
        inside = next((j for j, w in enumerate(wins) if w.start <= i < w.end), None)
        if inside is not None:
            if not detected[inside]:
                w = wins[inside]
                width = max(1, w.end - w.start)
                detected[inside] = True
                total += A_TP * sigmoid(-(w.end - i) / width)
            continue
        before = [w for w in wins if w.end <= i]
        if before:
            w = before[-1]
            width = max(1, w.end - w.start)
            total += A_FP * sigmoid((i - w.end + 1) / width)
        else:
            total -= A_FP
    total -= A_FN * detected.count(False)
    return total


def perfect_score(windows: Sequence[Window]) -> float:
    """Raw score of a detector that flags each window's first point and nothing else."""
    return sum(A_TP * sigmoid(-1.0) for _ in windows)


def null_score(windows: Sequence[Window]) -> float:
    """Raw score of a detector that never flags."""
    return -A_FN * len(windows)


def corpus_score(flags_per_series: Sequence[Sequence[bool]],
                 windows_per_series: Sequence[Sequence[Window]]) -> float:
    """The normalised score (perfect 100, null 0) of flags over a corpus of series."""
    raw = sum(raw_score(f, w) for f, w in zip(flags_per_series, windows_per_series, strict=True))
    perfect = sum(perfect_score(w) for w in windows_per_series)
    null = sum(null_score(w) for w in windows_per_series)
    if perfect == null:  # no windows at all: only false positives count
        return -100.0 * sum(sum(map(bool, f)) for f in flags_per_series) * A_FP
    return 100.0 * (raw - null) / (perfect - null)


def candidate_thresholds(scores_per_series: Sequence[Sequence[float]], n: int = 80
                         ) -> list[float]:
    """Thresholds to try: quantiles of all positive scores (upper tail dense)."""
    pos = sorted(s for series in scores_per_series for s in series if s > 0)
    if not pos:
        return [0.0]
    qs = [1.0 - 0.5 ** (k / 6.0) for k in range(n)]  # 0 .. ~1, dense near the top
    return sorted({pos[min(len(pos) - 1, int(q * len(pos)))] for q in qs})


def best_threshold(scores_per_series: Sequence[Sequence[float]],
                   windows_per_series: Sequence[Sequence[Window]]) -> tuple[float, float]:
    """(threshold, corpus score) of the one threshold (flag: score > threshold) that scores best
    over the whole corpus."""
    best = (math.inf, corpus_score([[False] * len(s) for s in scores_per_series],
                                   windows_per_series))
    for th in candidate_thresholds(scores_per_series):
        flags = [[x > th for x in s] for s in scores_per_series]
        sc = corpus_score(flags, windows_per_series)
        if sc > best[1]:
            best = (th, sc)
    return best
