"""Tests of labhelpers.generator: schedule, timelines, sinks, live mode, errors."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from labhelpers.config import LabConfig
from labhelpers.contracts import (
    CLICK,
    DISCOVERY,
    IMPRESSION,
    check_record,
    format_event_time,
    parse_event_time,
)
from labhelpers.errors import GeneratorError
from labhelpers.generator import (
    GARBAGE_KINDS,
    KINESIS_MAX_BYTES,
    KINESIS_MAX_RECORDS,
    KinesisSink,
    MemorySink,
    Plan,
    Sender,
    StreamLogSink,
    event_time_ms,
    garbage_line,
    lab_test_plan,
    make_sink,
    run_live,
    send_timeline,
    spike,
    start_background,
    steady_plan,
    timeline,
    timeline_batches,
    to_line,
    with_garbage,
    write_jsonl,
)
from labhelpers.streamlog import read_all_lines

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
    (lambda: list(with_garbage([], 1.5)), ["fraction", "between 0 and 1"]),
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
    sink = make_sink(cfg)
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
    sink = make_sink(cfg)
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
