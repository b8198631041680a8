"""The two pinned export commands: the input stream as JSON lines, the scores as CSV."""

import csv
import json

from labhelpers.cli import main
from labhelpers.stream.log import StreamLogWriter


def test_export_input_and_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAB_PREFIX", "exportlab")
    from labhelpers.infra.config import load_config

    cfg = load_config()
    writer = StreamLogWriter(cfg.stream_dir(cfg.input_stream))
    recs = [{"browseraction": "Click", "site": "a", "event_time": f"2026-11-27T10:00:0{i}.000Z"}
            for i in range(5)]
    writer.append([json.dumps(r) for r in recs[:3]])
    writer.append([json.dumps(r) for r in recs[3:]] + ["garbage"])
    scores = StreamLogWriter(cfg.stream_dir(cfg.scores_stream))
    row = {"window_start": "2026-11-27T10:00:10.000Z", "window_end": "2026-11-27T10:00:20.000Z",
           "site": "a", "clicks": 3, "impressions": 4, "ctr": 75.0, "anomaly_score": 0.5,
           "is_anomaly": False, "forest_ready": True, "attribution": None, "episode_id": None}
    scores.append([json.dumps(row), json.dumps({**row, "window_start": "2026-11-27T10:00:00.000Z",
                                                "window_end": "2026-11-27T10:00:10.000Z"})])
    assert main(["export", "input", str(tmp_path / "in.jsonl")]) == 0
    lines = [json.loads(ln) for ln in (tmp_path / "in.jsonl").read_text().splitlines()]
    assert lines == [*recs, {"line": "garbage"}], "every record, in stream order"
    assert main(["export", "scores", str(tmp_path / "s.csv")]) == 0
    with open(tmp_path / "s.csv") as fh:
        got = list(csv.DictReader(fh))
    need = "window_start,window_end,site,clicks,impressions,ctr,anomaly_score,is_anomaly"
    assert list(got[0])[:8] == need.split(",")
    assert [r["window_start"] for r in got] == ["2026-11-27T10:00:00.000Z",
                                                "2026-11-27T10:00:10.000Z"]
    assert got[0]["clicks"] == "3" and got[0]["is_anomaly"] == "False"
