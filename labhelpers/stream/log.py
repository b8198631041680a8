"""The local stand-in for a Kinesis stream: an append-only log of JSON-lines files on disk.

Writers put each batch in a file named after its time and a sequence number, written under a
dot-name (Flink's file source ignores names starting with '.' or '_') and renamed when
complete, so readers never see half a file and files appear in time order.
Readers (the monitor, the alert poller) remember which files they have read.
The Flink job's own output files (``part-<uuid>-<subtask>-<n>``) are read the same way.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..logs import logger

log = logger(__name__)

_PART_RE = re.compile(r"-(\d+)$")


class StreamLogWriter:
    """Append batches of lines to the stream log in ``directory`` (created if missing)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        self._lock = threading.Lock()
        self.files_written = 0
        self.records_written = 0

    def append(self, lines: Iterable[str]) -> Path | None:
        """Write one file with ``lines`` (each without a newline); returns its path or None."""
        data = "".join(f"{line}\n" for line in lines)
        if not data:
            return None
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns() // 1_000_000:013d}-{os.getpid()}-{self._seq:08d}.jsonl"
            tmp = self.directory / f".{name}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(data)
            final = self.directory / name
            os.replace(tmp, final)
            self.files_written += 1
            self.records_written += data.count("\n")
        return final


def _visible_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith((".", "_"))
    ]


def _order_key(path: Path) -> tuple:
    # Our own files sort by name (time-sequence); Flink part files by commit time then counter.
    m = _PART_RE.search(path.name)
    if path.suffix == ".jsonl":
        return (0, path.name, 0)
    return (1, f"{path.stat().st_mtime_ns:020d}", int(m.group(1)) if m else 0)


class StreamLogReader:
    """Read new lines from a stream-log folder, file by file, in order.

    ``position_file`` (optional) keeps the set of files already read so that a reader in a
    new process continues where the last one stopped.
    """

    def __init__(self, directory: Path | str, position_file: Path | str | None = None) -> None:
        self.directory = Path(directory)
        self.position_file = Path(position_file) if position_file else None
        self._seen: set[str] = set()
        if self.position_file and self.position_file.exists():
            self._seen = set(json.loads(self.position_file.read_text()))

    def new_files(self) -> list[Path]:
        """Complete files not read yet, oldest first."""
        files = [p for p in _visible_files(self.directory) if p.name not in self._seen]
        return sorted(files, key=_order_key)

    def mark_read(self, path: Path) -> None:
        """Remember ``path`` as read (persisted when a position file is set)."""
        self._seen.add(path.name)
        if self.position_file:
            self.position_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.position_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(self._seen)))
            os.replace(tmp, self.position_file)

    def read_new(self) -> Iterator[tuple[Path, list[str]]]:
        """Yield ``(file, lines)`` for each new file; a file is marked read after it is yielded."""
        for path in self.new_files():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            yield path, lines
            self.mark_read(path)


def read_all_lines(directory: Path | str) -> list[str]:
    """Every line of every complete file in the folder, in order (for tests and replays)."""
    out: list[str] = []
    for path in sorted(_visible_files(Path(directory)), key=_order_key):
        out.extend(ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())
    return out


def tail_lines(directory: Path | str, n: int = 10) -> list[str]:
    """The last ``n`` lines of the stream log, reading only its newest files."""
    out: list[str] = []
    for path in reversed(sorted(_visible_files(Path(directory)), key=_order_key)):
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        out = lines + out
        if len(out) >= n:
            break
    return out[-n:]


# ---------------------------------------------------------------------------------------------
# The feeder: the app's ordered view of the input stream log
# ---------------------------------------------------------------------------------------------

# An event time on the wire, found without parsing the JSON (the feeder reads every line).
_EVENT_TIME_RE = re.compile(r'"event_time"\s*:\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"')
# Flink's file source cuts files above its block size (32 MiB locally) into splits that are
# handed out in any order: keep every feed file far below that.
FEED_FILE_MAX_BYTES = 4 * 1024 * 1024
_MANIFESTS = "_manifests"  # Flink's file source ignores names starting with '_'


def event_time_ms(line: str) -> int | None:
    """The record's event time in epoch milliseconds, or None when the line has none."""
    m = _EVENT_TIME_RE.search(line)
    if not m:
        return None
    from datetime import UTC, datetime

    try:
        ts = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(ts.timestamp() * 1000)


def _written_ms(path: Path) -> int:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def count_lines(directory: Path | str) -> int:
    """Records in the stream log (complete files), counted without parsing them."""
    total = 0
    for path in _visible_files(Path(directory)):
        with open(path, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return total


# How long a feed file may stay unopened, by its access time, before the feeder stops trusting
# access times here: longer than a job's start (Flink opens the first file 10-20 s after the
# feeder writes it), so that a slow start is not mistaken for a file system without them.
ATIME_PATIENCE_S = 60.0


def atime_works(directory: Path | str) -> bool:
    """Does reading a file here update its access time? (Not on ``noatime`` mounts.)"""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / ".atime-probe"
    probe.write_text("x\n")
    try:
        os.utime(probe, ns=(0, probe.stat().st_mtime_ns))
        probe.read_text()
        return probe.stat().st_atime_ns > 0
    finally:
        probe.unlink(missing_ok=True)


class Feeder:
    """Moves the input stream log, in order, into the folder the Flink job watches.

    Why: Flink's file source hands out the files it has found but not yet read in no
    particular order (a hash set), so a backlog of many files is read out of order and the
    watermark drops whole windows (measured on Flink 2.x; tests/test_feeder.py). The feeder
    keeps at most one unread file in the job's folder: it concatenates everything that arrived
    into one feed file and writes the next only after the job has opened that one (its access time
    changes; where the file system does not keep access times, after three scan intervals).
    Where the probe said access times work but a feed file's never changes (NFS home folders
    on a class server may not pass reads on), the feeder falls back to the timed hand-over
    after ``ATIME_PATIENCE_S`` instead of waiting for ever.
    Files are never changed or deleted in the input stream log itself.

    Position: every feed file has a manifest (``_manifests/<feed file>.json``, written first)
    listing the input files it holds; the feed files present are what was fed. On a resume
    from a checkpoint, feed files the checkpoint does not know (written after it) are taken
    back and fed again, merged, so the restored job never finds two unread files at once.

    Start: ``start_ms`` (a "latest" start) skips records with an earlier event time, and
    ``skip_through`` skips the input files up to that name (what was there at the start).
    """

    def __init__(self, input_dir: Path | str, feed_dir: Path | str, *,
                 start_ms: int | None = None, skip_through: str | None = None,
                 scan_interval_s: float = 1.0) -> None:
        self.input_dir = Path(input_dir)
        self.feed_dir = Path(feed_dir)
        self.manifest_dir = self.feed_dir / _MANIFESTS
        self.manifest_dir.mkdir(parents=True, exist_ok=True)
        self.start_ms = start_ms
        self.skip_through = skip_through
        self.scan_interval_s = scan_interval_s
        self.use_atime = atime_works(self.feed_dir)
        self.consumed: set[str] = set()
        self.skipped = 0  # records not read because they are before the start position
        self.fed = 0
        self._seq = 0
        self._pending: Path | None = None  # the last feed file, until the job has opened it
        self._pending_since = 0.0
        self.gate: Callable[[], bool] | None = None  # feed nothing until it returns True
        self._load()

    def _feed_files(self) -> list[Path]:
        return sorted(p for p in self.feed_dir.glob("*.jsonl") if p.is_file())

    def _load(self) -> None:
        for feed in self._feed_files():
            manifest = self.manifest_dir / f"{feed.name}.json"
            if manifest.exists():
                info = json.loads(manifest.read_text())
                self.consumed.update(info["inputs"])
                self.skipped = max(self.skipped, info.get("skipped_total", 0))
                self.fed = max(self.fed, info.get("fed_total", 0))
            self._seq = max(self._seq, int(feed.name.split("-", 1)[0]))

    def take_back_unknown(self, checkpoint: Path) -> list[str]:
        """Before a resume: remove the feed files the checkpoint does not mention, so that
        they are fed again (merged, in order); returns their names.

        ``checkpoint`` is the checkpoint's folder (or its ``_metadata`` file): the source's
        state in it (files found, the split being read) names the feed files it knows."""
        folder = checkpoint.parent if checkpoint.name == "_metadata" else checkpoint
        known = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
        taken = [f for f in self._feed_files() if f.name.encode() not in known]
        for feed in taken:
            feed.unlink()
            (self.manifest_dir / f"{feed.name}.json").unlink(missing_ok=True)
        self.consumed.clear()
        self.skipped = self.fed = self._seq = 0
        self._load()
        # The newest known file may still wait, unassigned, in the restored job (and a file it
        # read before the crash is not opened again): feed nothing until ``gate`` says the
        # restored job has taken its own splits (see app._run: its first checkpoint).
        self._pending = None
        return [f.name for f in taken]

    def _opened(self, path: Path) -> bool:
        if not path.exists():
            return True
        if self.use_atime:
            if path.stat().st_atime_ns > 0:
                return True
            if time.time() - self._pending_since < ATIME_PATIENCE_S:
                return False
            self.use_atime = False
            log.info(f"feeder: {path.name} shows no read after {ATIME_PATIENCE_S:.0f} s (this "
                     "file system may not keep access times, e.g. NFS); feeding one file per "
                     f"{3 * self.scan_interval_s:.0f} s from now on")
            return True
        # no access times on this file system: give the job three scans per file
        return time.time() - self._pending_since > 3 * self.scan_interval_s

    def step(self) -> int:
        """Feed what arrived, if the job has taken the last feed file; returns records fed."""
        if self.gate is not None:
            if not self.gate():
                return 0
            self.gate = None
        if self._pending is not None and not self._opened(self._pending):
            return 0
        new = [p for p in _visible_files(self.input_dir)
               if p.suffix == ".jsonl" and p.name not in self.consumed]
        if not new:
            return 0
        new.sort(key=_order_key)
        lines: list[str] = []
        inputs: list[str] = []
        size = 0
        skipped = 0
        for path in new:
            if size > FEED_FILE_MAX_BYTES:
                break
            inputs.append(path.name)
            raw = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if self.skip_through is not None and path.name <= self.skip_through:
                skipped += len(raw)
                continue
            # Around a "latest" start, records from before it are not read; much later, an
            # old record is a late one (the job sets it aside with reason "late").
            filtering = self.start_ms is not None and _written_ms(path) < self.start_ms + 60_000
            for line in raw:
                t = event_time_ms(line) if filtering else None
                if t is not None and t < self.start_ms:
                    skipped += 1
                    continue
                lines.append(line)
                size += len(line) + 1
        self.skipped += skipped
        self._seq += 1
        name = f"{self._seq:010d}-{inputs[-1]}"
        manifest = {"inputs": inputs, "records": len(lines), "skipped_total": self.skipped,
                    "fed_total": self.fed + len(lines)}
        _write_atomic(self.manifest_dir / f"{name}.json", json.dumps(manifest))
        self.consumed.update(inputs)
        if not lines:  # only skipped records: nothing for the job to read
            return 0
        feed = _write_atomic(self.feed_dir / name, "".join(f"{ln}\n" for ln in lines),
                             atime_zero=self.use_atime)
        self.fed += len(lines)
        self._pending, self._pending_since = feed, time.time()
        return len(lines)

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Feed until ``stop`` is set."""
        while not stop.is_set():
            if not self.step():
                stop.wait(poll_s)


def _write_atomic(path: Path, text: str, atime_zero: bool = False) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    if atime_zero:  # so that the job's first read shows (relatime updates an old atime)
        os.utime(tmp, ns=(0, tmp.stat().st_mtime_ns))
    os.replace(tmp, path)
    return path
