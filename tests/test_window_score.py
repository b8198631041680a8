"""The NAB-like window score (labhelpers/evaluate/window_score.py)."""

import pytest

from labhelpers.evaluate.window_score import (
    A_FP,
    Window,
    best_threshold,
    corpus_score,
    raw_score,
    sigmoid,
)

WINDOWS = [[Window(100, 110)], [Window(50, 60), Window(200, 220)], []]
N = 300


def _flags(points):
    return [i in points for i in range(N)]


def test_perfect_is_100_and_null_is_0():
    perfect = [_flags({w.start for w in ws}) for ws in WINDOWS]
    assert corpus_score(perfect, WINDOWS) == pytest.approx(100.0)
    assert corpus_score([_flags(set()) for _ in WINDOWS], WINDOWS) == pytest.approx(0.0)


def test_early_detection_beats_late_and_the_first_flag_counts():
    early = raw_score(_flags({101}), WINDOWS[0])
    late = raw_score(_flags({108}), WINDOWS[0])
    assert early > late > -1.0, (early, late)
    assert raw_score(_flags({101, 102, 109}), WINDOWS[0]) == pytest.approx(early), \
        "later flags in a window neither add nor cost"
    assert sigmoid(-1.0) == pytest.approx(0.9866, abs=1e-4) and sigmoid(0.0) == 0.0


def test_false_positives_cost_more_far_from_a_window():
    hit = raw_score(_flags({100}), WINDOWS[0])
    near = raw_score(_flags({100, 111}), WINDOWS[0]) - hit
    far = raw_score(_flags({100, 250}), WINDOWS[0]) - hit
    before = raw_score(_flags({100, 10}), WINDOWS[0]) - hit
    assert far < near < 0 and before == pytest.approx(-A_FP), (near, far, before)
    noisy = [_flags(set(range(0, N, 7))) for _ in WINDOWS]
    assert corpus_score(noisy, WINDOWS) < 0, "flagging noise scores below never flagging"


def test_best_threshold_separates_the_windows():
    scores = [[5.0 if i == w.start else (2.0 if i % 13 == 0 else 1.0) for i in range(N)]
              for ws in WINDOWS for w in (ws[:1] or [Window(-1, -1)])]
    windows = [ws[:1] for ws in WINDOWS]
    th, best = best_threshold(scores, windows)
    assert 2.0 <= th < 5.0 and best == pytest.approx(100.0), (th, best)
