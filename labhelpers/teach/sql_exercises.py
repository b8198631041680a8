"""SQL exercises: the student writes a query, Flink runs it for real, a function checks it.

Each exercise reads the lab's own view ``clicks`` (``site``, ``browseraction``,
``event_time``: the valid records of ``sql/anomaly_detection.sql``) over a small generated
file of three minutes of traffic for three sites. The query runs on Flink's embedded
mini-cluster in a child process, like ``labhelpers.analytics.replay`` (a JVM in the notebook kernel
would outlive the cell), and the rows come back to the checker, which compares them with the
answer computed in plain Python from the same records and says in one sentence what is wrong.

    from labhelpers.teach import sql_exercises as sx
    ex = sx.EXERCISES["hop_ctr"]
    print(ex.task); print(ex.starter)
    result = sx.run(ex, my_query)      # ~15-30 s: one Flink start
    result.message                     # "Correct: ..." or what is wrong, in one sentence

Run as a program (``python -m labhelpers.teach.sql_exercises --spec FILE``) it is the child
process: it runs the queries of the spec and writes their rows (or Flink's error) as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import AppError, ConfigError
from ..job.contracts import parse_event_time

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DURATION_S = 180
# Three sites whose clicks differ by minute, so that the top sites change every minute and
# no two sites tie (a tie would make "the top 2" ambiguous). Impressions: 1/s everywhere.
#   site            minute 1   minute 2   minute 3   (clicks per second)
#   shop.example       2         0.5        0.5
#   news.example       1         1          1
#   blog.example       0.25      0.25       0.25 + 3 (a spike)
SITES = ("shop.example", "news.example", "blog.example")


def _plans():
    from ..generate.plan import Plan, Sender
    from ..job.contracts import CLICK, IMPRESSION

    imp = Sender(IMPRESSION, 1.0)
    return [
        Plan((imp, Sender(CLICK, 2.0, seconds=60), Sender(CLICK, 0.5, start_s=60)),
             sites=("shop.example",), duration_s=DURATION_S),
        Plan((imp, Sender(CLICK, 1.0)), sites=("news.example",), duration_s=DURATION_S),
        Plan((imp, Sender(CLICK, 0.25), Sender(CLICK, 3.0, start_s=120, seconds=60)),
             sites=("blog.example",), duration_s=DURATION_S),
    ]


def exercise_records() -> list[dict[str, Any]]:
    """The exercises' input: three minutes of Click and Impression records, in time order."""
    from ..generate.timeline import timeline

    records = [r for i, plan in enumerate(_plans()) for r in timeline(plan, START, seed=i)]
    records.sort(key=lambda r: (r["event_time"], r["site"], r["browseraction"]))
    return records


def write_exercise_file(path: Path | str) -> Path:
    """Write the exercises' input as JSON lines (the generator's format); returns the path."""
    from ..generate.timeline import write_jsonl

    path = Path(path)
    write_jsonl(exercise_records(), path)
    return path


# ---------------------------------------------------------------------------------------------
# Results and checks
# ---------------------------------------------------------------------------------------------


@dataclass
class QueryResult:
    """What Flink returned for one query: column names and rows, or the error text."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r, strict=False)) for r in self.rows]

    def frame(self):
        """The rows as a pandas DataFrame (for display)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


@dataclass
class Check:
    """The verdict: ``ok`` and one sentence saying what is right or wrong."""

    ok: bool
    message: str
    result: QueryResult | None = None

    def __repr__(self) -> str:
        return f"{'OK' if self.ok else 'NOT YET'}: {self.message}"

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#b35900"
        return (f"<p style='color:{colour};font-weight:bold'>{'OK' if self.ok else 'NOT YET'}"
                f": <span style='font-weight:normal'>{_html(self.message)}</span></p>")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _epoch(value: Any) -> float:
    """A window bound as epoch seconds: Flink returns datetime (naive = UTC) or text."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    text = str(value).strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1]
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _hhmmss(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _times(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, str, str]]:
    return [(parse_event_time(r["event_time"]).timestamp(), r["site"], r["browseraction"])
            for r in records]


def expected_hop(records: Sequence[Mapping[str, Any]], size_s: int = 30,
                 slide_s: int = 10) -> dict[tuple[float, str], tuple[int, int]]:
    """(window start, site) -> (clicks, impressions) of every sliding window with records."""
    counts: dict[tuple[float, str], list[int]] = defaultdict(lambda: [0, 0])
    for t, site, action in _times(records):
        last = math.floor(t / slide_s) * slide_s
        for k in range(size_s // slide_s):
            start = last - k * slide_s
            if start <= t < start + size_s:
                counts[(float(start), site)][0 if action == "Click" else 1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def expected_top(records: Sequence[Mapping[str, Any]], n: int = 2,
                 window_s: int = 60) -> dict[float, list[tuple[str, int]]]:
    """Window start -> the ``n`` sites with the most clicks, as (site, clicks), best first."""
    per: dict[float, Counter] = defaultdict(Counter)
    for t, site, action in _times(records):
        if action == "Click":
            per[float(math.floor(t / window_s) * window_s)][site] += 1
    return {w: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n] for w, c in per.items()}


def flink_message(error: str) -> str:
    """Flink's error in short: the first line, without Py4J's prefix and Java packages."""
    lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
    first = re.sub(r"^[:\s]+", "", lines[0]) if lines else "no message"
    first = re.sub(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Z]\w*(?:Exception|Error)\b)", "", first)
    return first[:300].rstrip(".")


def _common(result: QueryResult, needed: Sequence[str]) -> str | None:
    """The problems every exercise shares: a Flink error, missing columns, no rows."""
    if result.error:
        return (f"Flink rejected the query ({flink_message(result.error)}): fix the SQL and "
                "run it again.")
    missing = [c for c in needed if c not in result.columns]
    if missing:
        return (f"The result has no column {', '.join(missing)} (it has "
                f"{', '.join(result.columns) or 'none'}): name it with AS.")
    if not result.rows:
        return ("The query returned no rows: read FROM the view `clicks` and do not filter "
                "everything out.")
    return None


def check_hop_ctr(result: QueryResult, records: Sequence[Mapping[str, Any]] | None = None,
                  size_s: int = 30, slide_s: int = 10) -> Check:
    """Check the sliding-window CTR exercise; the message names the first thing wrong."""
    needed = ("window_start", "window_end", "site", "clicks", "impressions", "ctr")
    problem = _common(result, needed)
    if problem:
        return Check(False, problem, result)
    records = exercise_records() if records is None else records
    want = expected_hop(records, size_s, slide_s)
    rows = result.records()
    lengths = {round(_epoch(r["window_end"]) - _epoch(r["window_start"])) for r in rows}
    if lengths != {size_s}:
        got = ", ".join(f"{x} s" for x in sorted(lengths))
        how = (f"TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '{size_s}' SECOND)"
               if size_s == slide_s else f"HOP takes the slide first and the size second "
               f"(INTERVAL '{slide_s}' SECOND, INTERVAL '{size_s}' SECOND)")
        return Check(False, f"Your windows are {got} long, not {size_s} s: {how}.", result)
    starts = sorted({_epoch(r["window_start"]) for r in rows})
    steps = {round(b - a) for a, b in zip(starts, starts[1:], strict=False)}
    if steps and min(steps) != slide_s:
        return Check(False, f"Your windows start every {min(steps)} s, not every {slide_s} s: "
                            f"the first interval of HOP is the slide ({slide_s} s).", result)
    got: dict[tuple[float, str], dict[str, Any]] = {}
    for r in rows:
        key = (_epoch(r["window_start"]), r["site"])
        if key in got:
            return Check(False, f"Window {_hhmmss(key[0])} of {key[1]} appears more than once: "
                                "GROUP BY window_start, window_end and site.", result)
        got[key] = r
    if set(got) != set(want):
        lost = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if lost:
            return Check(False, f"{len(lost)} window(s) are missing, such as {_hhmmss(lost[0][0])} "
                                f"of {lost[0][1]}: keep every site and every window (no "
                                "WHERE or HAVING that drops them).", result)
        return Check(False, f"{len(extra)} window(s) should not be there, such as "
                            f"{_hhmmss(extra[0][0])} of {extra[0][1]}: read FROM clicks, "
                            "the valid records only.", result)
    for key in sorted(want):
        clicks, imps = want[key]
        r = got[key]
        where = f"In the window from {_hhmmss(key[0])} of {key[1]}"
        if int(r["clicks"]) != clicks:
            return Check(False, f"{where} clicks is {r['clicks']}, expected {clicks}: count only "
                                "the rows with browseraction = 'Click' (COUNT(*) FILTER (WHERE "
                                "...)).", result)
        if int(r["impressions"]) != imps:
            return Check(False, f"{where} impressions is {r['impressions']}, expected {imps}: "
                                "count only the rows with browseraction = 'Impression'.", result)
        ctr = 100.0 * clicks / imps if imps else None
        got_ctr = r["ctr"]
        if ctr is None:
            if got_ctr is not None:
                return Check(False, f"{where} there are no impressions, so the CTR must be NULL "
                                    "(CASE WHEN impressions > 0 ...), not a number.", result)
            continue
        if got_ctr is None or abs(float(got_ctr) - ctr) > 1e-6 * max(1.0, ctr):
            hint = ("integer division: multiply by 100.0E0 first, so the division is in "
                    "floating point" if got_ctr is not None and float(got_ctr) == 100 * (
                        clicks // imps) else "compute 100.0E0 * clicks / impressions")
            return Check(False, f"{where} ctr is {got_ctr}, expected {ctr:.4g}: {hint}.", result)
    kind = (f"tumbling window(s) of {size_s} s" if size_s == slide_s else
            f"sliding windows of {size_s} s every {slide_s} s")
    return Check(True, f"Correct: {len(want)} {kind}, each window's counts and CTR exact.",
                 result)


def check_tumble_ctr(result: QueryResult, records: Sequence[Mapping[str, Any]] | None = None
                     ) -> Check:
    """Check the lab's own window: clicks, impressions and CTR per 10-s tumbling window."""
    return check_hop_ctr(result, records, size_s=10, slide_s=10)


def check_top_sites(result: QueryResult, records: Sequence[Mapping[str, Any]] | None = None,
                    n: int = 2, window_s: int = 60) -> Check:
    """Check the top-sites-per-minute exercise; the message names the first thing wrong."""
    problem = _common(result, ("window_start", "site", "clicks", "rn"))
    if problem:
        return Check(False, problem, result)
    records = exercise_records() if records is None else records
    want = expected_top(records, n, window_s)
    per: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in result.records():
        per[_epoch(r["window_start"])].append(r)
    off_grid = [w for w in per if w % window_s]
    if off_grid or not set(per) <= set(want):
        return Check(False, f"Your windows start at {_hhmmss(min(per))}, ... : use one-minute "
                            "tumbling windows, TUMBLE(TABLE clicks, DESCRIPTOR(event_time), "
                            "INTERVAL '1' MINUTE).", result)
    for w in sorted(want):
        rows = sorted(per.get(w, []), key=lambda r: int(r["rn"]))
        label = f"In the minute from {_hhmmss(w)}"
        if len(rows) > n:
            return Check(False, f"{label} you return {len(rows)} rows: keep only rn <= {n} in "
                                "an outer query (WHERE rn <= ...).", result)
        if len(rows) < n:
            return Check(False, f"{label} you return {len(rows)} row(s), expected {n}: rank "
                                "every site (PARTITION BY window_start, window_end) before "
                                "keeping the top ones.", result)
        got = [(r["site"], int(r["clicks"])) for r in rows]
        if [int(r["rn"]) for r in rows] != list(range(1, n + 1)):
            return Check(False, f"{label} rn is {[int(r['rn']) for r in rows]}, expected "
                                f"{list(range(1, n + 1))}: ROW_NUMBER() OVER (PARTITION BY "
                                "window_start, window_end ORDER BY clicks DESC).", result)
        if got != want[w]:
            want_counts = dict(want[w])
            wrong_count = [s for s, c in got if s in want_counts and want_counts[s] != c]
            if wrong_count:
                s = wrong_count[0]
                return Check(False, f"{label} {s} has {dict(got)[s]} clicks, expected "
                                    f"{want_counts[s]}: count only the rows with browseraction "
                                    "= 'Click'.", result)
            return Check(False, f"{label} the top sites are {', '.join(s for s, _ in want[w])}, "
                                f"you have {', '.join(s for s, _ in got)}: order by clicks "
                                "DESC (the most clicks first).", result)
    return Check(True, f"Correct: the top {n} sites of each of the {len(want)} minutes, with "
                       "their clicks.", result)


# ---------------------------------------------------------------------------------------------
# The exercises
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    """One exercise: the task, a query to start from, a solution and its checker."""

    name: str
    task: str
    starter: str
    solution: str
    checker: Callable[[QueryResult], Check]

    def check(self, result: QueryResult) -> Check:
        """The verdict for ``result`` (rows from Flink, or its error)."""
        return self.checker(result)


_TUMBLE_CTR = """\
-- The lab's windows (view 5 of sql/anomaly_detection.sql), shortened: change it.
SELECT
  window_start, window_end, site,
  COUNT(*) FILTER (WHERE browseraction = 'Click') AS clicks,
  COUNT(*) FILTER (WHERE browseraction = 'Impression') AS impressions,
  100.0E0 * COUNT(*) FILTER (WHERE browseraction = 'Click')
    / COUNT(*) FILTER (WHERE browseraction = 'Impression') AS ctr
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND))
GROUP BY window_start, window_end, site
"""

_HOP_SOLUTION = """\
SELECT
  window_start, window_end, site,
  COUNT(*) FILTER (WHERE browseraction = 'Click') AS clicks,
  COUNT(*) FILTER (WHERE browseraction = 'Impression') AS impressions,
  100.0E0 * COUNT(*) FILTER (WHERE browseraction = 'Click')
    / COUNT(*) FILTER (WHERE browseraction = 'Impression') AS ctr
FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND, INTERVAL '30' SECOND))
GROUP BY window_start, window_end, site
"""

_TOP_STARTER = """\
-- Clicks per site per minute; keep only the 2 sites with the most clicks in each minute.
SELECT window_start, site, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
WHERE browseraction = 'Click'
GROUP BY window_start, window_end, site
"""

_TOP_SOLUTION = """\
SELECT window_start, site, clicks, rn
FROM (
  SELECT window_start, site, clicks,
         ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY clicks DESC) AS rn
  FROM (
    SELECT window_start, window_end, site, COUNT(*) AS clicks
    FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
    WHERE browseraction = 'Click'
    GROUP BY window_start, window_end, site
  )
)
WHERE rn <= 2
"""

_TUMBLE_STARTER = """\
-- Count per site and 10-second tumbling window: clicks, impressions and the CTR in percent.
SELECT site, COUNT(*) AS records
FROM clicks
GROUP BY site
"""

EXERCISES: dict[str, Exercise] = {
    "tumble_ctr": Exercise(
        name="tumble_ctr",
        task=textwrap.fill(
              "The lab's window. Write the query that reports, per site and 10-second tumbling "
              "window on event time, the clicks, the impressions and the CTR in percent (100 x "
              "clicks / impressions), with the columns window_start, window_end, site, clicks, "
              "impressions, ctr. It runs on Flink over your own newest records.", 90),
        starter=_TUMBLE_STARTER,
        solution=_TUMBLE_CTR.split("\n", 1)[1],
        checker=check_tumble_ctr,
    ),
    "hop_ctr": Exercise(
        name="hop_ctr",
        task=textwrap.fill(
              "Sliding windows. The lab reports the CTR per 10-second tumbling window. Change "
              "the query below so that it reports the CTR over the last 30 seconds, every 10 "
              "seconds: a HOP (sliding) window of 30 s that slides by 10 s. Keep the columns "
              "window_start, window_end, site, clicks, impressions, ctr.", 90),
        starter=_TUMBLE_CTR,
        solution=_HOP_SOLUTION,
        checker=check_hop_ctr,
    ),
    "top_sites": Exercise(
        name="top_sites",
        task=textwrap.fill(
              "Top sites per minute. For every one-minute tumbling window, return the two "
              "sites with the most clicks, best first, with the columns window_start, site, "
              "clicks and rn (1 for the top site, 2 for the next). Hint: ROW_NUMBER() OVER "
              "(PARTITION BY window_start, window_end ORDER BY ...) in a subquery, then keep "
              "rn <= 2 outside it.", 90),
        starter=_TOP_STARTER,
        solution=_TOP_SOLUTION,
        checker=check_top_sites,
    ),
}


# ---------------------------------------------------------------------------------------------
# Running queries on Flink
# ---------------------------------------------------------------------------------------------


def run_queries(queries: Mapping[str, str], work_dir: Path | str | None = None,
                timeout: float = 600, records: Sequence[Mapping[str, Any]] | None = None
                ) -> dict[str, QueryResult]:
    """Run each query on Flink over the exercises' file (or ``records``, e.g. the student's
    own traffic), in ONE child process (one JVM start).

    Returns name -> QueryResult; a query Flink rejects gets its error text, the others still
    run. Raises AppError only when the child process itself fails.
    """
    from ..flinkenv import flink_env

    if not queries:
        raise ConfigError("No query to run", "give at least one query, e.g. "
                                             "{'mine': 'SELECT ...'}.")
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="sql-exercise-"))
    (work / "log").mkdir(parents=True, exist_ok=True)
    if records is None:
        data = write_exercise_file(work / "input" / "clicks.jsonl")
    else:
        from ..generate.timeline import write_jsonl

        data = work / "input" / "clicks.jsonl"
        write_jsonl(list(records), data)
    spec = work / "spec.json"
    out = work / "results.json"
    out.unlink(missing_ok=True)
    spec.write_text(json.dumps({"input": str(data), "work": str(work), "out": str(out),
                                "queries": dict(queries)}, indent=2))
    log = work / "log" / "sql-exercise.out"
    code = _run_with_progress(
        [sys.executable, "-m", "labhelpers.teach.sql_exercises", "--spec", str(spec)],
        flink_env(work), work, log, timeout,
        f"Flink: starting and running {len(queries)} quer{'y' if len(queries) == 1 else 'ies'}")
    if code != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise AppError(f"The SQL exercise job failed (exit {code}):\n{tail}",
                       f"read the log in {work / 'log'}; check Java with "
                       "`python -m labhelpers doctor`.")
    return {name: QueryResult(**r) for name, r in json.loads(out.read_text()).items()}


def _run_with_progress(cmd: list[str], env: dict[str, str], cwd: Path, log: Path,
                       timeout: float, what: str) -> int:
    """Run ``cmd`` with its output in ``log``, showing the seconds elapsed (a Flink start
    takes 15-30 s and the student must see that something is happening); returns the exit
    code. A run longer than ``timeout`` is killed."""
    from tqdm.auto import tqdm

    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh, tqdm(
            desc=what, unit="s", bar_format="{desc}: {n_fmt} s") as bar:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=str(cwd))
        while True:
            try:
                return proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                bar.n = round(time.monotonic() - started)
                bar.refresh()
                if time.monotonic() - started > timeout:
                    proc.kill()
                    proc.wait()
                    raise AppError(f"The SQL exercise job ran longer than {timeout:.0f} s",
                                   f"read the log {log}; free memory or CPU and run it "
                                   "again.") from None


def run(exercise: Exercise | str, query: str, work_dir: Path | str | None = None,
        records: Sequence[Mapping[str, Any]] | None = None) -> Check:
    """Run ``query`` for ``exercise`` (an Exercise or its name) on Flink and check it, over
    the exercises' file or ``records`` (then the answer is computed from those)."""
    if isinstance(exercise, str):
        if exercise not in EXERCISES:
            raise ConfigError(f"No SQL exercise {exercise!r}",
                              f"use one of {', '.join(EXERCISES)}.")
        exercise = EXERCISES[exercise]
    if not query or not query.strip():
        return Check(False, "The query is empty: write it between the triple quotes.")
    result = run_queries({exercise.name: query}, work_dir, records=records)[exercise.name]
    return exercise.checker(result, records) if records is not None else exercise.check(result)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return str(value)


def _child(spec_path: Path) -> int:
    """The child process: the lab's SQL (tables and views), then each query, rows to JSON."""
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from ..flinkenv import local_runtime
    from ..job.pipeline import JobSettings, filesystem_sink, filesystem_source
    from ..job.sqlfile import split_statements

    spec = json.loads(spec_path.read_text())
    work = Path(spec["work"])
    settings = JobSettings(
        input_connector=filesystem_source(spec["input"], continuous=False),
        scores_connector=filesystem_sink(work / "scores"),
        dead_letter_connector=filesystem_sink(work / "dead_letters"),
        runtime=local_runtime(work, checkpoint_interval="10min"),
    )
    conf = Configuration()
    for key, value in settings.runtime.items():
        conf.set_string(key, str(value))
    t_env = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build())
    t_env.get_config().set("table.local-time-zone", "UTC")
    # the lab's SQL as written: the job works the view checked_records out once and shares its
    # rows (job/pipeline.py, _share_checked); a query on its own reads it once anyway, so the
    # plain view serves here
    for statement in split_statements(settings.sql()):
        t_env.execute_sql(statement)
    results: dict[str, dict[str, Any]] = {}
    for name, query in spec["queries"].items():
        started = time.perf_counter()
        try:
            table = t_env.sql_query(query.strip().rstrip(";"))
            columns = list(table.get_schema().get_field_names())
            with table.execute().collect() as rows:
                data = [[_cell(v) for v in row] for row in rows]
            results[name] = {"columns": columns, "rows": data}
        except Exception as err:  # noqa: BLE001 - any Flink error is the student's feedback
            text = str(err)
            # Py4J wraps Flink's message; keep the first line that says something
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            useful = [ln for ln in lines if "Exception" in ln or "failed" in ln.lower()]
            results[name] = {"error": (useful or lines or [type(err).__name__])[0]}
        results[name]["seconds"] = round(time.perf_counter() - started, 2)
    Path(spec["out"]).write_text(json.dumps(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run SQL exercise queries on Flink.")
    parser.add_argument("--spec", type=Path, required=True)
    return _child(parser.parse_args(argv).spec)


if __name__ == "__main__":
    sys.exit(main())
