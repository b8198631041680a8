"""Schema discovery: what the old console's "Discover schema" button did, from live records.

``discover`` looks at records' JSON and suggests a table definition: a column per field with
its SQL type, the event-time column and a watermark that allows for the disorder seen in the
sample, shown next to the table the lab really uses (``sql/anomaly_detection.sql``), which
reads each record as one line of text so that a malformed record can be set aside, not fatal.
Reading the live records takes the backend, so that lives above the seam:
``labhelpers.monitor.live_schema`` (``sample_records``, ``discover_live``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from ..errors import GeneratorError
from ..job.contracts import parse_event_time
from ..job.sqlfile import SQL_FILE

SAMPLE_SIZE = 100
LAB_TABLE = "click_records"
# Names that need quoting in Flink SQL (a few common ones; anything unusual is quoted too).
_RESERVED = {"timestamp", "time", "date", "user", "value", "values", "type", "table", "order",
             "group", "window", "year", "month", "day", "hour", "minute", "second", "count",
             "from", "select", "where", "key", "row", "language", "current"}
_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_EVENT_TIME_NAMES = ("event_time", "eventtime", "timestamp", "ts", "time", "event_timestamp")


@dataclass
class Column:
    """One discovered column."""

    name: str
    sql_type: str
    json_path: str
    present: int          # in how many of the parsed records
    example: str          # one value, as JSON

    @property
    def sql_name(self) -> str:
        if _PLAIN_NAME.match(self.name) and self.name not in _RESERVED:
            return self.name
        return "`" + self.name.replace("`", "``") + "`"


@dataclass
class Discovery:
    """What a sample of records says about their schema."""

    records: int                  # lines looked at
    parsed: int                   # lines that are JSON objects
    columns: list[Column]
    event_time: str | None        # the column to window on, if one was found
    max_disorder_s: float | None  # how far a record came after a later one, in the sample
    actions: dict[str, int] = field(default_factory=dict)  # browseraction values seen
    source: str = ""              # where the sample came from

    @property
    def unparsed(self) -> int:
        return self.records - self.parsed

    @property
    def lateness_s(self) -> int | None:
        """A watermark delay covering the sample's disorder, with one second to spare."""
        if self.max_disorder_s is None:
            return None
        return max(1, math.ceil(self.max_disorder_s) + 1)

    def table_sql(self, name: str = LAB_TABLE) -> str:
        """The suggested ``CREATE TABLE`` (Flink SQL, JSON format)."""
        lines = [f"-- suggested from {self.parsed} of {self.records} live records"
                 + (f" ({self.source})" if self.source else ""),
                 f"CREATE TABLE {name} ("]
        body = [(f"  {c.sql_name} {c.sql_type}", f"in {c.present}/{self.parsed}, e.g. "
                 f"{c.example}") for c in self.columns]
        width = max((len(code) for code, _ in body), default=0) + 1
        has_watermark = self.event_time is not None and self.lateness_s is not None
        for i, (code, note) in enumerate(body):
            comma = "," if i < len(body) - 1 or has_watermark else ""
            lines.append(f"{code + comma:<{width}}  -- {_clip(note, 60)}")
        if has_watermark:
            col = self._column(self.event_time).sql_name
            if self.max_disorder_s:
                lines.append(f"  -- records arrived up to {self.max_disorder_s:.1f} s after a "
                             "later one: wait that long, rounded up, + 1 s")
            else:
                lines.append("  -- records arrived in event-time order: 1 s of slack")
            lines.append(f"  WATERMARK FOR {col} AS {col} - INTERVAL '{self.lateness_s}' SECOND")
        lines += [") WITH (", "  'format' = 'json'  -- and the connector's options", ");"]
        return "\n".join(lines)

    def frame(self):
        """The columns as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            [{"column": c.name, "SQL type": c.sql_type, "JSON path": c.json_path,
              "in records": f"{c.present}/{self.parsed}", "example": c.example,
              "event time": c.name == self.event_time} for c in self.columns])

    def _column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def _repr_html_(self) -> str:
        return side_by_side(self)

    def __repr__(self) -> str:
        return self.table_sql()


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_timestamp(value: str) -> bool:
    """An ISO-8601 date-time (the lab's 2026-11-27T10:00:00.123Z, or any such text)."""
    try:
        parse_event_time(value)
        return True
    except (TypeError, ValueError):
        pass
    if len(value) < 16 or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _to_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def sql_type(value: Any) -> str | None:
    """The SQL type of one JSON value; None for null (no information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "TIMESTAMP(3)" if _is_timestamp(value) else "STRING"
    return "STRING"  # an object or array: kept as its JSON text


def merge_types(types: set[str]) -> str:
    """One type for a column whose values had ``types``."""
    if not types:
        return "STRING"
    if len(types) == 1:
        return next(iter(types))
    if types <= {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "STRING"


def discover(lines: list[str], source: str = "") -> Discovery:
    """Suggest a schema for JSON-lines records (oldest first)."""
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            records.append(rec)
    order: list[str] = []
    types: dict[str, set[str]] = {}
    present: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for rec in records:
        for key, value in rec.items():
            if key not in types:
                order.append(key)
                types[key] = set()
            present[key] += 1
            t = sql_type(value)
            if t is not None:
                types[key].add(t)
                examples.setdefault(key, _clip(json.dumps(value), 40))
    columns = [Column(name=k, sql_type=merge_types(types[k]), json_path=f"$.{k}",
                      present=present[k], example=examples.get(k, "null")) for k in order]
    candidates = [c.name for c in columns
                  if c.sql_type == "TIMESTAMP(3)" and c.present == len(records)]
    event_time = None
    if candidates:
        named = [c for c in candidates if c.lower() in _EVENT_TIME_NAMES]
        event_time = (named or candidates)[0]
    disorder = None
    if event_time:
        disorder, latest = 0.0, None
        for rec in records:
            t = _to_datetime(rec[event_time]).timestamp()
            if latest is not None:
                disorder = max(disorder, latest - t)
            latest = t if latest is None else max(latest, t)
    actions = Counter(str(r["browseraction"]) for r in records if "browseraction" in r)
    return Discovery(records=len(lines), parsed=len(records), columns=columns,
                     event_time=event_time, max_disorder_s=disorder,
                     actions=dict(actions.most_common()), source=source)


# ---------------------------------------------------------------- the lab's own table
def lab_table_sql() -> str:
    """The input table's ``CREATE TABLE`` statement as written in sql/anomaly_detection.sql."""
    text = SQL_FILE.read_text(encoding="utf-8")
    m = re.search(rf"CREATE TABLE {LAB_TABLE} \(.*?\n\);", text, flags=re.S)
    if not m:
        raise GeneratorError(f"No CREATE TABLE {LAB_TABLE} in {SQL_FILE.name}",
                             "put the input table back in the SQL file.")
    return m.group(0)


def side_by_side(found: Discovery) -> str:
    """HTML: the discovered columns, then the suggestion next to the lab's table."""
    actions = ", ".join(f"{k}: {v}" for k, v in found.actions.items()) or "none"
    box = ('style="flex: 1 1 430px; min-width: 0; overflow-x: auto; border: 1px solid #ccc; '
           'padding: 4px 8px"')
    pre = ('style="font-family: monospace; font-size: 11.5px; line-height: 1.35; margin: 0; '
           'white-space: pre"')
    return (
        f"<p><b>{found.parsed}</b> of {found.records} records are JSON objects "
        f"({found.unparsed} not); browseraction values: {escape(actions)}; event-time column: "
        f"<code>{escape(found.event_time or 'none found')}</code>.</p>"
        + found.frame().to_html(index=False, escape=True)
        + '<div style="display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px">'
        f"<div {box}><b>suggested from the live records</b><pre {pre}>"
        f"{escape(found.table_sql())}</pre></div>"
        f"<div {box}><b>the lab's table ({escape(SQL_FILE.parent.name)}/"
        f"{escape(SQL_FILE.name)})</b><pre {pre}>{escape(lab_table_sql())}</pre></div></div>"
    )
