"""Strict loader for the lab's SQL file: fills known placeholders, fails on any other."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from .contracts import sql_values
from .errors import ConfigError


def _sql_dir() -> Path:
    """The package's own copy (labhelpers/_data/sql: a link in a checkout, files in a wheel);
    in the managed application's zip, sql/ beside the labhelpers package (packaging puts it
    there). Not through labhelpers.resources: the job imports nothing of the control code."""
    packaged = Path(str(files("labhelpers").joinpath("_data", "sql"))).resolve()
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "sql"


SQL_DIR = _sql_dir()
SQL_FILE = SQL_DIR / "anomaly_detection.sql"
PLACEHOLDERS = (
    "input_connector",
    "scores_connector",
    "dead_letter_connector",
    "window_seconds",
    "lateness_seconds",
    *sql_values(),  # the record rules' limits and reason words (labhelpers.job.contracts)
)
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def connector_options(options: Mapping[str, str]) -> str:
    """Render a connector's options as the body of a SQL ``WITH (...)`` clause."""
    if not options:
        raise ConfigError("A connector has no options", "give at least 'connector'.")

    def quote(text: object) -> str:
        return "'" + str(text).replace("'", "''") + "'"

    return ",\n  ".join(f"{quote(k)} = {quote(v)}" for k, v in options.items())


def render_sql(values: Mapping[str, object], path: Path = SQL_FILE) -> str:
    """Return the SQL text with every ``{{name}}`` replaced from ``values``.

    A placeholder in the file that ``values`` lacks, or a value the file does not use, is an
    error: the SQL a student reads is exactly the SQL that runs.
    """
    text = path.read_text(encoding="utf-8")
    used = set(_PLACEHOLDER_RE.findall(text))
    missing = used - set(values)
    if missing:
        raise ConfigError(
            f"{path.name} has placeholder(s) with no value: {', '.join(sorted(missing))}",
            f"fill only these placeholders in the SQL: {', '.join(PLACEHOLDERS)}.",
        )
    unused = set(values) - used
    if unused:
        raise ConfigError(
            f"{path.name} does not use value(s) {', '.join(sorted(unused))}",
            "put the placeholder back in the SQL file or stop passing the value.",
        )
    return _PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]), text)


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements on ';' at line ends, dropping comment-only parts."""
    statements = []
    for part in re.split(r";\s*(?:\n|$)", sql):
        body = "\n".join(ln for ln in part.splitlines() if not ln.strip().startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements
