"""One page for a class: every student's run folder in one table.

``python -m labhelpers class-report RUN_DIR... --out class.html`` reads each run folder (the
one notebook 00 makes under ``<LAB_HOME>/runs/``, or a headless run's) and writes a table:
steps finished (the notebooks whose check passed: each records its values only after its
asserts), the checked tasks' verdicts, the predictions typed in, the alert's latency. A folder
that is not a run folder (no ``values.json``) stops it with a clear message.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .report import MAX_ALERT_LATENCY_S

VERDICT_KEY = "exercise_"  # values.json keys of the checked tasks' verdicts: exercise_<task>
PREDICTION_KEY = "prediction_"  # values.json keys of typed predictions: prediction_<name>
# A notebook's step is finished when its check cell recorded this value (after its asserts).
STEP_KEYS = {"00": "emulator_running", "01": "stack_outputs", "02": "records_sent_at_02",
             "03": "windows_scored_at_03", "04": "alerts_received", "05": "leftovers"}


def read_run(folder: Path | str) -> dict[str, Any]:
    """What the class report needs from one run folder; ConfigError if it is not one."""
    folder = Path(folder)
    values_file = folder / "values.json"
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder",
                          "give the run folders (under <LAB_HOME>/runs/ or runs/).")
    if not values_file.exists():
        raise ConfigError(f"{folder} is not a run folder: it has no values.json",
                          "give the folders notebook 00 made under <LAB_HOME>/runs/ (one per "
                          "student), or headless runs' folders under runs/.")
    try:
        values = json.loads(values_file.read_text())
    except ValueError as err:
        raise ConfigError(f"{values_file} is not valid JSON ({err})",
                          "the run was cut off while writing: run that notebook's check "
                          "cell again.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{values_file} holds no values", "run notebook 00 again.")
    steps = [nb for nb, key in STEP_KEYS.items() if key in values]
    verdicts = {k[len(VERDICT_KEY):]: v for k, v in values.items()
                if k.startswith(VERDICT_KEY) and isinstance(v, dict)}
    predictions = {k[len(PREDICTION_KEY):]: v for k, v in values.items()
                   if k.startswith(PREDICTION_KEY)}
    latency = values.get("alert_latency_s")
    return {"run": folder.name, "student": values.get("prefix") or folder.name,
            "steps": steps, "verdicts": verdicts, "predictions": predictions,
            "alert_latency_s": latency, "max_score": values.get("max_score"),
            "leftovers": values.get("leftovers")}


def _cell(text: str, ok: bool | None = None) -> str:
    colour = {True: "#1a7f37", False: "#b35900", None: "inherit"}[ok]
    return f"<td style='color:{colour}'>{text}</td>"


def class_report(folders: list[Path | str], out: Path | str) -> Path:
    """Write the class's one-page HTML report of ``folders``; returns its path."""
    if not folders:
        raise ConfigError("No run folder given", "name one or more run folders.")
    runs = [read_run(f) for f in folders]
    tasks = sorted({t for r in runs for t in r["verdicts"]})
    preds = sorted({p for r in runs for p in r["predictions"]})
    head = (["student", "run", "steps finished"] + [f"task {t}" for t in tasks]
            + [f"prediction {p}" for p in preds] + ["alert latency (s)", "spike score"])
    rows = []
    for r in runs:
        cells = [_cell(html.escape(str(r["student"]))), _cell(html.escape(r["run"])),
                 _cell(f"{len(r['steps'])}/{len(STEP_KEYS)}: {', '.join(r['steps']) or '-'}",
                       len(r["steps"]) == len(STEP_KEYS))]
        for t in tasks:
            v = r["verdicts"].get(t)
            cells.append(_cell("-") if v is None else _cell(
                f"{'done' if v.get('ok') else 'not yet'}: {html.escape(str(v.get('message')))}",
                bool(v.get("ok"))))
        for p in preds:
            value = r["predictions"].get(p)
            cells.append(_cell("-" if value in (None, "") else html.escape(str(value))))
        lat = r["alert_latency_s"]
        cells.append(_cell("-") if lat is None else _cell(f"{lat}",
                                                           float(lat) <= MAX_ALERT_LATENCY_S))
        score = r["max_score"]
        cells.append(_cell("-" if score is None else f"{float(score):.2f}"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    done = sum(len(r["steps"]) == len(STEP_KEYS) for r in runs)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Clickstream lab: class "
        "report</title><style>body{font-family:sans-serif}td,th{border:1px solid #ccc;"
        "padding:3px 6px;vertical-align:top;font-size:13px}table{border-collapse:collapse}"
        "</style></head><body><h1>Clickstream anomaly lab: class report</h1>"
        f"<p>{len(runs)} run folder(s); {done} finished every step (00-05). Steps: a "
        "notebook counts once its check passed. Tasks: the checker's verdict of each checked "
        "task. Alert latency: from the end of the first anomalous window to the alert in the "
        f"inbox (target at most {MAX_ALERT_LATENCY_S:g} s).</p>"
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
        + "".join(rows) + "</table></body></html>")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
