"""Waiting for something to happen, with a progress bar and a clear error on time-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import LabError

T = TypeVar("T")


class WaitTimeout(LabError):
    """The thing waited for did not happen in time."""


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class _KernelLine:
    """A progress line in a notebook: one output updated in place (a display id), so the
    saved notebook keeps its final state ("... after 23 s"), which a widget bar does not."""

    def __init__(self, desc: str, total: int) -> None:
        from IPython.display import Pretty, display

        self.desc, self.total, self.n, self._pretty = desc, total, 0, Pretty
        self.handle = display(Pretty(f"{desc}: 0/{total} s"), display_id=True)

    def refresh(self) -> None:
        self.handle.update(self._pretty(f"{self.desc}: {self.n}/{self.total} s"))

    def finish(self, ok: bool) -> None:
        end = f"done after {self.n} s" if ok else f"stopped after {self.n} s"
        self.handle.update(self._pretty(f"{self.desc}: {end}"))


def wait_until(
    check: Callable[[], T],
    what: str,
    timeout: float = 300,
    interval: float = 1.0,
    fix: str = "check the app log (python -m labhelpers app logs) and the traffic status.",
    progress: bool = True,
) -> T:
    """Call ``check`` until it returns something truthy and return that; WaitTimeout after
    ``timeout`` seconds. Shows elapsed seconds as a progress bar (``progress``)."""
    start = time.monotonic()
    desc = f"waiting for {what}"
    if progress and _in_kernel():
        line, ok = _KernelLine(desc, round(timeout)), False
        try:
            result = _loop(check, line, start, what, timeout, interval, fix)
            ok = True
            return result
        finally:
            line.finish(ok)
    from tqdm import tqdm

    with tqdm(total=round(timeout), desc=desc, unit="s", disable=not progress,
              bar_format="{desc}: {n_fmt}/{total_fmt} s") as bar:
        return _loop(check, bar, start, what, timeout, interval, fix)


def _loop(check: Callable[[], T], bar, start: float, what: str, timeout: float,
          interval: float, fix: str) -> T:
    while True:
        result = check()
        elapsed = time.monotonic() - start
        bar.n = min(round(elapsed), bar.total)
        bar.refresh()
        if result:
            return result
        if elapsed > timeout:
            raise WaitTimeout(f"No {what} after {timeout:.0f} s", fix)
        time.sleep(interval)
