"""The committed reference run (``docs/reference-run``): a short run of the whole lab, kept as
"what you should see" for students and as what ``pytest --nbval-lax`` checks a fresh run
against (the cells tagged ``nbval-check-output``; see tests/test_notebooks.py).

Its notebooks are the executed notebooks of ``run_lab`` with two changes: the injected
``RUN_DIR`` is emptied (a fresh run then keeps its record in its own lab home, as by hand)
and the machine's temporary paths read ``~/.clicklab``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from unittest import mock

from ..errors import LabError
from ..infra.config import REPO_ROOT
from .headless import lab_notebooks, run_lab

REFERENCE_DIR = REPO_ROOT / "docs" / "reference-run"
REFERENCE_PREFIX = "nblab"
# Short runs: 5-s windows halve the wait before the spike; what limits the spike's score is
# how many windows the forest has learned (24 here, 20 in the lab), not their length. A 10-s
# spike covers 2-3 such windows, like the lab's 20-s spike with 10-s windows. The SQL
# exercises run in tests/test_teach_sql_exercises.py.
REFERENCE_PARAMETERS = {"WINDOW_SECONDS": 5, "LEARNED_WINDOWS": 24, "SPIKE_SECONDS": 10,
                        "RUN_SQL_EXERCISES": False}
SHOWN_HOME = "~/.clicklab"
INJECTED = "injected-parameters"  # papermill's tag on the cell it adds


README = """# What you should see: a reference run of the lab

These are the lab's notebooks as one short headless run executed them (`make reference-run`,
local backend, live traffic), with what each cell printed and drew, the run's `report.html`,
`summary.json` and plots. Open them in JupyterLab or on the forge to compare with your own run.

They differ from a run with the notebooks' defaults in a few parameters (papermill's cell
"Parameters" below each notebook's own): {parameters}. So windows are 5 s long instead of
10 s, and the two SQL exercises of 03 did not run. Scores, times and counts differ from run
to run; the shape of the output does not.

`make test` runs these notebooks again with `pytest --nbval-lax` (tests/test_notebooks.py):
every cell must run, and the cells tagged `nbval-check-output` must print what they printed
here (times, ports and paths aside: tests/nbval_sanitize.cfg). After changing a notebook,
run `make reference-run` and commit this folder with the change.
"""


def _cells(book: Path) -> list[dict]:
    return json.loads(book.read_text())["cells"]


def stale_notebooks(ref_dir: Path = REFERENCE_DIR) -> list[str]:
    """Notebooks whose reference copy is missing or whose cells' sources differ from
    ``notebooks/`` (papermill's injected cell aside): regenerate with ``make reference-run``."""
    stale = []
    for book in lab_notebooks():
        ref = ref_dir / book.name
        if not ref.exists():
            stale.append(book.name)
            continue
        mine = [(c["cell_type"], "".join(c["source"])) for c in _cells(book)]
        theirs = [(c["cell_type"], "".join(c["source"])) for c in _cells(ref)
                  if INJECTED not in c.get("metadata", {}).get("tags", [])]
        if mine != theirs:
            stale.append(book.name)
    return stale


def _relocate(text: str, paths: dict[str, str]) -> str:
    for old, new in paths.items():
        text = text.replace(old, new)
    return text


def _empty_run_dir(book: Path) -> None:
    nb = json.loads(book.read_text())
    for cell in nb["cells"]:
        if INJECTED in cell.get("metadata", {}).get("tags", []):
            source = re.sub(r'^RUN_DIR = .*$', 'RUN_DIR = ""', "".join(cell["source"]),
                            flags=re.M)
            cell["source"] = source.splitlines(keepends=True)
    nb.get("metadata", {}).get("papermill", {}).get("parameters", {}).pop("RUN_DIR", None)
    book.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def make_reference_run(out: Path = REFERENCE_DIR) -> Path:
    """Run the whole lab headless with the reference parameters in a throw-away lab home and
    keep its notebooks, plots, summary and report in ``out`` (replaced)."""
    with tempfile.TemporaryDirectory(prefix="clicklab-reference-") as tmp:
        home, run = Path(tmp) / "home", Path(tmp) / "run"
        # the kernels inherit this environment; patch.dict puts it back as it was
        with mock.patch.dict(os.environ, LAB_HOME=str(home), LAB_PREFIX=REFERENCE_PREFIX):
            os.environ.pop("LAB_EMULATOR_PORT", None)  # the home's own port
            run_lab(run, parameters=REFERENCE_PARAMETERS)
        summary = json.loads((run / "summary.json").read_text())
        if not summary["ok"]:
            raise LabError(f"the reference run failed: {summary['failed']}",
                           f"see the executed notebooks in {run}; nothing was replaced.")
        paths = {str(run.resolve()): f"{SHOWN_HOME}/runs/reference", str(run): f"{SHOWN_HOME}"
                 "/runs/reference", str(home.resolve()): SHOWN_HOME, str(home): SHOWN_HOME,
                 f"{REPO_ROOT}/": ""}  # the repository's files by their relative paths
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for f in sorted(run.iterdir()):
            if f.suffix in (".ipynb", ".html", ".json"):
                (out / f.name).write_text(_relocate(f.read_text(), paths))
            elif f.suffix == ".png":
                shutil.copy2(f, out / f.name)
        for book in out.glob("*.ipynb"):
            _empty_run_dir(book)
        params = ", ".join(f"`{k} = {v!r}`" for k, v in REFERENCE_PARAMETERS.items())
        (out / "README.md").write_text(README.format(parameters=params))
    return out
