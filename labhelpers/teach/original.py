"""The original lab beside the new one: its SQL, today's SQL, the differences, and the code
that replaced ``RANDOM_CUT_FOREST``.

``sql/original_kda_lab.sql`` re-writes the original Kinesis Data Analytics SQL application
from its description (it runs nowhere: the service is gone); ``sql/anomaly_detection.sql``
is the file the lab's job runs. ``forest_excerpt()`` reads the few lines of the job that feed
each window to its site's forest straight from the job's source, by name, so the excerpt a
student reads is always the code that runs.
"""

from __future__ import annotations

import ast
import html
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..job.sqlfile import SQL_DIR

ORIGINAL_SQL_FILE = SQL_DIR / "original_kda_lab.sql"
NEW_SQL_FILE = SQL_DIR / "anomaly_detection.sql"

# aspect, the original application, this lab's application
DIFFERENCES: tuple[tuple[str, str, str], ...] = (
    ("time of a window",
     "ROWTIME: when KDA received the record; a delayed or replayed record lands in another "
     "window",
     "event_time written in the record by the generator, with a WATERMARK allowing records "
     "up to LATENESS_SECONDS late: a replay gives the same windows"),
    ("windows",
     "GROUP BY STEP(ROWTIME BY INTERVAL '10' SECOND), one count per stream",
     "TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND), per site"),
    ("clicks and impressions",
     "two streams of counts joined with an INNER join: a window with no clicks (or no "
     "impressions) has no partner and is dropped, so a CTR collapse to 0 % is never scored",
     "one aggregate with COUNT(*) FILTER (WHERE ...) for each action: a window with "
     "impressions and no clicks has CTR 0 and is scored; no impressions gives CTR NULL"),
    ("sites",
     "none: all sites are counted together, one forest for the whole stream",
     "GROUP BY site, and one forest per site in Flink keyed state"),
    ("bad records",
     "the schema was discovered in the console from a few live records; nothing in the "
     "lab's SQL deals with a record that does not fit it",
     "each line is read as text; a bad line goes to the dead letters with its reason and "
     "never stops the job"),
    ("the model",
     "RANDOM_CUT_FOREST(CURSOR(SELECT STREAM ctr ...), 100, 12, 100000, 1) inside the SQL; "
     "its point is the CTR % alone (the preset 'original-lab' re-creates it)",
     "krcf's Random Cut Forest in a keyed PyFlink function after the SQL (100 trees, "
     "subsample 64, 12 warm-up windows); its point is the noise-stabilised counts (notebook "
     "06 shows why)"),
    ("state across restarts",
     "kept by the service; the lab never shows or explains it",
     "the forests are in Flink state: checkpoints every 2 s, a restart resumes each forest "
     "where it was"),
    ("anomaly and alert",
     "every row scoring above 2 went to the Lambda: one e-mail and one SMS per row, so a "
     "spike flooded the inbox",
     "a window is flagged by the forest's score above THRESHOLD (3.5 by default) or by the "
     "run rule (a CUSUM of counts off their usual level, notebook 04); the alert function "
     "sends one message per episode of consecutive anomalous windows"),
)


def original_sql() -> str:
    """The original application's SQL, as re-written in ``sql/original_kda_lab.sql``."""
    return ORIGINAL_SQL_FILE.read_text(encoding="utf-8")


def new_sql() -> str:
    """The SQL this lab's job runs (with its ``{{placeholders}}``)."""
    return NEW_SQL_FILE.read_text(encoding="utf-8")


def _source_segment(path: Path, names: tuple[str, ...]) -> tuple[str, int]:
    """Source of the definition found by walking ``names`` (e.g. ("_make_scorer",
    "ForestScorer", "on_timer")) in ``path``; returns (text, first line number)."""
    text = path.read_text(encoding="utf-8")
    node: ast.AST = ast.parse(text)
    for name in names:
        found = None
        for child in ast.walk(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)) and child.name == name:
                found = child
                break
        if found is None:
            raise ConfigError(f"{path.name} has no definition {'.'.join(names)} (no {name!r})",
                              "update labhelpers/teach/original.py to the job's new names.")
        node = found
    segment = ast.get_source_segment(text, node)
    if segment is None:  # pragma: no cover - ast always has positions for parsed text
        raise ConfigError(f"No source for {'.'.join(names)} in {path.name}",
                          "reinstall the lab (the job's source file is damaged).")
    col = node.col_offset  # type: ignore[attr-defined]
    # get_source_segment drops the first line's indent only: put it back, then dedent all
    return textwrap.dedent(" " * col + segment), node.lineno  # type: ignore[attr-defined]


def _lines_between(text: str, start: str, end: str) -> str:
    lines = text.splitlines()
    try:
        a = next(i for i, ln in enumerate(lines) if start in ln)
        b = next(i for i in range(a, len(lines)) if end in lines[i])
    except StopIteration:
        raise ConfigError(f"The job's build() no longer has the lines {start!r} ... {end!r}",
                          "update labhelpers/teach/original.py to the job's new code.") from None
    # keep the closing bracket of a chained expression
    if b + 1 < len(lines) and lines[b + 1].strip() == ")":
        b += 1
    return "\n".join(lines[a:b + 1])


@dataclass(frozen=True, repr=False)
class Excerpt:
    """Two excerpts of the job: where windows go to the forest, and what it does with each."""

    path: Path
    wiring: str
    wiring_line: int
    scorer: str
    scorer_line: int

    def text(self) -> str:
        """Both excerpts as plain text with where they come from."""
        return (f"# {self.path.name}, build() (line {self.wiring_line}): each window row of "
                "the SQL goes to its site's forest\n"
                f"{self.wiring}\n\n"
                f"# {self.path.name}, ForestScorer.on_timer (line {self.scorer_line}): "
                "one window of one site\n"
                f"{self.scorer}\n")

    def __str__(self) -> str:
        return self.text()

    # the plain-text form of the notebook's output: no machine path in it (nbval compares it)
    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre style='font-size:85%'>{html.escape(self.text())}</pre>"


def forest_excerpt() -> Excerpt:
    """The job's code that replaced ``RANDOM_CUT_FOREST``, read from the job by name."""
    from ..job import pipeline as job

    path = Path(inspect.getsourcefile(job) or "")
    build_src, build_line = _source_segment(path, ("build",))
    wiring = _lines_between(build_src, "to_data_stream", '.name("random_cut_forest")')
    offset = build_src.splitlines().index(wiring.splitlines()[0])
    wiring = textwrap.dedent(wiring)
    # the window's row waits for its event-time timer; the timer scores it with the forest
    scorer, scorer_line = _source_segment(path, ("_make_scorer", "ForestScorer", "on_timer"))
    return Excerpt(path, wiring, build_line + offset, scorer, scorer_line)


@dataclass(frozen=True)
class SideBySide:
    """The original SQL and today's, in two columns, and the differences as a table."""

    original: str
    new: str
    differences: tuple[tuple[str, str, str], ...]
    show_new: bool = True  # False: the notebook printed today's SQL already (print it once)

    def _repr_html_(self) -> str:
        pre = ("<pre style='font-size:75%;white-space:pre;overflow:auto;max-height:36em;"
               "margin:0'>{}</pre>")
        rows = "".join(
            f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(a)}</th>"
            f"<td style='text-align:left;vertical-align:top'>{html.escape(o)}</td>"
            f"<td style='text-align:left;vertical-align:top'>{html.escape(n)}</td></tr>"
            for a, o, n in self.differences)
        if not self.show_new:
            return (
                "<div><b>The original (KDA SQL, 2019; runs nowhere today): "
                f"sql/original_kda_lab.sql</b>{pre.format(html.escape(self.original))}</div>"
                "<p>Today's SQL is the file printed above (sql/anomaly_detection.sql).</p>"
                "<table style='margin-top:1em'><tr><th style='text-align:left'>what</th>"
                "<th style='text-align:left'>the original</th><th style='text-align:left'>"
                f"this lab</th></tr>{rows}</table>")
        return (
            "<div style='display:flex;gap:1em;align-items:flex-start'>"
            "<div style='flex:1;min-width:0'><b>The original (KDA SQL, 2019; runs nowhere "
            f"today): sql/original_kda_lab.sql</b>{pre.format(html.escape(self.original))}"
            "</div><div style='flex:1;min-width:0'><b>This lab (Flink SQL, runs in the job): "
            f"sql/anomaly_detection.sql</b>{pre.format(html.escape(self.new))}</div></div>"
            "<table style='margin-top:1em'><tr><th style='text-align:left'>what</th>"
            "<th style='text-align:left'>the original</th><th style='text-align:left'>this "
            f"lab</th></tr>{rows}</table>")

    def text(self) -> str:
        """The differences as plain text (for a terminal)."""
        return "\n".join(f"- {a}: original: {o}; now: {n}" for a, o, n in self.differences)

    def __str__(self) -> str:
        return self.text()


def side_by_side(show_new: bool = True) -> SideBySide:
    """The original SQL beside ``sql/anomaly_detection.sql`` with the differences named
    (``show_new`` False: the original and the differences only)."""
    return SideBySide(original_sql(), new_sql(), DIFFERENCES, show_new)
