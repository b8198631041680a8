"""The background traffic process: start (idempotent), counters, spike requests, stop."""

import json
import time

import pytest

from labhelpers.errors import GeneratorError
from labhelpers.generate import traffic
from labhelpers.infra.config import LabConfig
from labhelpers.stream.log import read_all_lines

pytestmark = pytest.mark.integration


def test_traffic_lifecycle(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    with pytest.raises(GeneratorError, match="nothing to spike"):
        traffic.spike(cfg)
    first = traffic.start(cfg, sites=("a.example", "b.example"))
    assert first["running"]
    again = traffic.start(cfg, sites=("a.example", "b.example"))  # the same plan
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


def test_templates_rates_and_total(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    path = tmp_path / "mine.tmpl"
    path.write_text('### Buy\n{"browseraction": "Click", "n": {{seq}}}\n')
    st = traffic.start(cfg, rates={"Impression": 5, "Buy": 5, "Click": 0}, templates=path)
    try:
        assert st["rates"] == {"Impression": 5.0, "Buy": 5.0, "Click": 0.0}, st
        traffic.set_rate(cfg, "Buy", 0)
        traffic.set_rate(cfg, "Click", 10)
        traffic.spike(cfg, extra_senders=1, seconds=1, payload="Impression")
        deadline = time.time() + 10
        while traffic.status(cfg).get("rates", {}).get("Click") != 10.0:
            assert time.time() < deadline, f"rate change not applied: {traffic.status(cfg)}"
            time.sleep(0.2)
        time.sleep(1.5)
        with pytest.raises(GeneratorError, match="Unknown template"):
            traffic.set_rate(cfg, "Nope", 1)
    finally:
        final = traffic.stop(cfg)
    assert final["spikes"] == 1 and final["sink"]["failed"] == 0, final
    recs = [json.loads(s) for s in read_all_lines(cfg.stream_dir(cfg.input_stream))]
    assert len(recs) == final["records"], "every counted record is in the stream"
    buys = [r["n"] for r in recs if "n" in r]
    assert buys and buys == list(range(1, len(buys) + 1)), "the file's template was sent"
    assert any(r["browseraction"] == "Click" and "n" not in r for r in recs), "Click resumed"

    counted = traffic.start(cfg, rates={"Click": 50}, total=30)
    deadline = time.time() + 15
    while traffic.status(cfg)["running"]:
        assert time.time() < deadline, "a total of 30 records at 50/s must end by itself"
        time.sleep(0.2)
    assert traffic.status(cfg)["records"] == 30, traffic.status(cfg)
    assert counted["pid"], counted


def test_bad_template_file_is_refused_before_starting(tmp_path):
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    path = tmp_path / "bad.tmpl"
    path.write_text('### Buy\n{"browseraction": "Click",\n "n": {{nmber(1, 2)}}}\n')
    with pytest.raises(GeneratorError, match=r"bad.tmpl line 3.*nmber"):
        traffic.start(cfg, rates={"Buy": 1}, templates=path)
    with pytest.raises(GeneratorError, match="rate 0"):
        traffic.start(cfg, rates={"Click": 0})
    assert not traffic.status(cfg)["running"]


def test_past_traffic_ends_where_the_live_traffic_begins(tmp_path):
    """past_seconds: that many seconds of the plan's traffic, event times before the live
    traffic's first, in order and with no gap (the same ticks go on); refused above the max."""
    from labhelpers.job.contracts import parse_event_time

    cfg = LabConfig(home=tmp_path)
    with pytest.raises(GeneratorError, match="past_seconds"):
        traffic.start(cfg, past_seconds=traffic.MAX_PAST_S + 1)
    st = traffic.start(cfg, click_rate=2, impression_rate=2, past_seconds=30)
    try:
        assert st["past_records"] == 30 * 4, st
        time.sleep(3)
    finally:
        traffic.stop(cfg)
    times = [parse_event_time(json.loads(line)["event_time"]).timestamp()
             for line in read_all_lines(cfg.stream_dir(cfg.input_stream))]
    assert times == sorted(times), "past and live records must be in time order"
    assert len(times) > 30 * 4, "live records follow the past ones"
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 4 streams at 2/s: a record at least every 0.5 s, plus the live start's delay (load)
    assert max(gaps) < 1.0, f"a gap between past and live traffic: {max(gaps):.2f} s"


def test_the_last_counters_written_are_the_final_ones(tmp_path, monkeypatch):
    """A run that ends between the child's look at its counters and its check that the run
    is over still writes its final counters (a counted run of 30 once reported 0)."""
    from labhelpers.generate.live import LiveStats

    class EndsWhileRead:
        error = None

        def __init__(self):
            self.finished = False

        @property
        def stats(self):  # the run's last batch goes out just after the counters are read
            seen = LiveStats(records=30 if self.finished else 0, total=30)
            self.finished = True
            return seen

        @property
        def running(self):
            return not self.finished

    monkeypatch.setattr(traffic, "start_background", lambda *a, **k: EndsWhileRead())
    cfg = LabConfig(home=tmp_path, prefix="traflab")
    spec = traffic.plan_spec(rates={"Click": 50}, total=30)
    traffic.traffic_dir(cfg).mkdir(parents=True)  # start() makes it before the child runs
    assert traffic.run_child(cfg, spec, sink=object()) == 0
    stats = json.loads((traffic.traffic_dir(cfg) / "stats.json").read_text())
    assert stats["records"] == 30
