"""A record of every run of the lab: headless (``make run``) or by hand.

Headless: every notebook through papermill, in order, into a run folder under ``runs/``.
By hand: notebook 00 opens a run folder of the student's own in the lab home
(``<LAB_HOME>/runs/<prefix>-<time>``, see ``run_folder``); every notebook records its values
there and notebook 05 finishes it. Either way the folder holds ``values.json``,
``summary.json``, the saved plots and a one-page ``report.html``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..infra.config import REPO_ROOT, LabConfig
from .report import write_report

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RUNS_DIR = REPO_ROOT / "runs"
VALUES_FILE = "values.json"
SUMMARY_KEYS = ("records_sent", "windows_scored", "anomalies", "alerts_received")


def lab_notebooks() -> list[Path]:
    """The numbered notebooks of the lab, in order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


CURRENT_RUN = "current-run"  # in the lab folder: the by-hand run the notebooks add to


def run_folder(cfg: LabConfig, run_dir: str | Path | None = None, new: bool = False) -> Path:
    """Where this run's record goes: ``run_dir`` when given (headless runs set it), else the
    student's own folder ``<home>/runs/<prefix>-<time>``: a new one with ``new`` (notebook
    00), else the one the earlier notebooks used (a new one if there is none yet)."""
    if run_dir:
        return Path(run_dir)
    pointer = cfg.lab_dir / CURRENT_RUN
    if not new and pointer.exists() and Path(pointer.read_text().strip()).is_dir():
        return Path(pointer.read_text().strip())
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run = cfg.home / "runs" / f"{cfg.prefix}-{stamp}"
    run.mkdir(parents=True, exist_ok=True)
    record_values(run, started_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  prefix=cfg.prefix, backend=cfg.backend)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(str(run))
    return run


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


def _ipc_kernel_manager():
    from jupyter_client.manager import AsyncKernelManager

    class IPC(AsyncKernelManager):
        """A kernel that talks over local IPC sockets instead of TCP."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.transport = "ipc"

    return IPC


def run_lab(
    run_dir: Path | str | None = None,
    parameters: dict[str, Any] | None = None,
    notebooks: list[Path] | None = None,
    kernel_name: str = "python3",
) -> Path:
    """Execute the notebooks headless; return the run folder. Stops at the first failure,
    after running the cleanup notebook so nothing is left running."""
    import papermill as pm

    IPCKernelManager = _ipc_kernel_manager()  # noqa: N806 (a class)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run = Path(run_dir) if run_dir else RUNS_DIR / stamp
    run.mkdir(parents=True, exist_ok=True)
    # SOLVE_TASKS: the checked tasks take the instructor's solution (teach/instructor_solutions)
    params = {"RUN_DIR": str(run.resolve()), "SOLVE_TASKS": True, **(parameters or {})}
    books = notebooks or lab_notebooks()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    failed: str | None = None
    for i, nb in enumerate(books, 1):
        t0 = time.perf_counter()
        print(f"== {nb.name} ({i}/{len(books)}) started {datetime.now():%H:%M:%S}", flush=True)
        try:
            # the bar counts the cells done; IPC sockets: no "kernel is running over TCP
            # without encryption" warning per notebook (the kernel is on this machine)
            pm.execute_notebook(
                str(nb), str(run / nb.name), parameters=params, kernel_name=kernel_name,
                cwd=str(NOTEBOOKS_DIR), progress_bar=True, log_output=False,
                kernel_manager_class=IPCKernelManager,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with the cell
            failed = f"{nb.name}: {err}"
            print(f"!! {nb.name} failed; see {run / nb.name}", flush=True)
            break
        finally:
            timings[nb.name] = round(time.perf_counter() - t0, 1)
        print(f"   {nb.name} done in {timings[nb.name]:.0f} s", flush=True)
    if failed:
        cleanup_nb = next((b for b in lab_notebooks() if "cleanup" in b.name), None)
        if cleanup_nb and cleanup_nb.name not in timings:
            try:
                pm.execute_notebook(str(cleanup_nb), str(run / cleanup_nb.name),
                                    parameters=params, kernel_name=kernel_name,
                                    cwd=str(NOTEBOOKS_DIR), progress_bar=False,
                                    kernel_manager_class=IPCKernelManager)
            except Exception as err:
                print(f"!! cleanup also failed: {err}", flush=True)
    summary = write_summary(run, failed=failed, seconds=time.perf_counter() - started,
                            timings=timings)
    report = run / "report.html"
    print(json.dumps({k: summary[k] for k in (*SUMMARY_KEYS, "ok", "seconds")}, indent=2))
    print(f"Results: {run.resolve()} (executed notebooks, summary.json, plots)")
    print(f"Report for instructors: {report.resolve()}")
    return run


def write_summary(run: Path | str, failed: str | None = None, seconds: float | None = None,
                  timings: dict[str, float] | None = None) -> dict[str, Any]:
    """``summary.json`` and ``report.html`` of a run folder, from the values its notebooks
    recorded; returns the summary."""
    run = Path(run)
    values_path = run / VALUES_FILE
    values = json.loads(values_path.read_text()) if values_path.exists() else {}
    summary = {k: values.get(k) for k in SUMMARY_KEYS}
    summary.update(ok=failed is None, failed=failed,
                   seconds=round(seconds, 1) if seconds is not None else None,
                   notebook_seconds=timings or {}, values=values)
    (run / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_report(run)
    return summary


def finish_run(run_dir: str | Path) -> Path:
    """End of a by-hand walk-through (notebook 05): write the summary and the report, say
    where they are; returns the report's path."""
    values = json.loads((Path(run_dir) / VALUES_FILE).read_text())
    started = values.get("started_at")
    seconds = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds() if (
        started) else None
    summary = write_summary(run_dir, seconds=seconds)
    report = Path(run_dir) / "report.html"
    verdict = "every check passed" if summary["ok"] else "see the failed checks"
    print(f"Your run record ({verdict}): {Path(run_dir).resolve()}\n"
          f"  report.html  the one-page report (open it in the browser, hand it in)\n"
          f"  values.json  what each notebook measured")
    return report
