"""The walk of the window length from notebook 03 into the Flink SQL: which files it crosses.

Notebook 03 hands ``JobParams(window_seconds=W)`` to ``backend_for(cfg).start_app``; the value
travels through the backend and the runner (or the managed-service stand-in) into the
properties the job process reads, then into ``sql/anomaly_detection.sql``. This script follows
an unusual W (37) with a tracer: a file counts when one of its functions is called with W in
its arguments or locals (as a number, the text "37", or on an object or dict that carries it).
The background process is not started: its command and properties file are taken, and the
job's side (properties -> JobSettings -> SQL) is traced in this process.

    .venv/bin/python bench/window_walk.py            # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/window_walk.py   # another one

Prints, per world (local, aws on the emulator), the files crossed in order and their count.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

W = 37
# the managed app's package (make connector-jar builds it); the stand-in unpacks it
ZIP = Path(__file__).resolve().parents[1] / "cloud" / "dist" / "clickstream-app.zip"


def _carries(value: Any, depth: int = 0) -> bool:
    if isinstance(value, bool):
        return False
    if value == W or value == str(W):
        return True
    if depth > 2:
        return False
    if getattr(value, "window_seconds", None) == W:
        return True
    if isinstance(value, dict):
        return any(_carries(v, depth + 1) for v in list(value.values())[:50])
    if isinstance(value, list | tuple):
        return any(_carries(v, depth + 1) for v in value[:50])
    return False


class Walk:
    """A tracer that records the lab's files whose frames hold W."""

    def __init__(self, root: Path) -> None:
        self.root, self.files = root, []

    def __enter__(self) -> Walk:
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)

    def _trace(self, frame, event, arg):  # noqa: ARG002
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(str(self.root)):
            return self._local
        return None

    def _local(self, frame, event, arg):  # noqa: ARG002
        if event in ("line", "return"):
            try:
                hit = any(_carries(v) for v in frame.f_locals.values())
            except Exception:  # a local whose comparison raises: not ours
                hit = False
            rel = str(Path(frame.f_code.co_filename).relative_to(self.root))
            if hit and rel not in self.files:
                self.files.append(rel)
        return self._local


class _Launched(Exception):
    pass


def _walk(world: str) -> list[str]:
    import labhelpers
    from labhelpers import JobParams, backend_for
    from labhelpers.background import BackgroundProcess
    from labhelpers.infra.config import LabConfig
    from labhelpers.job.pipeline import JobSettings

    root = Path(labhelpers.__file__).resolve().parents[1]
    launched: dict[str, Any] = {}

    def fake_start(self, cmd, **kw):  # noqa: ARG001
        launched["cmd"] = cmd
        raise _Launched

    BackgroundProcess.start = fake_start  # type: ignore[method-assign]
    home = Path(tempfile.mkdtemp(prefix="window-walk-"))
    if world == "local":
        cfg = LabConfig(home=home, prefix="walk")
    else:
        from labhelpers.infra import stack

        cfg = LabConfig(backend="aws", emulated=True, home=home, prefix="walk")
        fake = {k: f"arn:aws:kinesis:us-east-1:123456789012:stream/{k}" for k in (
            "InputStreamArn", "ScoresStreamArn", "DeadLetterStreamArn")}
        stack.outputs = lambda cfg: {**fake, "InputStreamName": "i", "ScoresStreamName": "s",
                                     "DeadLetterStreamName": "d"}
        zip_path = ZIP
    lab = backend_for(cfg)
    params = JobParams(window_seconds=W)  # what notebook 03's parameters cell builds
    walk = Walk(root)
    with walk:
        try:
            if world == "local":
                lab.start_app(params, start_position="earliest")
            else:
                lab.start_app(params, start_position="earliest", zip_path=zip_path)
        except _Launched:
            pass
        props = Path(launched["cmd"][launched["cmd"].index("--properties") + 1])
        sql = JobSettings.from_properties(json.loads(props.read_text())).sql()
    assert f"INTERVAL '{W}'" in sql or f"'{W}'" in sql or str(W) in sql, "W never reached SQL"
    return [*walk.files, "sql/anomaly_detection.sql"]


def main() -> int:
    for world in ("local", "aws-on-emulator"):
        files = _walk(world)
        print(f"{world}: {len(files)} files: " + " -> ".join(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
