"""Peak resident memory of a process tree, sampled in a thread (benchmarks only)."""

from __future__ import annotations

import threading

import psutil


class PeakRSS:
    """Samples RSS of ``pid`` and its descendants every ``interval`` s; ``peak_mb`` is the max.

    ``pss``: also the proportional set size (Linux), ``peak_pss_mb``: a page shared by N
    processes counts 1/N, so students who share one installation (the JVM's class archive,
    the libraries) are not each charged for it in full."""

    def __init__(self, pid: int | None = None, interval: float = 0.25, pss: bool = False) -> None:
        self.pid, self.interval, self.pss = pid, interval, pss
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_mb(self) -> tuple[float, float]:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0.0
        total = pss = 0
        for p in procs:
            try:
                if self.pss:
                    info = p.memory_full_info()
                    pss += info.pss
                else:
                    info = p.memory_info()
                total += info.rss
            except psutil.Error:
                pass
        return total / 2**20, pss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.pid is not None:
                rss, pss = self._tree_mb()
                self.peak_mb = max(self.peak_mb, rss)
                self.peak_pss_mb = max(self.peak_pss_mb, pss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class TreeCPU:
    """CPU seconds (user + system) used by the children of this process while the block runs,
    sampled every ``interval`` s: each process's last sample counts, so a process that ends
    between two samples loses at most one interval. Less disturbed than wall time by other
    work on a shared machine (it still pays for cache and hyper-thread contention)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.seconds = 0.0
        # keyed by (pid, start time): a pid the system reuses is another process
        self._last: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for p in psutil.Process().children(recursive=True):
            try:
                t = p.cpu_times()
                self._last[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCPU:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = sum(self._last.values())
