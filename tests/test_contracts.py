import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labhelpers.generate.plan import Plan, Sender
from labhelpers.generate.timeline import timeline_batches, to_line
from labhelpers.job.contracts import (
    ACTIONS,
    BAD_REASONS,
    GENERATOR_LINE_PATTERN,
    MAX_RECORD_CHARS,
    MAX_SITE_CHARS,
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


# --- the generator's line layout (GENERATOR_LINE_PATTERN): the SQL's fast path -------------

def _by_position(line: str) -> tuple[str, str, str]:
    """browseraction, site, event_time cut out of a line in the generator's layout exactly as
    the SQL's fast path does: SPLIT_INDEX(line, '"', 3), 7 and 11."""
    pieces = line.split('"')
    return pieces[3], pieces[7], pieces[11]


def _plain(text: str) -> bool:
    """A string JSON writes as it is: no quote, backslash or control character."""
    return not re.search(r'["\\\x00-\x1f]', text)


_reserved = ("browseraction", "site", "event_time")
plain_text = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=("Cc", "Cs")))
any_site = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                   max_size=MAX_SITE_CHARS)
scalar = st.one_of(plain_text, st.integers(-10**15, 10**15), st.booleans(), st.none(),
                   st.floats(allow_nan=False, allow_infinity=False))
extra_fields = st.dictionaries(plain_text.filter(lambda k: k not in _reserved), scalar,
                               max_size=3)


@given(sites=st.lists(any_site, min_size=1, max_size=3, unique=True),
       action=st.sampled_from(ACTIONS), fields=extra_fields,
       start=st.integers(1_700_000_000, 1_900_000_000), rate=st.sampled_from([0.5, 3.0, 40.0]))
def test_every_generator_line_in_plain_strings_matches_the_layout(sites, action, fields, start,
                                                                   rate):
    """Every line the generator writes (the lines its sinks send) is in the layout unless a
    site needs escaping in JSON; cut out by position, its fields are what a JSON parser reads."""
    plan = Plan((Sender(action, rate, fields=fields),), sites=tuple(sites))
    lines = [ln for b in timeline_batches(plan, start, duration_s=2) for ln in b.lines]
    assert lines, "the plan sent nothing"
    for line in lines:
        rec = json.loads(line)
        assert line == to_line(rec), "a batch line differs from the record's compact JSON"
        matched = re.search(GENERATOR_LINE_PATTERN, line) is not None
        assert matched == _plain(rec["site"]), f"layout match {matched} for {line!r}"
        if matched:
            assert _by_position(line) == (rec["browseraction"], rec["site"],
                                          rec["event_time"]), f"cut out wrongly: {line!r}"
            assert check_record(line)[1] is None, f"a line in the layout is bad: {line!r}"


@given(st.fixed_dictionaries({"browseraction": st.sampled_from(ACTIONS),
                              "site": plain_text.filter(bool),
                              "event_time": st.text(max_size=30)}, optional={"x": scalar}))
def test_a_line_in_the_layout_is_a_json_object_with_those_fields(rec):
    """Whatever the values, a line in the layout is a JSON object and cutting by position
    gives the parser's values (the record rules then judge them: a bad time stays bad)."""
    line = to_line(rec)
    if re.search(GENERATOR_LINE_PATTERN, line):
        parsed = json.loads(line)
        assert isinstance(parsed, dict) and list(parsed)[:3] == list(_reserved)
        assert _by_position(line) == (parsed["browseraction"], parsed["site"],
                                      parsed["event_time"])


GOOD = {"browseraction": "Click", "site": "a.example", "event_time": "2026-11-27T10:00:00.123Z"}


@pytest.mark.parametrize("line", [
    json.dumps(GOOD),                                              # spaces after : and ,
    json.dumps(dict(reversed(GOOD.items())), separators=(",", ":")),  # keys in another order
    to_line(GOOD) + "\n", to_line(GOOD) + " ", " " + to_line(GOOD),   # anything around it
    to_line({**GOOD, "site": 'a"b'}), to_line({**GOOD, "site": "a\tb"}),  # escaped strings
    to_line({**GOOD, "site": ""}), to_line({**GOOD, "browseraction": "Buy"}),
    to_line({**GOOD, "event_time": "2026-11-27 10:00:00.123Z"}),
    to_line({**GOOD, "event_time": 1}), to_line({**GOOD, "x": {"y": 1}}),
    to_line({**GOOD, "x": float("inf")}), to_line({**GOOD, "x": 10**30}),
    to_line(GOOD)[:-1] + ',"site":"b"}',                           # a key given twice
    to_line(GOOD)[:-1] + ',"x":01}', to_line(GOOD)[:-1] + ",}",    # not JSON
])
def test_other_layouts_take_the_json_path(line):
    assert not re.search(GENERATOR_LINE_PATTERN, line), f"{line!r} taken for the layout"


@pytest.mark.parametrize("line,reason", [
    (to_line({**GOOD, "event_time": "2026-02-30T10:00:00.000Z"}), "bad_event_time"),
    (to_line({**GOOD, "site": "x" * (MAX_SITE_CHARS + 1)}), "missing_site"),
    (to_line({**GOOD, "pad": "x" * MAX_RECORD_CHARS}), "oversized"),
])
def test_bad_lines_in_the_layout_keep_their_reason(line, reason):
    """The layout says where the fields are, not that they are good: the rules still apply."""
    assert re.search(GENERATOR_LINE_PATTERN, line), "expected a line in the layout"
    assert check_record(line)[1] == reason
