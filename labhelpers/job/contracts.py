"""Data contracts: click records, window rows, score rows. One place, tested.

The record rules are defined here once and executed twice: by ``check_record`` (Python:
the generator's checks, the tests, the evaluation) and by the job's SQL
(``sql/anomaly_detection.sql``), whose limits and reason words are filled in from this module
(``sql_values``). ``tests/test_record_rules_property.py`` runs many lines (long, multi-byte,
exactly at the limit) through the real job and checks that both give every line the same
reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# browseraction values the lab's generator sends; the schema-discovery payload is valid
# but is neither a click nor an impression, so it counts for nothing.
CLICK = "Click"
IMPRESSION = "Impression"
DISCOVERY = "DiscoveryKinesisTest"
ACTIONS = (CLICK, IMPRESSION, DISCOVERY)

# A record longer than this is set aside as oversized, a site name longer than this as
# missing_site. Both count CHARACTERS (Unicode code points), not bytes: that is what the SQL
# (CHAR_LENGTH) and Python (len of a str) both count, natively and alike, so the two
# executions of the rule cannot drift. In bytes a 4,096-character line is at most 16 KiB of
# UTF-8, far below a Kinesis record's 1 MiB, so no stream limit is at stake here.
MAX_RECORD_CHARS = 4096
MAX_SITE_CHARS = 128

# Event time on the wire: ISO-8601, UTC, millisecond precision, e.g. 2026-11-27T10:00:00.123Z
EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# The generator's own line layout (labhelpers.generate.timeline.to_line): compact JSON, the
# contract's keys first and in this order, browseraction one of ACTIONS, site and every other
# string plain (no escape sequence: no quote, backslash or control character inside), the
# event time as 24 characters of the wire format, then optional extra template fields whose
# values are plain strings, short numbers, true, false or null, e.g.
#   {"browseraction":"Click","site":"example.com","event_time":"2026-11-27T10:00:00.123Z"}
# A line that matches is a JSON object whose strings hold no quote, so the job's SQL cuts it
# at its quotes (SPLIT_INDEX: the fields are pieces 3, 7 and 11) instead of parsing it as JSON,
# far cheaper; every other line is parsed as JSON. Both give the same values
# (tests/test_contracts.py, tests/test_record_rules_property.py), and the record rules still
# run on them: a site too long, a time that is no real instant (2026-02-30 fits the pattern)
# are set aside as before. Numbers are kept short (a JSON parser may refuse a number of a
# thousand digits), and no extra key repeats one of the three. Written so that Java (the
# SQL's REGEXP) and Python (re) read it alike: [0-9] not \d, an end that nothing may follow
# instead of $ (which allows a final line break) or \z (not in Python 3.11).
_PLAIN = r'[^"\\\x00-\x1f]'
_NUMBER = r"-?(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,20})?(?:[eE][+-]?[0-9]{1,3})?"
GENERATOR_LINE_PATTERN = (
    r'^\{"browseraction":"(?:' + "|".join(ACTIONS) + r')"'
    r',"site":"' + _PLAIN + r'+"'
    r',"event_time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'
    r'(?:,"(?!(?:browseraction|site|event_time)")' + _PLAIN + r'*":'
    r'(?:"' + _PLAIN + r'*"|' + _NUMBER + r"|true|false|null))*"
    r"\}(?![\s\S])"
)

# Columns of a window row (the SQL view ``window_ctr``) and a score row (the scores stream).
WINDOW_COLUMNS = ("window_start", "window_end", "site", "clicks", "impressions", "ctr")
SCORE_COLUMNS = WINDOW_COLUMNS + (
    "anomaly_score",
    "is_anomaly",
    "forest_ready",
    "attribution",
    "episode_id",
    # False when the input ended inside the window (a replay's last window): reported with
    # its counts, never scored or alerted on.
    "complete",
    # the run rule's largest running sum at this window (forest.AlertRule), before a
    # flag starts it again
    "run_score",
    # what the site usually sends (running means of its learned windows): the alert says
    # "clicks 40, usually about 10"
    "usual_clicks",
    "usual_impressions",
    "usual_ctr",
    # what flagged an anomalous window (None otherwise): "score" (the score above the
    # threshold) or "run:<input>:<high|low>" (a run of one driving input: the inputs are
    # job.deviations.RUN_INPUTS)
    "flagged_by",
)
# Types of the score columns that are not text (the job's row type and the SQL table).
SCORE_TYPES = {"clicks": "BIGINT", "impressions": "BIGINT", "ctr": "DOUBLE",
               "anomaly_score": "DOUBLE", "is_anomaly": "BOOLEAN", "forest_ready": "BOOLEAN",
               "complete": "BOOLEAN", "run_score": "DOUBLE", "usual_clicks": "DOUBLE",
               "usual_impressions": "DOUBLE", "usual_ctr": "DOUBLE"}
# The CSV written by ``python -m labhelpers replay``.
REPLAY_CSV_COLUMNS = WINDOW_COLUMNS + ("anomaly_score", "is_anomaly", "complete")
# The inputs of the forest, in the order of a point; attribution is reported per input.
FOREST_INPUTS = ("clicks", "impressions", "ctr")
# Reasons a record is set aside (dead-letter output), in the order the rules are checked.
# The SQL gets these words from here (``sql_values``: placeholders ``{{reason_<word>}}``).
BAD_REASONS = (
    "oversized",
    "not_json",
    "missing_browseraction",
    "unknown_browseraction",
    "missing_site",
    "bad_event_time",
)
# A valid record whose window was already reported when it arrived (the job decides this
# from its watermark; check_record cannot, it sees one record alone).
LATE = "late"
# Every reason word of the dead-letter stream.
DEAD_LETTER_REASONS = (*BAD_REASONS, LATE)


def format_event_time(ts: datetime | float) -> str:
    """ISO-8601 UTC with milliseconds; ``ts`` is a datetime or epoch seconds."""
    if not isinstance(ts, datetime):
        ts = datetime.fromtimestamp(ts, tz=UTC)
    elif ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_event_time(text: str) -> datetime:
    """Parse the wire format back into an aware UTC datetime; ValueError if malformed."""
    if not isinstance(text, str) or len(text) != 24 or not text.endswith("Z"):
        raise ValueError(f"event_time {text!r} is not like 2026-11-27T10:00:00.123Z")
    return datetime.strptime(text, EVENT_TIME_FORMAT).replace(tzinfo=UTC)


def check_record(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """Validate one JSON line. Returns ``(record, None)`` or ``(None, reason)``.

    ``reason`` is one of BAD_REASONS: the same rules, in the same order, as the job's SQL.
    """
    if len(line) > MAX_RECORD_CHARS:  # characters, as the SQL's CHAR_LENGTH
        return None, "oversized"
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not_json"
    if not isinstance(rec, dict):
        return None, "not_json"
    action = rec.get("browseraction")
    if not isinstance(action, str) or not action:
        return None, "missing_browseraction"
    if action not in ACTIONS:
        return None, "unknown_browseraction"
    site = rec.get("site")
    if not isinstance(site, str) or not site or len(site) > MAX_SITE_CHARS:
        return None, "missing_site"
    try:
        parse_event_time(rec.get("event_time"))
    except (TypeError, ValueError):
        return None, "bad_event_time"
    return rec, None


def sql_values() -> dict[str, object]:
    """The record rules' values for the job's SQL: the limits, the generator's line layout
    (``GENERATOR_LINE_PATTERN``) and one placeholder per reason word
    (``{{reason_oversized}}`` -> ``oversized``)."""
    return {"max_record_chars": MAX_RECORD_CHARS, "max_site_chars": MAX_SITE_CHARS,
            "generator_line_pattern": GENERATOR_LINE_PATTERN,
            **{f"reason_{word}": word for word in DEAD_LETTER_REASONS}}


def ctr_percent(clicks: int, impressions: int) -> float | None:
    """Click-through rate in percent; None when there were no impressions (not a division by 0)."""
    return None if impressions == 0 else 100.0 * clicks / impressions
