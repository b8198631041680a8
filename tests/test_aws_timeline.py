"""The student's by-hand timeline on the aws backend against the emulator (issue 25), with the
pinned commands and ``LAB_BACKEND=aws LAB_EMULATED=1``: emulator start, deploy, generate
start, app start, app stop (traffic goes on), app start, export input OUT.jsonl, export
scores OUT.csv. The stand-in service takes a snapshot at the stop and restores it at the
second start, so every scored window equals a recount of the exported input, none missing
from the first on and none twice (tests/test_stream_semantics.py: the same on local).

Before issue 25 the same timeline scored 16 windows twice and lost the forests."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from tests.connector_jar import require_connector_jar

pytestmark = [pytest.mark.integration, pytest.mark.live]
REPO = Path(__file__).resolve().parent.parent
WINDOW_S = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recount(input_jsonl: Path, window_s: int = WINDOW_S) -> Counter:
    """Clicks and impressions per (window start ms, site, action) from the exported input."""
    counts: Counter = Counter()
    for line in input_jsonl.read_text().splitlines():
        rec = json.loads(line)
        if "event_time" not in rec:
            continue
        ms = int(datetime.fromisoformat(rec["event_time"].replace("Z", "+00:00"))
                 .timestamp() * 1000)
        counts[(ms - ms % (window_s * 1000), rec["site"], rec["browseraction"])] += 1
    return counts


def check_scores(input_jsonl: Path, scores_csv: Path) -> dict[tuple[int, str], tuple]:
    """Every scored window equals the recount; none twice; none missing from the first on.
    The scored windows by (start ms, site)."""
    counts = recount(input_jsonl)
    with open(scores_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [(int(datetime.fromisoformat(r["window_start"]).timestamp() * 1000), r["site"])
            for r in rows]
    twice = {k: n for k, n in Counter(keys).items() if n > 1}
    assert not twice, f"{len(twice)} window(s) scored twice: {sorted(twice)[:5]}"
    got = {k: (int(r["clicks"]), int(r["impressions"])) for k, r in zip(keys, rows,
                                                                        strict=True)}
    assert got, "no window scored"
    first, last = min(k[0] for k in got), max(k[0] for k in got)
    for (start, site), (clicks, imps) in got.items():
        want = (counts[(start, site, "Click")], counts[(start, site, "Impression")])
        assert (clicks, imps) == want, f"window {start} {site}: scored {clicks}/{imps}, " \
                                       f"the input holds {want[0]}/{want[1]}"
    expected = {(s, site) for (s, site, _a) in counts if first <= s <= last}
    missing = sorted(expected - set(got))
    assert not missing, f"windows missing between the first and the last: {missing[:5]}"
    return got


def test_stop_and_start_on_aws_lose_nothing_and_score_nothing_twice(tmp_path):
    require_connector_jar()
    env = {**os.environ, "LAB_HOME": str(tmp_path / "home"), "LAB_BACKEND": "aws",
           "LAB_EMULATED": "1", "LAB_PREFIX": "tlaws", "LAB_EMULATOR_PORT": str(_free_port())}

    def lab(*args: str, timeout: float = 600) -> str:
        done = subprocess.run([sys.executable, "-m", "labhelpers", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    lab("emulator", "start")
    try:
        lab("deploy")
        lab("generate", "start", "--sites", "example.com", "shop.example",
            "--click-rate", "3", "--impression-rate", "5")
        time.sleep(30)  # traffic ahead of the app
        lab("app", "start", "--start-position", "earliest")
        time.sleep(40)
        stopped = lab("app", "stop")
        time.sleep(40)  # traffic goes on while the app is stopped
        resumed = lab("app", "start", "--start-position", "earliest")
        time.sleep(50)
        lab("generate", "stop")
        time.sleep(25)  # the last windows close and reach the scores stream
        lab("export", "input", str(tmp_path / "OUT.jsonl"))
        lab("export", "scores", str(tmp_path / "OUT.csv"))
        got = check_scores(tmp_path / "OUT.jsonl", tmp_path / "OUT.csv")
        assert len(got) >= 2 * 12, f"only {len(got)} windows scored"
        assert "STOPPING" in stopped, stopped  # as the service says it
        assert "from its latest snapshot" in resumed, resumed
    finally:
        subprocess.run([sys.executable, "-m", "labhelpers", "cleanup"], env=env, cwd=REPO,
                       capture_output=True, timeout=600)
