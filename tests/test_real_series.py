"""The labelled real-series suite (labhelpers/evaluate/real_series.py) and its detectors."""

import pytest

pytest.importorskip("statsmodels")

from labhelpers.evaluate.real_series import (  # noqa: E402
    GENERATED,
    HELD_OUT_SEEDS,
    TUNE_SEEDS,
    build_real_suite,
    real_values,
)
from labhelpers.evaluate.series_detectors import plain_forest  # noqa: E402


@pytest.fixture(scope="module")
def suites():
    return {p: build_real_suite(p) for p in ("tune", "held-out")}


def test_parts_are_fixed_disjoint_and_labelled(suites):
    assert set(TUNE_SEEDS).isdisjoint(HELD_OUT_SEEDS)
    names = {p: {s.name for s in suite} for p, suite in suites.items()}
    assert names["tune"].isdisjoint(names["held-out"]), "a series in both parts"
    for part, suite in suites.items():
        assert {s.kind for s in suite} >= set(GENERATED), part
        for s in suite:
            assert s.part == part and s.windows, s.name
            assert len(s.timestamps) == len(s.values) > 50, s.name
            assert all(b >= a for a, b in zip(s.timestamps, s.timestamps[1:], strict=False)), s.name
            assert all(0 <= w.start < w.end <= len(s.values) for w in s.windows), s.name
    again = build_real_suite("tune")
    assert [s.values for s in again] == [s.values for s in suites["tune"]], "deterministic"


def test_real_data_come_from_the_installed_package():
    ts, vals = real_values("nile")
    assert len(vals) == 100 and vals[0] == 1120.0
    ts, vals = real_values("co2")
    assert len(vals) == 2284 and sum(v is None for v in vals) == 59  # its missing weeks


def test_plain_forest_scores_every_point():
    det = plain_forest([0.0] * 300, [1.0] * 150 + [50.0] + [1.0] * 149)
    assert len(det.scores) == 300 and det.flags[150], det.scores[148:152]
