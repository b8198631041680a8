"""Headless runs of the whole lab (``make run``): every notebook through papermill, in order.

Writes the executed notebooks, the values each notebook records, ``summary.json`` and the
saved plots into a run folder under ``runs/``, then a one-page ``report.html``, and prints
where they are.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..infra.config import REPO_ROOT
from .report import write_report

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RUNS_DIR = REPO_ROOT / "runs"
VALUES_FILE = "values.json"
SUMMARY_KEYS = ("records_sent", "windows_scored", "anomalies", "alerts_received")


def lab_notebooks() -> list[Path]:
    """The numbered notebooks of the lab, in order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def record_values(run_dir: str | Path | None, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into the run folder's values.json (no-op without a run folder).

    Notebooks end with this so that headless runs and tests can check what they produced.
    """
    if run_dir:
        path = Path(run_dir) / VALUES_FILE
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(values)
        path.write_text(json.dumps(current, indent=2, default=str))
    return values


def run_lab(
    run_dir: Path | str | None = None,
    parameters: dict[str, Any] | None = None,
    notebooks: list[Path] | None = None,
    kernel_name: str = "python3",
) -> Path:
    """Execute the notebooks headless; return the run folder. Stops at the first failure,
    after running the cleanup notebook so nothing is left running."""
    import papermill as pm

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run = Path(run_dir) if run_dir else RUNS_DIR / stamp
    run.mkdir(parents=True, exist_ok=True)
    params = {"RUN_DIR": str(run.resolve()), **(parameters or {})}
    books = notebooks or lab_notebooks()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    failed: str | None = None
    for nb in books:
        t0 = time.perf_counter()
        print(f"== {nb.name}", flush=True)
        try:
            pm.execute_notebook(
                str(nb), str(run / nb.name), parameters=params, kernel_name=kernel_name,
                cwd=str(NOTEBOOKS_DIR), progress_bar=False, log_output=False,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with the cell
            failed = f"{nb.name}: {err}"
            print(f"!! {nb.name} failed; see {run / nb.name}", flush=True)
            break
        finally:
            timings[nb.name] = round(time.perf_counter() - t0, 1)
    if failed:
        cleanup_nb = next((b for b in lab_notebooks() if "cleanup" in b.name), None)
        if cleanup_nb and cleanup_nb.name not in timings:
            try:
                pm.execute_notebook(str(cleanup_nb), str(run / cleanup_nb.name),
                                    parameters=params, kernel_name=kernel_name,
                                    cwd=str(NOTEBOOKS_DIR), progress_bar=False)
            except Exception as err:
                print(f"!! cleanup also failed: {err}", flush=True)
    values_path = run / VALUES_FILE
    values = json.loads(values_path.read_text()) if values_path.exists() else {}
    summary = {k: values.get(k) for k in SUMMARY_KEYS}
    summary.update(
        ok=failed is None,
        failed=failed,
        seconds=round(time.perf_counter() - started, 1),
        notebook_seconds=timings,
        values=values,
    )
    (run / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    report = write_report(run)
    print(json.dumps({k: summary[k] for k in (*SUMMARY_KEYS, "ok", "seconds")}, indent=2))
    print(f"Results: {run.resolve()} (executed notebooks, summary.json, plots)")
    print(f"Report for instructors: {report.resolve()}")
    return run
