"""How long the lab takes by hand: a walk-through timed in a real browser, per notebook.

    .venv/bin/python bench/walkthrough_times.py [--notebooks 00 01 ...] [--out FILE.json]

MEASURED: JupyterLab in headless Chromium (Playwright, Debian's chromium) runs every code
cell of each notebook one at a time, as Shift+Enter does, with the notebooks' own defaults
(10-s windows, 20 learned windows, the SQL exercises' Flink runs), in a throw-away lab home;
per notebook: the seconds a student waits for cells (``wait``).

ESTIMATED from the notebooks' text, with the rates stated here (not measured on people):
reading markdown at READ_WPM words per minute and code at CODE_S_PER_LINE per line
(``read``), LOOK_S per figure or plot shown (``look``), SELFCHECK_MIN per self-check
question (``check``), TASK_MIN per checked task (``tasks``: writing one, part of the lab);
``core`` is read + look + wait + check + tasks. The exercises come on top:
EXERCISE_MIN per exercise, SQL_EXERCISE_MIN per SQL exercise (``exercises``). A student who
reads while a cell runs needs less; one who tries every exercise twice, more.

Writes docs/walkthrough.json and prints a table; the notebooks' "Time:" lines, the README and
INSTRUCTOR.md quote it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labhelpers.run.headless import lab_notebooks  # noqa: E402
from tests.browser_lab import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    JupyterLab,
    Lab,
    prepare,
)

READ_WPM = 200  # technical prose on screen
CODE_S_PER_LINE = 4
LOOK_S = 20
EXERCISE_MIN = 3.0
SQL_EXERCISE_MIN = 6.0
SELFCHECK_MIN = 0.5
TASK_MIN = 4.0  # writing and re-running one checked task ("Your turn (checked)"), in the core
PREFIX = "walk"

# Run one code cell as Shift+Enter does and wait for it (JupyterLab resolves the command when
# the kernel has answered); returns the seconds and whether it succeeded.
JS_RUN_CELL = """async ([path, index]) => {
  const app = window.jupyterapp, w = window.__lab[path];
  app.shell.activateById(w.id);
  w.content.activeCellIndex = index;
  const t0 = performance.now();
  const ok = await app.commands.execute('notebook:run-cell');
  return [(performance.now() - t0) / 1000, ok];
}"""
JS_FIGURES = """(path) => {
  const cells = window.__lab[path].content.model.cells;
  let n = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let j = 0; j < c.outputs.length; j++)
      if ((c.outputs.get(j).toJSON().data || {})['image/png']) n++;
  }
  return n;
}"""


def _numbered_items(text: str) -> int:
    return len(re.findall(r"^\*\*\d+\.", text, flags=re.M))


def text_estimate(book: Path, figures: int) -> dict[str, float]:
    """Minutes to read, look and do for one notebook, from its cells (the rates above) and
    the number of figures it showed."""
    cells = json.loads(book.read_text())["cells"]
    words = code_lines = exercises = sql_exercises = questions = tasks = 0
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            words += len(re.findall(r"\w+", re.sub(r"<[^>]+>|`", " ", text)))
            tasks += len(re.findall(r"^#+ .*Your turn \(checked\)", text, flags=re.M))
            if text.startswith("## Self-check"):
                questions += _numbered_items(text)
            elif text.startswith("## Exercises 3 and 4"):
                sql_exercises += 2
            elif text.startswith("## Exercises"):
                exercises += _numbered_items(text)
        else:
            code_lines += sum(1 for ln in text.splitlines()
                              if ln.strip() and not ln.lstrip().startswith("#"))
    return {
        "words": words, "code_lines": code_lines, "figures": figures,
        "exercises": exercises, "sql_exercises": sql_exercises, "questions": questions,
        "tasks": tasks, "tasks_min": round(tasks * TASK_MIN, 1),
        "read_min": round(words / READ_WPM + code_lines * CODE_S_PER_LINE / 60, 1),
        "look_min": round(figures * LOOK_S / 60, 1),
        "selfcheck_min": round(questions * SELFCHECK_MIN, 1),
        "exercises_min": round(exercises * EXERCISE_MIN + sql_exercises * SQL_EXERCISE_MIN, 1),
    }


def run_in_browser(books: list[Path], work: Path) -> dict[str, dict]:
    """Run each notebook's code cells one by one in JupyterLab; per notebook the seconds
    waited and the slowest cells."""
    from playwright.sync_api import sync_playwright

    from labhelpers.infra.config import load_config
    from labhelpers.run.cleanup import cleanup

    served, home = work / "notebooks", work / "home"
    served.mkdir()
    env = {**os.environ, "LAB_HOME": str(home), "LAB_PREFIX": PREFIX, "PYTHONUNBUFFERED": "1"}
    for name in ("LAB_EMULATOR_PORT", "LAB_BACKEND", "LAB_EMULATED"):
        env.pop(name, None)
    for book in books:
        prepare(book.name, served, {})
    jupyter = JupyterLab(served, work, env)
    results: dict[str, dict] = {}
    pw = browser = None
    try:
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        lab = Lab(page, [], work)
        jupyter.wait_ready()
        page.goto(f"{jupyter.url}/lab?token={jupyter.token}")
        page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
        for book in books:
            t0 = time.monotonic()
            lab.open(book.name)
            cells = json.loads((served / book.name).read_text())["cells"]
            per_cell = []
            for i, cell in enumerate(cells):
                if cell["cell_type"] != "code":
                    continue
                seconds, _ = page.evaluate(JS_RUN_CELL, [book.name, i])
                lab.check_errors(book.name)
                per_cell.append((round(seconds, 1), cell.get("id", str(i))))
            waited = sum(s for s, _ in per_cell)
            results[book.name] = {"figures": page.evaluate(JS_FIGURES, book.name),
                "wait_s": round(waited, 1), "open_and_run_s": round(time.monotonic() - t0, 1),
                "slowest_cells": sorted(per_cell, reverse=True)[:3]}
            print(f"[walk-through] {book.name}: waited {waited:.0f} s for "
                  f"{len(per_cell)} cells", flush=True)
    finally:
        for closer in (lambda: browser.close(), lambda: pw.stop()):
            with contextlib.suppress(Exception):
                closer()
        jupyter.stop()
        cleanup(load_config(home=home, prefix=PREFIX), progress=False)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notebooks", nargs="*", help="two-digit numbers; default: all")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "walkthrough.json")
    args = ap.parse_args()
    books = [b for b in lab_notebooks() if not args.notebooks or b.name[:2] in args.notebooks]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as tmp:
        measured = run_in_browser(books, Path(tmp))
    rows = {}
    for book in books:
        est = text_estimate(book, measured[book.name]["figures"])
        wait_min = measured[book.name]["wait_s"] / 60
        core = (est["read_min"] + est["look_min"] + est["selfcheck_min"] + est["tasks_min"]
                + wait_min)
        rows[book.name] = {**est, **measured[book.name], "wait_min": round(wait_min, 1),
                           "core_min": round(core),
                           "with_exercises_min": round(core + est["exercises_min"])}
    lab = [r for n, r in rows.items() if not n.startswith("06")]
    totals = {"core_min": sum(r["core_min"] for r in lab),
              "with_exercises_min": sum(r["with_exercises_min"] for r in lab)}
    result = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - started),
        "rates": {"read_wpm": READ_WPM, "code_s_per_line": CODE_S_PER_LINE, "look_s": LOOK_S,
                  "exercise_min": EXERCISE_MIN, "sql_exercise_min": SQL_EXERCISE_MIN,
                  "selfcheck_min": SELFCHECK_MIN, "task_min": TASK_MIN},
        "notebooks": rows, "total_00_to_05": totals}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'minutes':24} {'read':>5} {'look':>5} {'wait':>5} {'check':>5} {'core':>5} "
          f"{'exerc.':>6} {'all':>5}")
    for name, r in rows.items():
        print(f"{name:24} {r['read_min']:5.1f} {r['look_min']:5.1f} {r['wait_min']:5.1f} "
              f"{r['selfcheck_min']:5.1f} {r['core_min']:5d} {r['exercises_min']:6.1f} "
              f"{r['with_exercises_min']:5d}")
    print(f"00-05 in all: {totals['core_min']} min, {totals['with_exercises_min']} with every "
          f"exercise (06 is optional); written to {args.out}")


if __name__ == "__main__":
    main()
