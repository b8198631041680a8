"""The feeder between the input stream log and the job: order, one unread file at a time,
start positions, and taking back what a checkpoint does not know."""

import json
import os
import time

from labhelpers.job.contracts import format_event_time
from labhelpers.stream.log import Feeder, StreamLogWriter, event_time_ms


def _rec(t: float) -> str:
    return json.dumps({"browseraction": "Click", "site": "a", "event_time": format_event_time(t)})


def _read(path):  # what the job does to a feed file: open and read it
    return path.read_text().splitlines()


def test_backlog_becomes_one_file_and_the_next_waits_until_it_is_read(tmp_path):
    w = StreamLogWriter(tmp_path / "in")
    for i in range(5):
        w.append([_rec(1_800_000_000 + i)])
    f = Feeder(tmp_path / "in", tmp_path / "feed")
    assert f.use_atime, "this machine's file system keeps access times"
    assert f.step() == 5
    w.append([_rec(1_800_000_010)])
    assert f.step() == 0, "the last feed file is unread: nothing more is fed"
    (first,) = sorted((tmp_path / "feed").glob("*.jsonl"))
    assert [event_time_ms(x) for x in _read(first)] == [
        (1_800_000_000 + i) * 1000 for i in range(5)]
    assert f.step() == 1, "read: the next file follows"
    assert f.fed == 6


def test_feeding_goes_on_where_reads_leave_the_access_time_alone(tmp_path, monkeypatch):
    """An NFS home: the probe said access times work, but the job's reads never show. The
    feeder waits ATIME_PATIENCE_S for the first file, then hands over by time."""
    from labhelpers.stream import log

    clock = [1_000.0]
    monkeypatch.setattr(log.time, "time", lambda: clock[0])
    w = StreamLogWriter(tmp_path / "in")
    w.append([_rec(1_800_000_000)])
    f = Feeder(tmp_path / "in", tmp_path / "feed", scan_interval_s=1.0)
    assert f.step() == 1
    w.append([_rec(1_800_000_001)])
    clock[0] += log.ATIME_PATIENCE_S - 1
    assert f.step() == 0, "within the patience the feeder still waits for the read"
    clock[0] += 2  # the job read the file, but its access time did not change
    assert f.step() == 1 and not f.use_atime, "past it: fed, and by time from now on"
    w.append([_rec(1_800_000_002)])
    clock[0] += 1
    assert f.step() == 0, "the timed hand-over gives the job three scans per file"
    clock[0] += 3
    assert f.step() == 1 and f.fed == 3


def test_latest_start_skips_earlier_records_and_resume_continues(tmp_path):
    w = StreamLogWriter(tmp_path / "in")
    now = time.time()
    old = w.append([_rec(now - 30), _rec(now - 20)])
    f = Feeder(tmp_path / "in", tmp_path / "feed", start_ms=int(now * 1000),
               skip_through=old.name)
    w.append([_rec(now - 1), _rec(now + 1)])  # written after the start: one is before it
    assert f.step() == 1 and f.skipped == 3
    # a new process (a resume) finds its position from the feed folder's manifests
    again = Feeder(tmp_path / "in", tmp_path / "feed")
    assert again.step() == 0 and again.skipped == 3 and again.fed == 1


def test_take_back_what_the_checkpoint_does_not_know(tmp_path):
    w = StreamLogWriter(tmp_path / "in")
    f = Feeder(tmp_path / "in", tmp_path / "feed")
    names = []
    for i in range(3):
        w.append([_rec(1_800_000_000 + i)])
        f.step()
        names.append(sorted((tmp_path / "feed").glob("*.jsonl"))[-1])
        _read(names[-1])
    (tmp_path / "chk").mkdir()
    meta = tmp_path / "chk" / "_metadata"
    meta.write_bytes(b"\x00junk" + names[0].name.encode() + b"\x00")  # knows the first only
    g = Feeder(tmp_path / "in", tmp_path / "feed")
    assert g.take_back_unknown(meta) == [n.name for n in names[1:]]
    opened = []
    g.gate = lambda: bool(opened)
    assert g.step() == 0, "nothing is fed before the restored job has taken its files"
    opened.append(True)
    assert g.step() == 2, "the two taken back are fed again, merged into one file"
    files = sorted((tmp_path / "feed").glob("*.jsonl"))
    assert len(files) == 2 and len(_read(files[-1])) == 2
    assert os.path.exists(names[0])
