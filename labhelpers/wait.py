"""Waiting for something to happen, with a progress bar and a clear error on time-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import LabError

T = TypeVar("T")


class WaitTimeout(LabError):
    """The thing waited for did not happen in time."""


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
    from tqdm.auto import tqdm

    start = time.monotonic()
    with tqdm(total=round(timeout), desc=f"waiting for {what}", unit="s", disable=not progress,
              bar_format="{desc}: {n_fmt}/{total_fmt} s") as bar:
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
