import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labhelpers.job.contracts import (
    BAD_REASONS,
    MAX_RECORD_CHARS,
    check_record,
    ctr_percent,
    format_event_time,
    parse_event_time,
)
from tests.records import click_record


def test_event_time_round_trip():
    ts = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    text = format_event_time(ts)
    assert text == "2026-11-27T10:00:00.123Z"
    assert parse_event_time(text) == ts.replace(microsecond=123000)
    assert format_event_time(ts.timestamp()) == text


@pytest.mark.parametrize(
    "line,reason",
    [
        ("x" * (MAX_RECORD_CHARS + 1), "oversized"),
        ("not json", "not_json"),
        ("[1, 2]", "not_json"),
        ('{"site": "a", "event_time": "2026-11-27T10:00:00.000Z"}', "missing_browseraction"),
        ('{"browseraction": "Buy", "site": "a", "event_time": "2026-11-27T10:00:00.000Z"}',
         "unknown_browseraction"),
        ('{"browseraction": "Click", "event_time": "2026-11-27T10:00:00.000Z"}', "missing_site"),
        ('{"browseraction": "Click", "site": 5, "event_time": "2026-11-27T10:00:00.000Z"}',
         "missing_site"),
        ('{"browseraction": "Click", "site": "a", "event_time": "yesterday"}', "bad_event_time"),
        ('{"browseraction": "Click", "site": "a"}', "bad_event_time"),
    ],
)
def test_bad_records_get_their_reason(line, reason):
    rec, why = check_record(line)
    assert rec is None and why == reason, f"{line[:60]!r} -> {why}, expected {reason}"
    assert why in BAD_REASONS


def test_good_record_passes():
    line = json.dumps(click_record("Click", "example.com", 1_700_000_000.5, extra=1))
    rec, why = check_record(line)
    assert why is None and rec["extra"] == 1


@given(st.text(max_size=200))
def test_any_text_is_either_a_record_or_has_a_reason(line):
    rec, why = check_record(line)
    assert (rec is None) != (why is None)
    assert why is None or why in BAD_REASONS


@given(st.sampled_from(["Click", "Impression", "DiscoveryKinesisTest"]),
       st.text(min_size=1, max_size=50), st.floats(min_value=0, max_value=4e9))
def test_generated_records_are_valid(action, site, ts):
    rec, why = check_record(json.dumps(click_record(action, site, ts)))
    assert why is None, why


def test_ctr():
    assert ctr_percent(4, 1) == 400.0
    assert ctr_percent(0, 10) == 0.0, "no clicks is CTR 0, still scored"
    assert ctr_percent(3, 0) is None, "clicks without impressions: no division by zero"
