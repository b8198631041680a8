"""The background traffic process: start (idempotent), counters, spike requests, stop."""

import json
import time

import pytest

from labhelpers import traffic
from labhelpers.config import LabConfig
from labhelpers.errors import GeneratorError
from labhelpers.streamlog import read_all_lines

pytestmark = pytest.mark.integration


def test_traffic_lifecycle(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    with pytest.raises(GeneratorError, match="nothing to spike"):
        traffic.spike(cfg)
    first = traffic.start(cfg, sites=("a.example", "b.example"))
    assert first["running"]
    again = traffic.start(cfg)
    assert again["pid"] == first["pid"], "a second start must reuse the running generator"
    traffic.spike(cfg, extra_senders=2, seconds=2)
    time.sleep(4)
    st = traffic.status(cfg)
    assert st["spikes"] == 1, f"the spike request was not picked up: {st}"
    assert not list(traffic.traffic_dir(cfg).glob("*.request"))
    final = traffic.stop(cfg)
    assert not final["running"]
    lines = [json.loads(s) for s in read_all_lines(cfg.stream_dir(cfg.input_stream))]
    assert len(lines) == final["records"] > 0, "every counted record is in the stream"
    assert {r["site"] for r in lines} == {"a.example", "b.example"}
    clicks = sum(r["browseraction"] == "Click" for r in lines)
    assert clicks > sum(r["browseraction"] == "Impression" for r in lines), "spike clicks"
    assert not traffic.stop(cfg)["running"], "stopping twice is harmless"


def test_bad_rate_is_refused_before_starting(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    with pytest.raises(GeneratorError, match="rate"):
        traffic.start(cfg, click_rate=-1)
    assert not traffic.status(cfg)["running"]
