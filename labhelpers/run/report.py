"""The one-page report of a headless run (``make run``): ``report.html`` in the run folder.

An instructor opens it before a class to see that the lab works on this machine: a verdict,
the checks behind it, the figures from ``summary.json``, how long each notebook took, and the
saved plots. The plots are embedded, so the page can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_FILE = "report.html"
# What the lab promises its students: the alert at most this long after the end of the first
# anomalous window (the notebook tests check the same bar: tests/test_notebooks.py)
MAX_ALERT_LATENCY_S = 20.0

# Plots in the order a student meets them; any other PNG in the run folder follows.
PLOT_CAPTIONS = {
    "scores.png": "Notebook 04: CTR and anomaly score per window, threshold and flagged windows",
    "evaluation_scenarios.png": "Notebook 06: the labelled scenarios, found and missed",
    "evaluation_scores.png": "Notebook 06: scores over the scenarios",
    "evaluation_grid.png": "Notebook 06: the parameter grid behind the defaults",
}


@dataclass(frozen=True)
class Check:
    """One pass/fail line of the report."""

    name: str
    passed: bool
    detail: str


def checks(summary: dict[str, Any]) -> list[Check]:
    """What must hold for the lab to be ready for a class, from a run's summary."""
    v = summary.get("values") or {}
    latency = v.get("alert_latency_s")
    leftovers = v.get("leftovers")
    return [
        Check("every notebook ran", bool(summary.get("ok")),
              "all notebooks ran" if summary.get("ok")
              else f"stopped at {summary.get('failed')}"),
        Check("traffic was sent", (summary.get("records_sent") or 0) > 0,
              f"{summary.get('records_sent')} records"),
        Check("the app scored windows", (summary.get("windows_scored") or 0) > 0,
              f"{summary.get('windows_scored')} windows"),
        Check("the spike was flagged", (summary.get("anomalies") or 0) >= 1,
              f"{summary.get('anomalies')} anomalous windows"),
        Check("exactly one alert arrived", summary.get("alerts_received") == 1,
              f"{summary.get('alerts_received')} alert"
              f"{'' if summary.get('alerts_received') == 1 else 's'}"),
        Check(f"alert within {MAX_ALERT_LATENCY_S:g} s",
              latency is not None and latency <= MAX_ALERT_LATENCY_S,
              "no alert" if latency is None else f"{latency} s after the window closed"),
        Check("cleanup left nothing", leftovers == [],
              "nothing left" if leftovers == [] else f"left: {leftovers}"),
    ]


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _plots(run: Path) -> list[Path]:
    found = {p.name: p for p in run.glob("*.png")}
    ordered = [found.pop(name) for name in PLOT_CAPTIONS if name in found]
    return ordered + sorted(found.values())


def _row(*cells: Any, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}
.verdict{padding:.6em 1em;border-radius:6px;color:#fff;font-size:1.3em}
.pass{background:#2e7d32}.fail{background:#c62828}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left}td.ok{color:#2e7d32}td.bad{color:#c62828;font-weight:bold}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555}
"""


_KERNEL_NOTE = ("<p>Each notebook's kernel at its largest: JupyterLab keeps a kernel running "
                "until it is shut down, so on a shared server shut down the kernels of the "
                "notebooks you are done with.</p>")


def render(run: Path, summary: dict[str, Any]) -> str:
    """The report's HTML for the run folder ``run`` and its ``summary``."""
    results = checks(summary)
    ok = all(c.passed for c in results)
    check_rows = "".join(
        f"<tr><td class='{'ok' if c.passed else 'bad'}'>{'✔' if c.passed else '✘'}</td>"
        f"<td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in results)
    v = summary.get("values") or {}
    figures = [(k, v[k]) for k in sorted(v) if not isinstance(v[k], dict | list)]
    kernel_mb = summary.get("kernel_mb") or {}
    timing_rows = "".join(
        _row(nb, f"{s:.0f} s" + (f", its kernel {kernel_mb[nb]} MB" if nb in kernel_mb else ""))
        for nb, s in (summary.get("notebook_seconds") or {}).items())
    notebooks = " · ".join(f"<a href='{html.escape(p.name)}'>{html.escape(p.name)}</a>"
                           for p in sorted(run.glob("[0-9][0-9]_*.ipynb")))
    plots = "".join(
        f"<figure>{_img(p)}<figcaption>{html.escape(PLOT_CAPTIONS.get(p.name, p.name))}"
        "</figcaption></figure>" for p in _plots(run))
    verdict = ("The lab works on this machine." if ok
               else "The lab is NOT ready: see the failed checks below.")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Clickstream lab run {html.escape(run.name)}</title><style>{_STYLE}</style></head><body>
<h1>Clickstream anomaly lab: run record {html.escape(run.name)}</h1>
<p class="verdict {'pass' if ok else 'fail'}">{'PASS' if ok else 'FAIL'}: {verdict}</p>
<h2>Checks</h2><table>{check_rows}</table>
<h2>Figures</h2><table>{_row('value', 'recorded', head=True)}
{''.join(_row(k, val) for k, val in figures)}</table>
<h2>Time{' and memory' if kernel_mb else ''}</h2>{_KERNEL_NOTE if kernel_mb else ''}
<table>{timing_rows}{_row('whole run', f"{summary.get('seconds') or 0:.0f} s")}
</table>
<p>Executed notebooks (open in JupyterLab): {notebooks or 'none'}</p>
<h2>Plots</h2>{plots or '<p>No plots were saved.</p>'}
</body></html>"""


def write_report(run_dir: Path | str) -> Path:
    """Write ``report.html`` for the run folder (which holds ``summary.json``); return it."""
    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    out = run / REPORT_FILE
    out.write_text(render(run, summary))
    return out
