"""Background processes that outlive notebook kernels: the emulator, the analytics app and
the traffic all run through ``BackgroundProcess`` (a state file with the pid, liveness that
a recycled pid cannot fake, a stop with a deadline, the log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from .errors import LabError
from .wait import wait_until

# For every background process of the lab: glibc's malloc keeps up to 8 arenas per core, each
# holding freed memory; a lab's threads (the app's feeder, poller and Flink's, the emulator's
# request threads) need two (docs/performance.md, "Memory per student").
CHILD_ENV = {"MALLOC_ARENA_MAX": "2"}


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


class BackgroundProcess:
    """One detached process of the lab, found again from any kernel through its state file.

    state_file: JSON with ``pid``, ``started`` and whatever the owner adds.
    marker: a text in the process's command line (guards against recycled pids).
    log: where its output goes (appended).
    """

    def __init__(self, state_file: Path, marker: str, log: Path) -> None:
        self.state_file, self.marker, self.log = Path(state_file), marker, Path(log)
        self._child: subprocess.Popen | None = None  # ours: reaped when it exits

    def state(self) -> dict[str, Any]:
        """What was recorded at start ({} if never started or since stopped)."""
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def write_state(self, **values: Any) -> None:
        """Merge ``values`` into the state file (written whole, then renamed)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.tmp")
        tmp.write_text(json.dumps({**self.state(), **values}))
        os.replace(tmp, self.state_file)

    @property
    def pid(self) -> int | None:
        """The pid if the process runs, else None."""
        pid = self.state().get("pid")
        return pid if self.running else None

    @property
    def running(self) -> bool:
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped
        return alive(self.state().get("pid"), self.marker)

    def start(self, cmd: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None, fresh_log: bool = False, **state: Any) -> int:
        """Start ``cmd`` in its own session (a kernel restart or Ctrl-C does not kill it),
        record its pid and ``state``; returns the pid. The child (and what it starts, such as
        the app's JVM) gets CHILD_ENV unless ``env`` or the environment sets those names."""
        env = {**CHILD_ENV, **(os.environ if env is None else env)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb" if fresh_log else "ab") as fh:
            self._child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh,
                                           stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                           start_new_session=True, close_fds=True)
        self.state_file.unlink(missing_ok=True)
        self.write_state(pid=self._child.pid, started=time.time(), log=str(self.log), **state)
        return self._child.pid

    def exit_code(self) -> int | None:
        """The exit code of the process this object started, if it has exited."""
        return None if self._child is None else self._child.poll()

    def wait_ready(self, ready: Callable[[], Any], what: str, timeout: float,
                   failed: Callable[[str], LabError], interval: float = 0.25) -> Any:
        """Wait until ``ready()`` is truthy (progress shown); ``failed(log_tail)`` is raised
        if the process exits first, and after ``timeout`` s the process is stopped and
        ``failed`` is raised too."""
        def check() -> Any:
            if self._child is not None and self._child.poll() is not None:
                code = self._child.returncode
                self._child = None
                raise failed(f"it exited with code {code}; last log lines:\n{self.log_tail()}")
            return ready()

        try:
            return wait_until(check, what, timeout=timeout, interval=interval)
        except LabError as err:
            if self.running and not ready():
                self.stop()
                raise failed(f"still waiting for {what} after {timeout:.0f} s; last log lines:\n"
                             f"{self.log_tail()}") from err
            raise

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM the process group (the process and its JVM/workers), SIGKILL after
        ``timeout`` s; forget the state. True if it was running."""
        pid = self.state().get("pid")
        was_running = alive(pid, self.marker)
        if was_running:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
                try:
                    # the whole group when it leads one (ours do: its JVM and workers too);
                    # a process adopted from elsewhere alone
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, sig)
                    else:
                        os.kill(pid, sig)
                except ProcessLookupError:
                    break
                end = time.monotonic() + wait
                while time.monotonic() < end and alive(pid):
                    time.sleep(0.2)
                if not alive(pid):
                    break
        if self._child is not None:
            self._child.poll()  # reap it: no zombie while the kernel lives
            self._child = None
        self.state_file.unlink(missing_ok=True)
        return was_running

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the log."""
        if not self.log.exists():
            return "(no log yet)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
