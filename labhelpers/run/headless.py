"""A record of every run of the lab: headless (``make run``) or by hand.

Both keep their records in one visible place: ``runs/`` beside the notebooks, where JupyterLab
shows them (``runs/`` in ``notebooks/`` in a checkout, ``<your folder>/runs/`` after ``clicklab
notebooks <your folder>``; ``LAB_RUNS_DIR`` overrides it).
Headless: every notebook through papermill, in order, into ``runs/<time>``.
By hand: notebook 00 opens ``runs/<prefix>-<time>`` (see ``run_folder``; the kernel runs in
the notebook's folder); every notebook records its values there and notebook 05 finishes it.
Either way the folder holds ``values.json``, ``summary.json``, the saved plots and a one-page
``report.html``.
"""

from __future__ import annotations

import html
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..infra.config import REPO_ROOT, LabConfig
from ..resources import data_dir, lab_notebooks
from .report import write_report

__all__ = ["NOTEBOOKS_DIR", "finish_run", "lab_notebooks", "record_values", "run_folder",
           "run_lab", "runs_dir", "show_report", "write_summary", "InlineReport"]

NOTEBOOKS_DIR = data_dir("notebooks")  # the package's notebooks (in a checkout: notebooks/)
RUNS = "runs"
RUNS_ENV = "LAB_RUNS_DIR"  # where run records go instead (tests that run notebooks elsewhere)
VALUES_FILE = "values.json"
SUMMARY_KEYS = ("records_sent", "windows_scored", "anomalies", "alerts_received")


def runs_dir(folder: str | Path | None = None) -> Path:
    """The folder of run records: ``LAB_RUNS_DIR``, else ``runs/`` in ``folder`` (default: the
    current folder, which in a notebook's kernel is the notebook's own folder)."""
    return Path(os.environ.get(RUNS_ENV) or Path(folder or Path.cwd()) / RUNS).resolve()


def default_folder() -> Path:
    """Where a headless run executes the notebooks and keeps its record: the checkout's
    notebooks/ (an editable install), else the current folder (an installed package: never
    inside the environment, even where it is writable)."""
    in_checkout = NOTEBOOKS_DIR == (REPO_ROOT / "notebooks").resolve()
    return NOTEBOOKS_DIR if in_checkout else Path.cwd()


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
    stamp = datetime.now(UTC).astimezone().strftime("%Y%m%d-%H%M%S")
    run = runs_dir() / f"{cfg.prefix}-{stamp}"
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

        latest: IPC | None = None  # the newest one (a headless run runs one at a time)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.transport = "ipc"
            type(self).latest = self

    return IPC


class KernelPeak:
    """The most resident memory (MB) the kernel of ``manager_cls.latest`` held after any of
    its cells: an ``on_cell_executed`` hook. What a notebook's kernel keeps while it stays
    open (JupyterLab keeps it running until the student shuts it down), so what a class
    server must hold for each notebook a student leaves open."""

    def __init__(self, manager_cls: Any) -> None:
        self.manager_cls = manager_cls
        self.mb = 0

    def __call__(self, **_: Any) -> None:
        import psutil

        km = self.manager_cls.latest
        process = getattr(getattr(km, "provisioner", None), "process", None)
        try:
            rss = psutil.Process(process.pid).memory_info().rss if process else 0
        except psutil.Error:  # the kernel ended with the cell (a failure)
            return
        self.mb = max(self.mb, round(rss / 2**20))


def run_lab(
    run_dir: Path | str | None = None,
    parameters: dict[str, Any] | None = None,
    notebooks: list[Path] | None = None,
    kernel_name: str = "python3",
    folder: Path | str | None = None,
) -> Path:
    """Execute the notebooks headless; return the run folder. Stops at the first failure,
    after running the cleanup notebook so nothing is left running.

    ``folder``: where the kernels run and ``runs/`` is (default ``default_folder()``); its own
    copy of the notebooks is run when it has one (``clicklab notebooks``), else the package's.
    """
    import papermill as pm

    IPCKernelManager = _ipc_kernel_manager()  # noqa: N806 (a class)

    folder = Path(folder or default_folder()).resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run = Path(run_dir) if run_dir else runs_dir(folder) / stamp
    run.mkdir(parents=True, exist_ok=True)
    # SOLVE_TASKS: the checked tasks take the instructor's solution (teach/instructor_solutions)
    params = {"RUN_DIR": str(run.resolve()), "SOLVE_TASKS": True, **(parameters or {})}
    books = notebooks or lab_notebooks(folder) or lab_notebooks()
    timings: dict[str, float] = {}
    kernel_mb: dict[str, int] = {}
    started = time.perf_counter()
    failed: str | None = None
    for i, nb in enumerate(books, 1):
        t0 = time.perf_counter()
        now = datetime.now(UTC).astimezone()
        print(f"== {nb.name} ({i}/{len(books)}) started {now:%H:%M:%S %Z}", flush=True)
        peak = KernelPeak(IPCKernelManager)
        try:
            # the bar counts the cells done; IPC sockets: no "kernel is running over TCP
            # without encryption" warning per notebook (the kernel is on this machine)
            pm.execute_notebook(
                str(nb), str(run / nb.name), parameters=params, kernel_name=kernel_name,
                cwd=str(folder), progress_bar=True, log_output=False,
                kernel_manager_class=IPCKernelManager, on_cell_executed=peak,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with the cell
            failed = f"{nb.name}: {err}"
            print(f"!! {nb.name} failed; see {run / nb.name}", flush=True)
            break
        finally:
            timings[nb.name] = round(time.perf_counter() - t0, 1)
            kernel_mb[nb.name] = peak.mb
        print(f"   {nb.name} done in {timings[nb.name]:.0f} s, its kernel held {peak.mb} MB",
              flush=True)
    if failed:
        cleanup_nb = next((b for b in books if "cleanup" in b.name), None)
        if cleanup_nb and cleanup_nb.name not in timings:
            try:
                pm.execute_notebook(str(cleanup_nb), str(run / cleanup_nb.name),
                                    parameters=params, kernel_name=kernel_name,
                                    cwd=str(folder), progress_bar=False,
                                    kernel_manager_class=IPCKernelManager)
            except Exception as err:
                print(f"!! cleanup also failed: {err}", flush=True)
    summary = write_summary(run, failed=failed, seconds=time.perf_counter() - started,
                            timings=timings, kernel_mb=kernel_mb)
    report = run / "report.html"
    print(json.dumps({k: summary[k] for k in (*SUMMARY_KEYS, "ok", "seconds")}, indent=2))
    print(f"Results: {_shown(run)} (executed notebooks, summary.json, plots)")
    print(f"Report for instructors: {_shown(report)}")
    return run


def write_summary(run: Path | str, failed: str | None = None, seconds: float | None = None,
                  timings: dict[str, float] | None = None,
                  kernel_mb: dict[str, int] | None = None) -> dict[str, Any]:
    """``summary.json`` and ``report.html`` of a run folder, from the values its notebooks
    recorded; returns the summary. ``kernel_mb``: each notebook's kernel at its largest
    (headless runs measure it, ``KernelPeak``)."""
    run = Path(run)
    values_path = run / VALUES_FILE
    values = json.loads(values_path.read_text()) if values_path.exists() else {}
    summary = {k: values.get(k) for k in SUMMARY_KEYS}
    summary.update(ok=failed is None, failed=failed,
                   seconds=round(seconds, 1) if seconds is not None else None,
                   notebook_seconds=timings or {}, kernel_mb=kernel_mb or {},
                   values=values)
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
    print(f"Your run record ({verdict}): {_shown(Path(run_dir))}\n"
          f"  report.html  the one-page report (open it from JupyterLab's file browser, hand "
          f"it in)\n"
          f"  values.json  what each notebook measured")
    return report


def _shown(path: Path) -> str:
    """A path as a student finds it in JupyterLab's file browser: relative to the current
    folder (the notebook's) when it is inside it, else in full. A server's absolute path
    means nothing to a browser on a JupyterHub."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


class InlineReport:
    """A page that a notebook shows inline (``_repr_html_``), in a frame of its own so that
    its style stays inside it; ``data`` is the HTML."""

    def __init__(self, page: str) -> None:
        self.data = (f'<iframe srcdoc="{html.escape(page, quote=True)}" title="run report" '
                     'style="width:100%;height:720px;border:1px solid #ccc"></iframe>')

    def _repr_html_(self) -> str:
        return self.data


def show_report(run_dir: str | Path) -> InlineReport:
    """The run's one-page report, shown in the notebook: the last line of notebook 05's last
    cell (``show_report(RUN_DIR)``), after ``finish_run``."""
    return InlineReport((Path(run_dir) / "report.html").read_text(encoding="utf-8"))
