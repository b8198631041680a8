"""The cost estimate: exact figures for the lab's defaults, what changes them, how to stop."""

from __future__ import annotations

import pytest

from labhelpers.errors import ConfigError
from labhelpers.infra import cost


def test_default_lab_costs_about_28_cents_an_hour():
    est = cost.estimate()
    items = {i.component: i.usd_per_hour for i in est.items}
    p = cost.PRICES
    assert items["Managed Flink app (KPUs)"] == pytest.approx(2 * p["flink_kpu_hour"]), (
        "parallelism 1 = 1 KPU, plus the 1 KPU the service adds per application")
    assert items["Managed Flink app (storage)"] == pytest.approx(50 * 0.10 / 730)
    assert items["Kinesis input stream"] == pytest.approx(0.015 + 7200 / 1e6 * 0.014)
    assert items["Kinesis scores + dead-letter streams"] == pytest.approx(
        0.03 + 360 / 1e6 * 0.014)
    assert est.usd_per_hour == pytest.approx(0.2833, abs=5e-4)
    assert est.usd_per_day == pytest.approx(24 * est.usd_per_hour)
    kpu_share = (items["Managed Flink app (KPUs)"] + items["Managed Flink app (storage)"]) / (
        est.usd_per_hour)
    assert kpu_share > 0.75, "the KPUs are most of the bill: stopping the app matters most"


def test_stopped_app_leaves_only_streams_and_small_items():
    est = cost.estimate(app_running=False)
    assert not any("Flink" in i.component for i in est.items)
    assert est.usd_per_hour == pytest.approx(0.0564, abs=5e-4)


def test_on_demand_and_more_traffic_cost_more():
    base = cost.estimate()
    on_demand = cost.estimate(input_mode="ON_DEMAND")
    assert on_demand.usd_per_hour > base.usd_per_hour
    busy = cost.estimate(records_per_second=200, sites=10)
    assert busy.usd_per_hour > base.usd_per_hour
    firehose = {i.component: i for i in busy.items}["Firehose archives (raw + scores)"]
    assert "5 KB minimum" in firehose.basis, "small records are billed as 5 KB by Firehose"


def test_bad_input_is_an_error_with_the_options():
    with pytest.raises(ConfigError, match="PROVISIONED or ON_DEMAND"):
        cost.estimate(input_mode="SERVERLESS")
    with pytest.raises(ConfigError, match="records_per_second >= 0"):
        cost.estimate(records_per_second=-1)


def test_formatted_estimate_says_how_to_stop_paying():
    text = cost.format_estimate(cost.estimate())
    assert "0.2833/h" in text
    assert "per day" in text
    assert "managed.stop" in text and "cleanup" in text and "costs nothing" in text
    assert cost.estimate().as_dict()["usd_per_hour"] == pytest.approx(0.2833, abs=5e-4)
