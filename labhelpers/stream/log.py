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
from collections.abc import Iterable, Iterator
from pathlib import Path

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
