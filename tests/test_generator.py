"""Tests of generate.plan/timeline/sinks/live: schedule, timelines, sinks, live mode, errors."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from labhelpers.backends import for_config
from labhelpers.errors import GeneratorError
from labhelpers.generate.live import run_live, start_background
from labhelpers.generate.plan import (
    CURVES,
    Plan,
    RateCurve,
    Sender,
    curve_from,
    lab_test_plan,
    spike,
    steady_plan,
)
from labhelpers.generate.sinks import (
    KINESIS_MAX_BYTES,
    KINESIS_MAX_RECORDS,
    KinesisSink,
    MemorySink,
    StreamLogSink,
    send_timeline,
)
from labhelpers.generate.templates import Template
from labhelpers.generate.timeline import (
    event_time_ms,
    timeline,
    timeline_batches,
    to_line,
    write_jsonl,
)
from labhelpers.infra.config import LabConfig
from labhelpers.job.contracts import (
    CLICK,
    DISCOVERY,
    IMPRESSION,
    check_record,
    format_event_time,
    parse_event_time,
)
from labhelpers.stream.log import read_all_lines
from tests.records import GARBAGE_KINDS, garbage_line, with_garbage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_kinesis_throttle import ShardLimitedKinesis  # noqa: E402

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)  # a multiple of 10 s: windows align


def window_counts(records) -> Counter:
    """(10-s window index from START, site, action) -> records."""
    out: Counter = Counter()
    for r in records:
        offset = (parse_event_time(r["event_time"]) - START) / timedelta(seconds=1)
        out[(int(offset // 10), r["site"], r["browseraction"])] += 1
    return out


# ---- the lab's plan ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 0, 1, 7])
def test_lab_plan_exact_counts_per_window(seed):
    plan = lab_test_plan(warmup_s=60, spike_s=20, extra_click_senders=3, after_s=30)
    assert plan.duration_s == 110, f"warm-up + spike + after should be 110 s, got {plan}"
    counts = window_counts(timeline(plan, START, seed=seed))
    for w in range(11):
        clicks = counts[(w, "example.com", CLICK)]
        imps = counts[(w, "example.com", IMPRESSION)]
        want_clicks = 40 if w in (6, 7) else 10
        assert (clicks, imps) == (want_clicks, 10), (
            f"seed {seed}, window {w} (offset {w * 10} s): clicks/impressions {clicks}/{imps}, "
            f"expected {want_clicks}/10")
    assert sum(counts.values()) == 110 + 110 + 60, f"total records {sum(counts.values())}"
    assert max(w for w, _, _ in counts) == 10, "no record may fall after the 110-s end"


def test_lab_plan_several_sites_each_get_the_same_traffic():
    sites = ("a.example", "b.example", "c.example")
    plan = lab_test_plan(warmup_s=30, sites=sites)
    counts = window_counts(timeline(plan, START, seed=3))
    for site in sites:
        clicks = [counts[(w, site, CLICK)] for w in range(8)]
        imps = [counts[(w, site, IMPRESSION)] for w in range(8)]
        assert clicks == [10, 10, 10, 40, 40, 10, 10, 10], f"{site} clicks per window {clicks}"
        assert imps == [10] * 8, f"{site} impressions per window {imps}"


def test_exact_ticks_without_seed():
    plan = Plan([Sender(CLICK, rate=2), Sender(DISCOVERY, rate=0.5)], duration_s=4)
    recs = list(timeline(plan, START, seed=None))
    got = [(r["browseraction"], r["event_time"][17:23]) for r in recs]
    assert got == [
        (CLICK, "00.000"), (DISCOVERY, "00.000"), (CLICK, "00.500"), (CLICK, "01.000"),
        (CLICK, "01.500"), (CLICK, "02.000"), (DISCOVERY, "02.000"), (CLICK, "02.500"),
        (CLICK, "03.000"), (CLICK, "03.500"),
    ], f"sender k of rate r must emit at start + i/r exactly, got {got}"


@pytest.mark.parametrize(("rate", "seconds", "expected"),
                         [(3, 10, 30), (0.5, 10, 5), (2500, 10, 25_000), (1 / 3, 30, 10)])
def test_count_is_rate_times_duration(rate, seconds, expected):
    plan = Plan([Sender(IMPRESSION, rate=rate)], duration_s=seconds)
    n = sum(1 for _ in timeline(plan, START, seed=5))
    assert n == expected, f"rate {rate}/s for {seconds} s gave {n} records, expected {expected}"


def test_deterministic_for_a_seed_and_sorted():
    plan = lab_test_plan(warmup_s=20, sites=("x.example", "y.example"))
    a = list(timeline(plan, START, seed=42))
    b = list(timeline(plan, START, seed=42))
    c = list(timeline(plan, START, seed=43))
    assert a == b, "the same seed must give the same timeline"
    assert a != c, "another seed should shift the senders' phases"
    assert window_counts(a) == window_counts(c), "the seed must not change counts per window"
    times = [r["event_time"] for r in a]
    assert times == sorted(times), "records must be sorted by event time"
    end = START + timedelta(seconds=plan.duration_s)
    assert all(START <= parse_event_time(t) < end for t in times), "records outside the timeline"


def test_records_follow_the_contract_and_lines_match():
    plan = Plan([Sender(CLICK, fields={"page": "/home", "n": 1}), Sender(IMPRESSION)],
                sites=("ex\u00e4mple.com",), duration_s=5)
    recs = list(timeline(plan, START))
    lines = [ln for b in timeline_batches(plan, START, batch_s=2) for ln in b.lines]
    assert lines == [to_line(r) for r in recs], "batches must render exactly to_line(record)"
    assert list(recs[0]) == ["browseraction", "site", "event_time"], f"key order {list(recs[0])}"
    click = next(r for r in recs if r["browseraction"] == CLICK)
    assert click["page"] == "/home" and click["n"] == 1, f"extra fields lost: {click}"
    for ln in lines:
        rec, reason = check_record(ln)
        assert reason is None, f"generated line rejected ({reason}): {ln}"


def test_event_time_matches_contract_format():
    rng = random.Random(1)
    base = round(START.timestamp() * 1000)
    samples = [base, base + 999, base + 1000, 0, 951_782_400_000 - 1]  # incl. a leap-day eve
    samples += [base + rng.randrange(10**11) for _ in range(2000)]
    for ms in samples:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        assert event_time_ms(ms) == format_event_time(dt), f"format differs at {ms} ms"


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Sender(CLICK, rate=-1), ["rate", "-1"]),
    (lambda: Sender(CLICK, rate=0), ["rate", "> 0"]),
    (lambda: Sender("Clik"), ["payload", "Clik", "Click", "Impression", "DiscoveryKinesisTest"]),
    (lambda: Sender(CLICK, count=0), ["count", ">= 1"]),
    (lambda: Sender(CLICK, fields={"site": "x"}), ["fields", "site"]),
    (lambda: Plan([Sender(CLICK)], sites=()), ["sites", "example.com"]),
    (lambda: Plan([], duration_s=10), ["senders", "Sender("]),
    (lambda: steady_plan(duration_s=0), ["duration_s", "> 0"]),
    (lambda: list(timeline(steady_plan(), START, 0)), ["duration_s", "> 0"]),
    (lambda: list(timeline(steady_plan(), START)), ["duration_s", "missing"]),
    (lambda: lab_test_plan(warmup_s=60, after_s=-5), ["after_s", ">= 0"]),
    (lambda: list(timeline(steady_plan().with_spike(50, 20), START, 60)),
     ["past the end", "start_s", "duration_s >= 70"]),
    (lambda: list(timeline(steady_plan(), START, total=0)), ["total", ">= 1"]),
    (lambda: RateCurve(((25, 1),)), ["points", "[0, 24)"]),
    (lambda: RateCurve(((0, 0), (12, 0))), ["not all 0"]),
    (lambda: RateCurve(((0, 1),), utc_offset_h=30), ["utc_offset_h", "-24"]),
    (lambda: Sender(CLICK, curve="weekly"), ["curve", "diurnal"]),
    (lambda: Sender("Clik"), ["did you mean Click"]),
])
def test_bad_parameters_raise_generator_error(make, words):
    with pytest.raises(GeneratorError) as info:
        make()
    msg = str(info.value)
    assert "Fix:" in msg, f"message must end with the fix: {msg}"
    for w in words:
        assert w in msg, f"message should mention {w!r}: {msg}"


# ---- files and sinks -----------------------------------------------------------------------


def test_stream_log_sink_one_file_per_second_in_order(tmp_path):
    plan = steady_plan(("a.example", "b.example"), impression_rate=5, click_rate=5)
    sink = StreamLogSink(tmp_path / "stream")
    n = send_timeline(plan, sink, START, duration_s=12, seed=2)
    assert n == 12 * 2 * 10 == sink.stats.acknowledged, f"records written {n}, {sink.stats}"
    files = sorted(p.name for p in (tmp_path / "stream").iterdir())
    assert len(files) == 12 and not [f for f in files if f.startswith(".")], f"files {files}"
    last = ""
    for name in files:
        times = [json.loads(ln)["event_time"] for ln in (tmp_path / "stream" / name).open()]
        assert len(times) == 20, f"{name} should hold one second (20 records), has {len(times)}"
        assert times == sorted(times) and times[0] >= last, f"{name} out of time order"
        last = times[-1]
    expected = [to_line(r) for r in timeline(plan, START, 12, seed=2)]
    assert read_all_lines(tmp_path / "stream") == expected, "stream log differs from timeline"


def test_stream_log_files_appear_complete_to_a_concurrent_reader(tmp_path):
    plan = steady_plan(("a.example",), impression_rate=500, click_rate=500)
    sink = StreamLogSink(tmp_path / "s")
    seen: dict[str, int] = {}
    problems: list[str] = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            for p in sorted((tmp_path / "s").glob("[!._]*")):
                if p.name in seen:
                    continue
                text = p.read_text()
                lines = text.splitlines()
                if not text.endswith("\n") or len(lines) != 100:
                    problems.append(f"{p.name}: {len(lines)} lines")
                seen[p.name] = len(lines)

    t = threading.Thread(target=reader)
    t.start()
    send_timeline(plan, sink, START, duration_s=20, batch_s=0.1)  # 200 files of 100 lines
    done.set()
    t.join()
    assert not problems, f"a reader saw incomplete files: {problems[:5]}"
    assert len(list((tmp_path / "s").iterdir())) == 200, "expected 200 files"


def test_config_sinks(tmp_path):
    cfg = LabConfig(home=tmp_path)
    sink = for_config(cfg).input_sink()
    assert isinstance(sink, StreamLogSink), f"local backend should write the stream log: {sink}"
    assert sink.directory == cfg.stream_dir(cfg.input_stream), f"wrong folder {sink.directory}"


def test_write_jsonl_and_garbage(tmp_path):
    plan = steady_plan(duration_s=200)
    recs = list(timeline(plan, START))
    lines = list(with_garbage(recs, fraction=0.2, seed=9))
    again = list(with_garbage(recs, fraction=0.2, seed=9))
    assert lines == again, "garbage must be deterministic for a seed"
    good = [ln for ln in lines if check_record(ln)[1] is None]
    assert good == [to_line(r) for r in recs], "good records must pass unchanged and in order"
    bad = len(lines) - len(good)
    assert 50 <= bad <= 110, f"about 20 % of 400 records should get garbage, got {bad}"
    reasons = Counter(check_record(ln)[1] for ln in lines) - Counter({None: len(good)})
    assert len(reasons) >= 5, f"garbage should cover several reasons: {reasons}"
    path = tmp_path / "out" / "t.jsonl"
    n = write_jsonl(lines[:3] + recs[:2], path)
    assert n == 5 and path.read_text().splitlines() == lines[:3] + [to_line(r) for r in recs[:2]]
    assert [p.name for p in path.parent.iterdir()] == ["t.jsonl"], "temporary file left behind"


@pytest.mark.parametrize("kind", list(GARBAGE_KINDS))
def test_each_garbage_kind_has_its_reason(kind):
    line = garbage_line(kind, {"browseraction": CLICK, "site": "s", "event_time": "x"})
    assert isinstance(line, str), "garbage is a raw line"
    expected = GARBAGE_KINDS[kind]
    got = check_record(garbage_line(kind))[1]
    assert got == expected, f"{kind}: check_record says {got}, expected {expected}"


# ---- Kinesis ---------------------------------------------------------------------------------


@pytest.fixture
def fake_aws_env(monkeypatch, tmp_path):
    # Fake credentials and no config files, so nothing can pick up a real account.
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_CONFIG_FILE": str(tmp_path / "none"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def read_stream(client, name: str) -> list[tuple[str, str]]:
    out = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            out += [(r["Data"].decode(), r["PartitionKey"]) for r in resp["Records"]]
            it = resp["NextShardIterator"] if resp["Records"] else None
    return out


@mock_aws
def test_kinesis_sink_against_moto(fake_aws_env):
    cfg = LabConfig(backend="aws")
    client = boto3.client("kinesis", region_name="us-east-1")
    client.create_stream(StreamName=cfg.input_stream, ShardCount=2)
    sink = for_config(cfg).input_sink()
    assert isinstance(sink, KinesisSink), f"aws backend should send to Kinesis: {sink}"
    plan = steady_plan(("a.example", "b.example", "c.example"), 10, 10)
    batch = next(timeline_batches(plan, START, duration_s=20, batch_s=20))
    assert len(batch.lines) == 1200, f"plan should give 1,200 records, got {len(batch.lines)}"
    sink.send(batch.lines, batch.keys)
    s = sink.stats
    assert (s.sent, s.acknowledged, s.batches, s.retried, s.failed) == (1200, 1200, 3, 0, 0), (
        f"1,200 records should go in 3 PutRecords calls: {s}")
    got = read_stream(client, cfg.input_stream)
    assert sorted(got) == sorted(zip(batch.lines, batch.keys, strict=True)), (
        "every record must arrive once, with its site as partition key")


@mock_aws
def test_kinesis_sink_missing_stream(fake_aws_env):
    client = boto3.client("kinesis", region_name="us-east-1")
    with pytest.raises(GeneratorError) as info:
        KinesisSink(client=client, stream_name="clicklab-nope")
    msg = str(info.value)
    assert "clicklab-nope" in msg and "deploy" in msg, f"should name the stream and fix: {msg}"


class FakeKinesis:
    """put_records that throttles chosen records for their first ``fail_times`` attempts."""

    def __init__(self, fail_times=lambda data: 0, call_errors=0):
        self.fail_times = fail_times
        self.call_errors = call_errors
        self.attempts: Counter = Counter()
        self.delivered: list[bytes] = []
        self.calls: list[list[dict]] = []

    def describe_stream_summary(self, StreamName):
        return {"StreamDescriptionSummary": {"StreamName": StreamName}}

    def put_records(self, StreamName, Records):
        self.calls.append(Records)
        if self.call_errors:
            self.call_errors -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                         "Message": "Rate exceeded"}}, "PutRecords")
        out, failed = [], 0
        for r in Records:
            self.attempts[r["Data"]] += 1
            if self.attempts[r["Data"]] <= self.fail_times(r["Data"]):
                failed += 1
                out.append({"ErrorCode": "ProvisionedThroughputExceededException",
                            "ErrorMessage": "Rate exceeded for shard shardId-000000000000"})
            else:
                self.delivered.append(r["Data"])
                out.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": failed, "Records": out}


def test_kinesis_sink_retries_failed_records_with_backoff():
    lines = [to_line({"browseraction": CLICK, "site": "s", "n": i}) for i in range(1000)]
    # every seventh record is throttled three times, other every-third ones twice
    fake = FakeKinesis(lambda d: 3 if json.loads(d)["n"] % 7 == 0 else
                       2 * (json.loads(d)["n"] % 3 == 0))
    sleeps: list[float] = []
    sink = KinesisSink(client=fake, stream_name="s", sleep=sleeps.append, seed=1,
                       base_delay_s=0.1, max_delay_s=0.3)
    sink.send(lines)
    assert sorted(fake.delivered) == sorted(ln.encode() for ln in lines), (
        "every record must arrive exactly once")
    expected_retries = sum(3 if n % 7 == 0 else 2 * (n % 3 == 0) for n in range(1000))
    s = sink.stats
    assert s.retried == expected_retries, f"retried {s.retried}, expected {expected_retries}"
    assert s.failure_reasons == {"ProvisionedThroughputExceededException": expected_retries}
    assert (s.acknowledged, s.failed) == (1000, 0), f"{s}"
    assert sleeps and all(0.05 <= x <= 0.3 for x in sleeps), f"backoff out of bounds: {sleeps}"
    assert all(len(c) <= KINESIS_MAX_RECORDS for c in fake.calls), "more than 500 in a call"


def test_kinesis_sink_gives_up_after_max_attempts_and_keeps_reasons():
    fake = FakeKinesis(lambda d: 99 if b'"n":1' in d else 0, call_errors=1)
    sink = KinesisSink(client=fake, stream_name="s", sleep=lambda s: None, max_attempts=4)
    sink.send([to_line({"site": "s", "n": i}) for i in range(3)])
    s = sink.stats
    assert (s.acknowledged, s.failed) == (2, 1), f"one record should fail for good: {s}"
    assert fake.attempts[b'{"site":"s","n":1}'] == 3, "the first call was throttled as a whole"
    assert s.failure_reasons["ProvisionedThroughputExceededException"] == 3 + 3, f"{s}"
    assert "Rate exceeded" in (s.last_error or ""), f"last error kept: {s.last_error}"


def test_kinesis_sink_splits_by_size():
    big = "x" * (700 * 1024)
    lines = [to_line({"site": "s", "n": i, "pad": big}) for i in range(12)]
    lines.append(to_line({"site": "s", "pad": "y" * (1024 * 1024)}))  # over the 1 MiB limit
    fake = FakeKinesis()
    sink = KinesisSink(client=fake, stream_name="s", sleep=lambda s: None)
    sink.send(lines, ["s"] * len(lines))
    sizes = [sum(len(r["Data"]) + len(r["PartitionKey"]) for r in c) for c in fake.calls]
    assert all(x <= KINESIS_MAX_BYTES for x in sizes) and len(sizes) == 2, f"call sizes {sizes}"
    assert (sink.stats.acknowledged, sink.stats.failed) == (12, 1), f"{sink.stats}"
    assert sink.stats.failure_reasons["RecordTooLarge"] == 1, f"{sink.stats}"


# ---- live mode -------------------------------------------------------------------------------


class TimedSink(MemorySink):
    def __init__(self):
        super().__init__()
        self.sent_at: list[float] = []

    def send(self, lines, keys=None):
        self.sent_at.append(time.time())
        super().send(lines, keys)


def test_run_live_sends_at_real_time_in_order():
    sink = TimedSink()
    plan = steady_plan(("a.example",), impression_rate=20, click_rate=20)
    t0 = time.time()
    stats = run_live(plan, sink, duration_s=1.0, progress=False, flush_s=0.2)
    took = time.time() - t0
    assert stats.records == 40 == len(sink.lines), f"1 s at 2 x 20/s = 40 records: {stats}"
    assert 0.95 <= took < 1.6, f"a 1-s live run took {took:.2f} s"
    assert 4 <= len(sink.batches) <= 6, f"about one batch per 0.2 s, got {len(sink.batches)}"
    times = [json.loads(ln)["event_time"] for ln in sink.lines]
    assert times == sorted(times), "live records must be in time order across batches"
    for batch, sent in zip(sink.batches, sink.sent_at, strict=True):
        last = parse_event_time(json.loads(batch[-1])["event_time"]).timestamp()
        assert last <= sent + 0.002, f"a record from the future: {last} sent at {sent}"
        assert sent - last < 0.5, f"record sent {sent - last:.3f} s after its event time"
    assert stats.sink.acknowledged == 40 and not stats.running, f"{stats}"


def test_run_live_stops_on_event():
    sink = MemorySink()
    stop = threading.Event()
    threading.Timer(0.35, stop.set).start()
    t0 = time.time()
    stats = run_live(steady_plan(click_rate=10, impression_rate=10), sink, stop_event=stop,
                     progress=True, flush_s=0.1)
    assert time.time() - t0 < 1.0, "run_live should return soon after the stop event"
    assert 4 <= stats.records <= 10, f"about 0.35 s x 20/s records: {stats}"


def test_background_run_with_spike():
    sink = MemorySink()
    handle = start_background(steady_plan(click_rate=10, impression_rate=10), sink, flush_s=0.1)
    time.sleep(0.3)
    handle.spike(payload=CLICK, extra_senders=3, seconds=0.5, rate=10)
    time.sleep(0.9)
    assert handle.running and handle.stats.spikes == 1, f"{handle.stats}"
    stats = handle.stop()
    assert not handle.running, "stop() must end the thread"
    actions = Counter(json.loads(ln)["browseraction"] for ln in sink.lines)
    extra = actions[CLICK] - actions[IMPRESSION]
    assert 14 <= extra <= 16, f"3 senders x 10/s x 0.5 s = 15 extra clicks, got {extra}"
    assert stats.records == len(sink.lines), f"{stats}"
    with pytest.raises(GeneratorError, match="not running"):
        handle.spike()


def test_background_error_is_reported():
    class Broken(MemorySink):
        def send(self, lines, keys=None):
            raise GeneratorError("Kinesis stream 'x' does not exist", "deploy the stack first.")

    handle = start_background(steady_plan(click_rate=50), Broken(), flush_s=0.05)
    with pytest.raises(GeneratorError, match="does not exist"):
        handle.join(timeout=5)
    assert "does not exist" in (handle.stats.error or ""), f"{handle.stats}"


def test_spike_helper_and_expected_records():
    s = spike(start_s=10, seconds=20)
    assert (s.payload, s.count, s.rate, s.end_s) == (CLICK, 3, 1.0, 30), f"{s}"
    plan = lab_test_plan(warmup_s=60)
    assert plan.expected_records() == 280, f"{plan.expected_records()}"


# ---- templates, several at once, total, curves -------------------------------------------


MINE = Template("Buy", '{"browseraction": "Click", "n": {{seq}}, "price": {{float(1, 9, 2)}}}')


def test_several_templates_each_at_its_own_rate():
    plan = Plan([Sender(IMPRESSION, rate=5), Sender(MINE, rate=2), Sender("ClickDetail",
                                                                          rate=1)],
                sites=("a.example", "b.example"), duration_s=10)
    recs = list(timeline(plan, START, seed=4))
    by = Counter((r["site"], "n" in r, "user_id" in r, r["browseraction"]) for r in recs)
    for site in ("a.example", "b.example"):
        assert by[(site, False, False, IMPRESSION)] == 50, f"Impression 5/s x 10 s: {by}"
        assert by[(site, True, False, CLICK)] == 20, f"Buy 2/s x 10 s: {by}"
        assert by[(site, False, True, CLICK)] == 10, f"ClickDetail 1/s x 10 s: {by}"
    assert all(check_record(to_line(r))[1] is None for r in recs), "contract broken"
    assert [r["event_time"] for r in recs] == sorted(r["event_time"] for r in recs)
    lines = [ln for b in timeline_batches(plan, START, seed=4, batch_s=3) for ln in b.lines]
    assert [json.loads(ln) for ln in lines] == recs, "batches and records must agree"
    assert list(timeline(plan, START, seed=4)) == recs, "deterministic for a seed"


def test_total_stops_after_n_records_the_earliest():
    plan = steady_plan(("a.example",), impression_rate=3, click_rate=2)
    recs = list(timeline(plan, START, total=17, seed=None))
    assert len(recs) == 17, f"total=17 gave {len(recs)}"
    full = list(timeline(plan, START, duration_s=10, seed=None))
    assert recs == full[:17], "total keeps the earliest records"
    sink = MemorySink()
    assert send_timeline(plan, sink, START, total=1001, batch_s=7) == 1001 == len(sink.lines)
    timed = Plan([Sender(CLICK, rate=1, seconds=3)])
    assert len(list(timeline(timed, START, total=100))) == 3, "ends when no sender is left"
    stats = run_live(steady_plan(click_rate=100, impression_rate=100), MemorySink(),
                     total=25, progress=False, flush_s=0.05)
    assert stats.records == 25 and stats.sink.acknowledged == 25, f"live total: {stats}"


def test_rate_curve_interpolates_and_shapes_a_timeline():
    curve = RateCurve(((0, 0.0), (6, 1.0), (12, 2.0), (18, 1.0)), period_s=240)
    at = [curve.at(START.timestamp() + s) for s in (0, 30, 60, 120, 180, 210)]
    assert at == pytest.approx([0.0, 0.5, 1.0, 2.0, 1.0, 0.5]), f"multipliers {at}"
    assert curve.peak == 2.0 and curve.step_s == pytest.approx(240 / 1440), curve
    plan = Plan([Sender(CLICK, rate=10, curve=curve)], duration_s=240)
    assert plan.peak_rate() == 20, "peak rate uses the curve's peak"
    times = [(parse_event_time(r["event_time"]) - START).total_seconds()
             for r in timeline(plan, START, seed=2)]
    per_quarter = Counter(int(t // 60) for t in times)
    # integral of 10/s x multiplier over each 60-s quarter: 300, 900, 900, 300
    assert [per_quarter[q] for q in range(4)] == pytest.approx([300, 900, 900, 300], abs=3), (
        f"records per quarter of the day {per_quarter}")
    assert times == sorted(times) and len(set(times)) > 1000, "sorted, spread over the ms"
    again = [r["event_time"] for r in timeline(plan, START, seed=2)]
    assert len(again) == len(times), "deterministic"
    assert curve_from("diurnal") is CURVES["diurnal"] and curve_from(curve.to_dict()) == curve


def test_spike_copies_the_templates_sender():
    plan = Plan([Sender(MINE, rate=2, fields={"src": "t"})], duration_s=30)
    spiked = plan.with_spike(10, 10, "Buy", extra_senders=3)
    extra = spiked.senders[-1]
    assert (extra.template, extra.rate, extra.count, dict(extra.fields)) == (
        MINE, 2, 3, {"src": "t"}), f"spike must copy the sender: {extra}"
    counts = Counter(int((parse_event_time(r["event_time"]) - START).total_seconds() // 10)
                     for r in timeline(spiked, START))
    assert [counts[w] for w in range(3)] == [20, 80, 20], f"x4 for 10 s: {counts}"


def test_live_set_rate_pauses_and_changes_a_template():
    sink = MemorySink()
    handle = start_background(steady_plan(click_rate=20, impression_rate=20), sink,
                              flush_s=0.05)
    time.sleep(0.3)
    handle.set_rate(CLICK, 0)
    handle.set_rate(MINE, 40)  # a template the plan did not send
    time.sleep(0.15)
    mark = len(sink.lines)
    time.sleep(0.5)
    assert handle.rates == {IMPRESSION: 20.0, CLICK: 0.0, "Buy": 40.0}, f"{handle.rates}"
    stats = handle.stop()
    later = Counter((json.loads(ln)["browseraction"], "n" in json.loads(ln))
                    for ln in sink.lines[mark:])
    assert later[(CLICK, False)] == 0, f"Click paused, got {later}"
    assert 8 <= later[(IMPRESSION, False)] <= 14, f"Impression still 20/s: {later}"
    assert 16 <= later[(CLICK, True)] <= 28, f"Buy at 40/s: {later}"
    assert stats.records == len(sink.lines) and stats.history, f"{stats}"
    with pytest.raises(GeneratorError, match="not running"):
        handle.set_rate(CLICK, 1)


def test_live_rate_checks():
    handle = start_background(steady_plan(), MemorySink(), flush_s=0.05)
    try:
        with pytest.raises(GeneratorError, match="rate"):
            handle.set_rate(CLICK, -1)
        with pytest.raises(GeneratorError, match="Unknown template"):
            handle.set_rate("Nope", 1)
    finally:
        handle.stop()


# ---- Kinesis: limits, throttling, shards, failures -----------------------------------------


class FakeClock:
    """Time that moves only when the sink sleeps (its backoff)."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def numbered(n: int) -> list[str]:
    return [to_line({"browseraction": CLICK, "site": "s", "event_time": "x", "n": i})
            for i in range(n)]


def test_throttled_one_shard_at_three_times_its_limit_loses_nothing():
    clock = FakeClock()
    fake = ShardLimitedKinesis(shards=1, clock=clock)
    sink = KinesisSink(client=fake, stream_name=fake.stream_name, sleep=clock.sleep, seed=3)
    tpl = Template("ClickN", '{"browseraction": "Click", "n": {{seq}}}')
    plan = Plan([Sender(tpl, rate=3000)], duration_s=5)  # 3x the shard's 1,000 records/s
    t0 = clock()
    n = send_timeline(plan, sink, START, batch_s=1)
    s = sink.stats
    assert n == 15_000 and len(fake.delivered) == 15_000, f"every record arrives: {s}"
    assert len(set(fake.delivered)) == 15_000, "no record may arrive twice"
    assert (s.sent, s.acknowledged, s.failed) == (15_000, 15_000, 0), f"{s}"
    assert s.throttled == fake.rejected == s.retried > 0, f"throttling counted: {s}"
    assert s.failure_reasons == {"ProvisionedThroughputExceededException": s.throttled}, s
    per_second = Counter(int(t) for t in fake.accepted_at)
    assert max(per_second.values()) <= 1000, f"the shard limit holds: {per_second}"
    achieved = n / (clock() - t0)
    # whole one-second windows: the last, partial one makes the average a little higher
    assert 800 <= achieved <= 1100, f"achieved {achieved:.0f}/s against a 1,000/s limit"


def test_live_run_checks_the_plan_against_the_streams_limit():
    fake = ShardLimitedKinesis(shards=2)
    sink = KinesisSink(client=fake, stream_name=fake.stream_name)
    cap = sink.capacity()
    assert (cap.records_per_s, cap.bytes_per_s) == (2000, 2 * 1024 * 1024), f"{cap}"
    plan = steady_plan(("a.example", "b.example"), impression_rate=600, click_rate=600)
    with pytest.raises(GeneratorError) as info:
        start_background(plan, sink)
    msg = str(info.value)
    for words in ("2,400 records/s", "2 shard(s)", "2,000 records/s", "2 MiB/s",
                  "update-shard-count", "over_limit=True"):
        assert words in msg, f"message should say {words!r}: {msg}"
    big = Template("Big", '{"browseraction": "Click", "pad": "' + "x" * 3000 + '"}')
    with pytest.raises(GeneratorError, match="MiB/s"):
        start_background(Plan([Sender(big, rate=800)], sites=("a",)), sink)  # 2.3 MiB/s
    stats = run_live(plan, sink, duration_s=0.2, progress=False, over_limit=True,
                     flush_s=0.1)
    assert "throttled and retried" in (stats.warning or ""), f"warning shown: {stats}"


def test_live_run_on_a_stream_log_has_no_limit(tmp_path):
    stats = run_live(steady_plan(click_rate=5000, impression_rate=5000),
                     StreamLogSink(tmp_path / "s"), duration_s=0.3, progress=False,
                     flush_s=0.1)
    assert stats.warning is None and stats.records == 3000, f"{stats}"


def test_kinesis_sink_records_every_failure_with_its_reason(tmp_path):
    fake = FakeKinesis(lambda d: 99 if b'"n":3' in d else 0)
    log = tmp_path / "failures.jsonl"
    sink = KinesisSink(client=fake, stream_name="s", sleep=lambda s: None, max_attempts=3,
                       failure_log=log)
    lines = numbered(5)
    lines.append(to_line({"site": "s", "pad": "y" * (1024 * 1024)}))
    sink.send(lines)
    s = sink.stats
    assert s.sent == s.acknowledged + s.failed == 6 and s.failed == 2, f"{s}"
    assert [f["reason"] for f in s.failures] == ["RecordTooLarge",
                                                 "ProvisionedThroughputExceededException"], s
    assert "gave up after 3 attempts" in s.failures[-1]["message"], s.failures
    logged = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [(r["reason"], r["record"][:20]) for r in logged] == [
        ("RecordTooLarge", lines[5][:20]), ("ProvisionedThroughputExceededException",
                                            lines[3][:20])], logged
    assert s.throttled == 3 and s.retried == 2, f"3 rejections, 2 re-sends: {s}"


def test_stream_log_write_failure_is_counted_and_raised(tmp_path):
    sink = StreamLogSink(tmp_path / "s")
    (tmp_path / "s").rmdir()
    with pytest.raises(GeneratorError, match="Cannot write the stream log"):
        sink.send(["a", "b"])
    assert (sink.stats.sent, sink.stats.failed) == (2, 2), f"{sink.stats}"
    assert sink.stats.failures[0]["reason"] == "FileNotFoundError", sink.stats.failures


@mock_aws
def test_kinesis_sink_spreads_records_over_shards(fake_aws_env):
    client = boto3.client("kinesis", region_name="us-east-1")
    client.create_stream(StreamName="spread", ShardCount=4)
    sink = KinesisSink(client=client, stream_name="spread")
    assert sink.capacity().records_per_s == 4000, f"{sink.capacity()}"
    lines = numbered(400)
    sink.send(lines)  # one site: partition keys alone would pin one shard
    per_shard = {}
    for shard in client.list_shards(StreamName="spread")["Shards"]:
        it = client.get_shard_iterator(StreamName="spread", ShardId=shard["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = client.get_records(ShardIterator=it, Limit=1000)["Records"]
        per_shard[shard["ShardId"]] = len(recs)
        assert {r["PartitionKey"] for r in recs} <= {"s"}, "the partition key stays the site"
    assert sorted(per_shard.values()) == [100, 100, 100, 100], f"spread: {per_shard}"


@mock_aws
def test_missing_stream_says_how_to_create_it(fake_aws_env):
    client = boto3.client("kinesis", region_name="us-east-1")
    with pytest.raises(GeneratorError) as info:
        KinesisSink(client=client, stream_name="clicklab-nope")
    msg = str(info.value)
    assert "aws kinesis create-stream --stream-name clicklab-nope" in msg, msg
