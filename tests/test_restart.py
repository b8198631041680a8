"""Kill the app mid-stream and start it again: it resumes from its last checkpoint, no
window is lost or reported twice, and every forest continues from its saved state, so the
scores equal an uninterrupted run's (here: a replay of the same records)."""

import csv
import os
import signal
import time
from datetime import UTC, datetime

import pytest

from labhelpers.analytics import runner as app
from labhelpers.analytics.replay import replay
from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline, to_line
from labhelpers.infra.config import LabConfig
from labhelpers.monitor.tables import scores_frame
from labhelpers.stream.log import StreamLogWriter
from labhelpers.wait import wait_until

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
CHUNK_S = 60  # event-time seconds per stream-log file
FOREST = {"warmup_windows": 6}
SILENT = (180, 360)  # event-time seconds in which shop.example sends nothing (silent test)


def _chunks(lines):
    chunks: dict[int, list[str]] = {}
    for line in lines:
        minute = int(datetime.fromisoformat(line.split('"event_time":"')[1][:19]).timestamp())
        chunks.setdefault(minute // CHUNK_S, []).append(line)
    return [chunks[k] for k in sorted(chunks)]


def _write_slowly(writer, chunks):
    for chunk in chunks:
        writer.append(chunk)
        time.sleep(1.5)  # one file per directory scan, in order (FINDINGS: file source order)


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    plan = lab_test_plan(warmup_s=420, sites=("example.com", "shop.example"))
    lines = [to_line(r) for r in timeline(plan, START, seed=5)]
    _kill_and_resume(tmp_path, lines)


def test_a_silent_stretch_across_the_restart_continues_as_without_one(tmp_path):
    """shop.example sends nothing from minute 3 to minute 6; the app is killed in the
    middle of that silence (after minute 4) and resumed. The dark-site windows (event-time
    timers and the waiting rows are keyed state) go on across the restart exactly as in an
    uninterrupted run: none lost, none twice, the same scores and flags."""
    plan = lab_test_plan(warmup_s=420, sites=("example.com", "shop.example"))
    t0 = START.timestamp()
    recs = [r for r in timeline(plan, START, seed=5)
            if not (r["site"] == "shop.example"
                    and SILENT[0] <= datetime.fromisoformat(r["event_time"]).timestamp() - t0
                    < SILENT[1])]
    got, ref = _kill_and_resume(tmp_path, [to_line(r) for r in recs])

    def zero_windows(rows):
        return {k for k, r in rows.items() if k[1] == "shop.example"
                and int(r["clicks"]) == int(r["impressions"]) == 0}

    dark = zero_windows(ref)
    assert len(dark) == (SILENT[1] - SILENT[0]) // 10, sorted(dark)
    assert zero_windows(got) == dark, "a dark window was lost or invented across the restart"
    flagged = [k for k in dark if str(got[k]["is_anomaly"]) == "True"]
    assert flagged, "the silence was flagged"


def _kill_and_resume(tmp_path, lines):
    """Replay ``lines`` uninterrupted (the reference), then feed them to the app, kill it
    after the first half, resume it, feed the rest; check that the result equals the
    reference. Returns (the app's rows, the reference's rows), keyed by (start, site)."""
    (tmp_path / "all.jsonl").write_text("\n".join(lines) + "\n")
    replay(tmp_path / "all.jsonl", tmp_path / "ref", forest=FOREST)
    with open(tmp_path / "ref" / "scores.csv") as fh:
        reference = list(csv.DictReader(fh))

    cfg = LabConfig(home=tmp_path / "home", prefix="restartlab")
    writer = StreamLogWriter(cfg.stream_dir(cfg.input_stream))
    chunks = _chunks(lines)
    half = len(chunks) // 2
    app.start(cfg, alerts=False, forest=FOREST, start_position="earliest",
              wait_seconds=300)
    try:
        _write_slowly(writer, chunks[:half])
        wait_until(lambda: len(scores_frame(cfg)) >= (half - 1) * CHUNK_S // 10 * 2,
                   "the first half scored", timeout=120)
        time.sleep(3)  # at least one more checkpoint after those windows
        os.killpg(app.status(cfg)["pid"], signal.SIGKILL)  # a crash, not a clean stop
        wait_until(lambda: not app.status(cfg)["running"], "the app to die", timeout=30)
        assert app.latest_checkpoint(cfg) is not None, "no checkpoint survived the crash"
        resumed = app.start(cfg, alerts=False, forest=FOREST, start_position="earliest",
                            wait_seconds=300)
        assert resumed["resumed_from"], "the second start must resume from the checkpoint"
        _write_slowly(writer, chunks[half:])
        expected = len(reference) - 2  # the last window of each site waits for later records
        wait_until(lambda: len(scores_frame(cfg)) >= expected, "all windows", timeout=120)
        time.sleep(3)
    finally:
        app.stop(cfg)
    df = scores_frame(cfg)
    keys = list(zip(df["window_start"], df["site"], strict=True))
    assert len(keys) == len(set(keys)), "a window was reported twice"
    ref = {(r["window_start"], r["site"]): r for r in reference}
    got = {(r["window_start"].strftime("%Y-%m-%dT%H:%M:%S.000Z"), r["site"]): r
           for r in df.to_dict("records")}
    missing = sorted(set(ref) - set(got))
    assert len(missing) == 2, f"windows lost in the restart: {missing}"
    for key, r in got.items():
        want = ref[key]
        assert (r["clicks"], r["impressions"]) == (int(want["clicks"]), int(want["impressions"]))
        assert r["anomaly_score"] == pytest.approx(float(want["anomaly_score"]), abs=1e-9), (
            f"score differs at {key}: the forest did not continue from its state")
        assert str(r["is_anomaly"]) == want["is_anomaly"]
    assert df["is_anomaly"].sum() >= 4, "the spike (two sites x two windows) was flagged"
    return got, ref
