"""Export the lab's streams to files: the input stream as JSON lines, the scores as CSV.

``python -m labhelpers export input OUT.jsonl`` and ``... export scores OUT.csv`` (other
tools and checks depend on these two commands and their formats exactly).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..job.contracts import SCORE_COLUMNS

# The first columns are the replay's (contracts.REPLAY_CSV_COLUMNS); the rest follow.
SCORES_CSV_COLUMNS = SCORE_COLUMNS


def export_input(lab: Any, out: Path | str) -> dict[str, Any]:
    """Every record of the input stream of ``lab`` (a backend: ``backend_for(cfg)``), one
    JSON object a line, in stream order.

    Lines that are not a JSON object (the stream also carries garbage, which the app sets
    aside) are written as ``{"line": <text>}`` so every output line is an object."""
    lines = lab.input_lines(None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            fh.write((line if isinstance(obj, dict) else json.dumps({"line": line})) + "\n")
            n += 1
    tmp.replace(out)
    return {"stream": lab.cfg.input_stream, "records": n, "out": str(out)}


def export_scores(lab: Any, out: Path | str) -> dict[str, Any]:
    """Every row the app of ``lab`` (a backend) wrote to the scores stream, as CSV, ordered
    by window then site."""
    rows = lab.scores()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: (r["window_start"], r["site"]))
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SCORES_CSV_COLUMNS)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r[c] for c in SCORES_CSV_COLUMNS])
    tmp.replace(out)
    return {"stream": lab.cfg.scores_stream, "rows": len(rows), "out": str(out)}
