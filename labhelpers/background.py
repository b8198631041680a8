"""Background processes that outlive notebook kernels: start detached, check, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so a kernel restart or Ctrl-C does not kill it),
    appending its output to ``log``."""
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


def alive(pid: int | None, marker: str | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, with ``marker``, its command line has it
    (a recycled pid of another program does not count)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker is None or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop_group(pid: int, timeout: float = 20, marker: str | None = None) -> bool:
    """SIGTERM the process group of ``pid`` (the process and its JVM/workers), SIGKILL after
    ``timeout`` s. True if it was running."""
    if not alive(pid, marker):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        end = time.time() + wait
        while time.time() < end and alive(pid):
            time.sleep(0.2)
        if not alive(pid):
            break
    return True
