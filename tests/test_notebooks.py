"""The notebooks: committed clean, papermill reads their parameters, and a fresh run of all of
them (nbval, local backend, live traffic) shows what the committed reference run shows and
records the values a short run of the lab produces. ``make run`` (papermill) itself is run by
the aws rehearsal (tests/test_aws_rehearsal.py) and its report by tests/test_report.py."""

import json
import os
import subprocess
import sys

import pytest

from labhelpers.infra.config import REPO_ROOT, load_config
from labhelpers.run.cleanup import cleanup
from labhelpers.run.headless import lab_notebooks
from labhelpers.run.reference import REFERENCE_DIR, REFERENCE_PREFIX, stale_notebooks
from labhelpers.run.report import MAX_ALERT_LATENCY_S

pytestmark = pytest.mark.notebooks


# What `pytest --nbval-lax` needs for this lab: the kernel of this environment, and the
# sanitizers for what changes from run to run (ports, times, paths).
NBVAL_OPTIONS = ["--nbval-lax", "--nbval-current-env",
                 "--nbval-sanitize-with", str(REPO_ROOT / "tests" / "nbval_sanitize.cfg")]


def test_notebooks_have_parameters_and_no_outputs():
    books = lab_notebooks()
    assert [b.name[:2] for b in books] == ["00", "01", "02", "03", "04", "05", "06"]
    for book in books:
        nb = json.loads(book.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{book.name}: one cell tagged 'parameters'"
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), (
            f"{book.name} is committed with outputs")


@pytest.fixture()
def notebook_env(tmp_path):
    """The environment the notebooks' kernels get: a lab home of their own (its own emulator
    port), run records there too (not beside the reference notebooks in docs/), and the
    reference run's prefix; whatever a failing notebook left running is stopped
    at the end."""
    home = tmp_path / "home"
    env = {**os.environ, "LAB_HOME": str(home), "LAB_PREFIX": REFERENCE_PREFIX,
           "LAB_RUNS_DIR": str(home / "runs")}
    for name in ("LAB_EMULATOR_PORT", "LAB_BACKEND", "LAB_EMULATED"):
        env.pop(name, None)
    yield home, env
    cleanup(load_config(home=home, prefix=REFERENCE_PREFIX), progress=False)


def test_reference_run_is_current():
    """docs/reference-run holds every notebook as it is now, with the report and plots."""
    stale = stale_notebooks()
    assert not stale, f"{stale} changed since the reference run: run `make reference-run`"
    files = {f.name for f in REFERENCE_DIR.iterdir()}
    assert {"report.html", "summary.json", "scores.png"} <= files, files
    assert json.loads((REFERENCE_DIR / "summary.json").read_text())["ok"]
    for book in REFERENCE_DIR.glob("*.ipynb"):
        text = book.read_text()
        # a fresh run keeps its record in its own lab home; no path of the machine that made it
        assert '"RUN_DIR = \\"\\"\\n"' in text, f"{book.name}: RUN_DIR not emptied"
        assert "clicklab-reference-" not in text and str(REPO_ROOT) not in text, book.name


def test_a_fresh_run_shows_what_the_reference_run_shows(notebook_env):
    """Every notebook, in order, through nbval: no cell may fail, the cells tagged
    ``nbval-check-output`` must print what the reference run printed (sanitized), and the
    run's record must hold what a short run of the lab produces."""
    home, env = notebook_env
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NBVAL_OPTIONS,
         str(REFERENCE_DIR)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"nbval:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"
    runs = sorted((home / "runs").glob(f"{REFERENCE_PREFIX}-*"))
    assert len(runs) == 1, f"one run record per walk-through: {runs}"
    summary = json.loads((runs[0] / "summary.json").read_text())
    v = summary["values"]
    assert summary["ok"], summary
    assert summary["alerts_received"] == 1, f"exactly one alert per spike: {v}"
    assert 1 <= summary["anomalies"] <= 3, f"the spike covers 2-3 windows: {v}"
    assert summary["windows_scored"] >= 8, v
    assert summary["records_sent"] > 100, v
    assert v["leftovers"] == [], "cleanup left resources behind"
    assert 0 < v["alert_latency_s"] <= MAX_ALERT_LATENCY_S, \
        f"alert latency {v['alert_latency_s']} s"
    assert (runs[0] / "report.html").exists() and (runs[0] / "scores.png").exists()


def test_papermill_reads_every_parameter():
    """A comment papermill cannot parse (an '=' in it) hides the parameter from headless runs."""
    import nbformat
    from papermill.translators import PythonTranslator

    for book in lab_notebooks():
        nb = nbformat.read(book, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [ln.split("=")[0].strip() for ln in cell.source.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        found = [p.name for p in PythonTranslator.inspect(cell)]
        assert found == names, f"{book.name}: papermill reads {found}, the cell has {names}"
