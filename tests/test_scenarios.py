"""The labelled scenario suite: labels agree with the records, seeds make it repeatable,
quiet scenarios have no labels, and one file holds every scenario in arrival order."""

import statistics
from collections import defaultdict

import pytest

from labhelpers.errors import ConfigError
from labhelpers.evaluate.scenarios import (
    OUT_OF_ORDER_MAX_MS,
    SCENARIOS,
    SIZES,
    TOO_LATE_MS,
    WINDOW_S,
    Anomaly,
    build_scenario,
    build_suite,
    record_ms,
    window_counts,
)

W = WINDOW_S * 1000


@pytest.fixture(scope="module")
def suite():
    return build_suite("small", seed=0)


def _per_site(scenario, lateness_s=None):
    """{site: {window start: (clicks, impressions)}} recounted from the records."""
    out = defaultdict(dict)
    for (site, w), ci in window_counts(scenario.records, WINDOW_S, lateness_s).items():
        out[site][w] = ci
    return out


def test_every_scenario_is_built_with_prefixed_sites(suite):
    assert [s.name for s in suite.scenarios] == list(SCENARIOS)
    for sc in suite.scenarios:
        assert sc.records, sc.name
        assert all(site.startswith(sc.name + "/") for site in sc.sites), sc.sites
        assert {r["site"] for r in sc.records} == set(sc.sites), sc.name
        assert sc.duration_s == SIZES["small"]
        assert sc.arrival_ms == sorted(sc.arrival_ms), f"{sc.name}: arrival order"
        for a in sc.anomalies:
            assert a.site in sc.sites
            assert sc.start_ms < a.start_ms < a.end_ms <= sc.start_ms + sc.duration_s * 1000


def test_quiet_scenarios_have_no_labels_and_the_others_do(suite):
    for sc in suite.scenarios:
        assert sc.quiet == sc.name.startswith("quiet-"), sc.name
        assert bool(sc.labels()) == (not sc.quiet), sc.name
    multi = suite.by_name["multi-site"]
    assert {site for site, _ in multi.labels()} == {"multi-site/shop"}, "only shop misbehaves"


def test_same_seed_same_records_other_seed_other_noise():
    a = build_scenario("spike-x4-20s", "small", seed=5)
    b = build_scenario("spike-x4-20s", "small", seed=5)
    c = build_scenario("spike-x4-20s", "small", seed=6)
    assert a.records == b.records and a.arrival_ms == b.arrival_ms
    assert a.labels() == b.labels() == c.labels(), "labels do not depend on the noise"
    assert a.records != c.records, "another seed gives other noise"


def test_anomaly_windows_cover_the_interval():
    a = Anomaly("s", "spike", 1_000_005_000, 1_000_025_000)  # 20 s starting 5 s into a window
    assert a.windows(10) == [1_000_000_000, 1_000_010_000, 1_000_020_000]
    assert Anomaly("s", "spike", 0, 20_000).windows(10) == [0, 10_000]


def test_spike_windows_really_have_more_clicks(suite):
    for name in ("lab-spike", "spike-x4-20s", "spike-x8-10s", "spike-x2-60s",
                 "spike-x4-offset", "level-shift", "multi-site", "late-out-of-order"):
        sc = suite.by_name[name]
        counts = _per_site(sc)
        for a in sc.anomalies:
            normal = statistics.median(c for w, (c, _) in counts[a.site].items()
                                       if (a.site, w) not in sc.labels())
            spike = [counts[a.site][w][0] for w in a.windows()]
            # the smallest spike is x2 (one extra sender), partial windows x1.5; noise can pull
            # one window down, so: every window above normal, and on average 1.5 x normal
            assert min(spike) > normal, f"{name} {a}: clicks {spike} vs median {normal}"
            assert statistics.fmean(spike) >= 1.5 * normal, f"{name} {a}: clicks {spike}"


def test_outage_windows_really_lack_clicks_or_impressions(suite):
    for name, col in (("ctr-collapse", 0), ("impression-outage", 1)):
        sc = suite.by_name[name]
        counts = _per_site(sc)
        for a in sc.anomalies:
            inside = [counts[a.site][w] for w in a.windows()]
            assert all(ci[col] == 0 for ci in inside), f"{name}: {inside}"
            assert all(ci[1 - col] > 0 for ci in inside), f"{name}: the other count goes on"
            before = counts[a.site][a.windows()[0] - W]
            assert before[col] > 0, f"{name}: the window before is normal"


def test_lab_spike_is_the_labs_exact_test(suite):
    sc = suite.by_name["lab-spike"]
    counts = _per_site(sc)["lab-spike/site1"]
    labels = {w for _, w in sc.labels()}
    assert all(v == (10, 10) for w, v in counts.items() if w not in labels), "exact ticks"
    assert sorted(counts[w] for w in labels) == [(40, 10)] * 4, "CTR 400 % in the spike"


def test_noise_is_poisson(suite):
    """Poisson counts: variance = mean (measured 0.85-1.08 x mean here over 180 windows; the
    noise before, one copy or none of 4x the rate, gave 0.75 x mean)."""
    counts = _per_site(suite.by_name["quiet-noisy"])
    ratios = []
    for site, windows in counts.items():
        for series in zip(*windows.values(), strict=True):  # clicks, impressions
            mean, var = statistics.fmean(series), statistics.pvariance(series)
            assert 9.0 <= mean <= 11.0, f"{site}: mean {mean}"
            assert 0.7 * mean <= var <= 1.35 * mean, f"{site}: variance {var} for mean {mean}"
            ratios.append(var / mean)
    assert statistics.fmean(ratios) > 0.85, f"variance / mean {ratios}: not Poisson"


def test_daily_cycle_and_drift_change_slowly(suite):
    def clicks_by_tenth(sc, site):
        counts = _per_site(sc)[site]
        tenth = sc.duration_s * 100
        out = defaultdict(int)
        for w, (c, i) in counts.items():
            out[(w - sc.start_ms) // tenth] += i if "daily" in sc.name else c
        return out

    daily = suite.by_name["quiet-daily-cycle"]
    t = clicks_by_tenth(daily, "quiet-daily-cycle/site1")
    assert max(t.values()) > 3 * min(t.values()), f"night vs peak: {dict(t)}"
    drift = suite.by_name["quiet-slow-drift"]
    t = clicks_by_tenth(drift, "quiet-slow-drift/site1")
    assert t[9] < 0.7 * t[0], f"CTR drifts down: {dict(t)}"


def test_late_records_are_dropped_out_of_order_ones_are_not(suite):
    sc = suite.by_name["late-out-of-order"]
    delays = [arr - record_ms(r) for arr, r in zip(sc.arrival_ms, sc.records, strict=True)]
    too_late = sum(d >= TOO_LATE_MS[0] for d in delays)
    shuffled = sum(0 < d <= OUT_OF_ORDER_MAX_MS for d in delays)
    assert 0.005 * len(delays) < too_late < 0.02 * len(delays), too_late
    assert 0.15 * len(delays) < shuffled < 0.25 * len(delays), shuffled
    events = [record_ms(r) for r in sc.records]
    assert events != sorted(events), "records must arrive out of order"
    kept = sum(sum(ci) for ci in window_counts(sc.records, WINDOW_S, lateness_s=5).values())
    everything = sum(sum(ci) for ci in window_counts(sc.records, WINDOW_S).values())
    assert everything - kept == too_late, "exactly the too-late records are dropped"


def test_suite_file_merges_scenarios_in_arrival_order(suite, tmp_path):
    n = suite.write(tmp_path / "suite.jsonl")
    assert n == sum(len(s.records) for s in suite.scenarios)
    lines = (tmp_path / "suite.jsonl").read_text().splitlines()
    assert len(lines) == n
    assert len(suite.labels()) == sum(len(s.labels()) for s in suite.scenarios)
    light = suite.without_records()
    assert light.labels() == suite.labels() and not light.scenarios[0].records


def test_unknown_names_are_errors():
    with pytest.raises(ConfigError, match="Unknown scenario 'spik'.*Fix: use one of lab-spike"):
        build_scenario("spik")
    with pytest.raises(ConfigError, match="Unknown suite size 'huge'.*small"):
        build_suite("huge")


def test_grown_suite_cases_and_truth_without_records():
    from labhelpers.evaluate.scenarios import build_scenario, build_suite, record_ms

    dark = build_scenario("dark-site", "small", seed=0)
    (a,) = dark.anomalies
    assert a.kind == "dark" and a.end_ms - a.start_ms == 120_000 and len(dark.sites) == 3
    assert not [r for r in dark.records
                if r["site"] == a.site and a.start_ms <= record_ms(r) < a.end_ms]
    half = build_scenario("busy-ctr-half-3min", "small", seed=0)
    ev = half.anomalies[0]
    clicks_in = sum(1 for r in half.records if r["browseraction"] == "Click"
                    and ev.start_ms <= record_ms(r) < ev.end_ms)
    clicks_before = sum(1 for r in half.records if r["browseraction"] == "Click"
                        and ev.start_ms - 180_000 <= record_ms(r) < ev.start_ms)
    assert 0.35 < clicks_in / clicks_before < 0.65, (clicks_in, clicks_before)
    names = ("busy-x2-60s", "click-bot", "quiet-daily-low-volume")
    truth = build_suite("small", 0, names=names, records=False)
    full = build_suite("small", 0, names=names)
    assert [(s.sites, s.anomalies) for s in truth.scenarios] == \
        [(s.sites, s.anomalies) for s in full.scenarios]
    assert not any(s.records for s in truth.scenarios)
