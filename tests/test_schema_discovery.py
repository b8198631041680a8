"""Schema discovery: types, event-time column, watermark from disorder; live samples."""

from __future__ import annotations

import json

import pytest

from labhelpers.analytics import schema_discovery as sd
from labhelpers.errors import GeneratorError
from labhelpers.infra.config import LabConfig
from labhelpers.monitor import live_schema
from labhelpers.stream.log import StreamLogWriter
from tests.aws_env import aws_cfg_on_emulator
from tests.records import click_record

T0 = 1_795_773_600.0  # 2026-11-27T10:00:00Z


def lines(*records) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def test_lab_records_give_the_lab_columns_and_event_time():
    found = sd.discover(lines(click_record("Click", "example.com", T0),
                              click_record("Impression", "example.com", T0 + 0.5)))
    assert [(c.name, c.sql_type) for c in found.columns] == [
        ("browseraction", "STRING"), ("site", "STRING"), ("event_time", "TIMESTAMP(3)")]
    assert found.event_time == "event_time"
    assert found.actions == {"Click": 1, "Impression": 1}
    assert found.max_disorder_s == 0.0 and found.lateness_s == 1
    assert "in event-time order" in found.table_sql()


def test_disorder_sets_the_watermark():
    found = sd.discover(lines(click_record("Click", "a", T0),
                              click_record("Click", "a", T0 + 4.0),
                              click_record("Click", "a", T0 + 1.5),   # 2.5 s late
                              click_record("Click", "a", T0 + 5.0)))
    assert found.max_disorder_s == pytest.approx(2.5)
    assert found.lateness_s == 4, "rounded up, plus one second"
    sql = found.table_sql()
    assert "WATERMARK FOR event_time AS event_time - INTERVAL '4' SECOND" in sql, sql
    assert sql.startswith("-- suggested from 4 of 4 live records")


def test_types_merge_and_presence_is_counted():
    found = sd.discover(lines(
        {"n": 1, "x": 1, "flag": True, "nested": {"a": 1}, "mixed": "a", "nothing": None},
        {"n": 2, "x": 2.5, "flag": False, "nested": [1], "mixed": 3, "nothing": None},
        {"n": 3},
        "this is not JSON", "[1, 2]",
    ))
    types = {c.name: c.sql_type for c in found.columns}
    assert types == {"n": "BIGINT", "x": "DOUBLE", "flag": "BOOLEAN", "nested": "STRING",
                     "mixed": "STRING", "nothing": "STRING"}, types
    present = {c.name: c.present for c in found.columns}
    assert present["n"] == 3 and present["x"] == 2, present
    assert (found.records, found.parsed, found.unparsed) == (5, 3, 2)
    assert found.event_time is None and found.max_disorder_s is None
    assert "WATERMARK" not in found.table_sql()


def test_event_time_must_be_in_every_record_and_prefers_its_name():
    found = sd.discover(lines(
        {"created": "2026-11-27T09:00:00Z", "event_time": "2026-11-27T10:00:00.000Z"},
        {"created": "2026-11-27T09:00:01Z", "event_time": "2026-11-27T10:00:01.000Z",
         "seen": "2026-11-27T10:00:02.000Z"},
    ))
    assert found.event_time == "event_time", "both qualify; the usual name wins"
    assert {c.name: c.sql_type for c in found.columns}["seen"] == "TIMESTAMP(3)"
    only_some = sd.discover(lines({"t": "2026-11-27T10:00:00.000Z"}, {"u": 1}))
    assert only_some.event_time is None, "a time missing from a record cannot be event time"


def test_odd_and_reserved_names_are_quoted():
    found = sd.discover(lines({"user": "a", "my-field": 1, "Price": 2.0, "ok_name": 3}))
    names = [c.sql_name for c in found.columns]
    assert names == ["`user`", "`my-field`", "`Price`", "ok_name"], names


def test_lab_table_is_read_from_the_sql_file():
    table = sd.lab_table_sql()
    assert table.startswith("CREATE TABLE click_records (")
    assert "line STRING" in table and "WATERMARK FOR event_time" in table
    assert table.rstrip().endswith(");")


def test_side_by_side_html_has_both_tables():
    found = sd.discover(lines(click_record("Click", "<b>site</b>", T0)))
    html = found._repr_html_()
    assert "suggested from the live records" in html and "the lab's table" in html
    assert "line STRING" in html and "event_time TIMESTAMP(3)" in html
    assert "<b>site</b>" not in html, "values are escaped"
    assert "CREATE TABLE click_records" in repr(found)


def test_sample_records_local_reads_the_newest(tmp_path):
    cfg = LabConfig(home=tmp_path)
    log = StreamLogWriter(cfg.stream_dir(cfg.input_stream))
    log.append(lines(*[click_record("Click", "a", T0 + i) for i in range(5)]))
    log.append(lines(*[click_record("Impression", "a", T0 + 5 + i) for i in range(5)]))
    got = live_schema.sample_records(cfg, n=6)
    assert len(got) == 6
    assert json.loads(got[-1])["event_time"].endswith("10:00:09.000Z"), got[-1]
    assert json.loads(got[0])["browseraction"] == "Click", "oldest first"
    found = live_schema.discover_live(cfg, n=100)
    assert found.records == 10 and found.actions == {"Click": 5, "Impression": 5}


def test_sample_records_without_traffic_says_how_to_start_it(tmp_path):
    with pytest.raises(GeneratorError, match="generate start"):
        live_schema.sample_records(LabConfig(home=tmp_path))
    with pytest.raises(GeneratorError, match="at least 1"):
        live_schema.sample_records(LabConfig(home=tmp_path), n=0)


@pytest.mark.integration
def test_sample_records_aws_reads_the_kinesis_stream(emulator_cfg, monkeypatch, tmp_path):
    cfg = aws_cfg_on_emulator(monkeypatch, tmp_path, emulator_cfg, "testschema")
    kinesis = cfg.client("kinesis")
    kinesis.create_stream(StreamName=cfg.input_stream, ShardCount=1)
    try:
        kinesis.get_waiter("stream_exists").wait(StreamName=cfg.input_stream)
        records = [click_record("Click" if i % 2 else "Impression", "example.com", T0 + i)
                   for i in range(12)]
        kinesis.put_records(StreamName=cfg.input_stream, Records=[
            {"Data": json.dumps(r).encode(), "PartitionKey": r["site"]} for r in records])
        got = live_schema.sample_records(cfg, n=5)
        assert [json.loads(g) for g in got] == records[-5:], got
        found = live_schema.discover_live(cfg, n=100)
        assert found.parsed == 12 and found.event_time == "event_time"
    finally:
        kinesis.delete_stream(StreamName=cfg.input_stream)
