"""The class report: students' run folders in one page; a wrong folder is a clear error."""

from __future__ import annotations

import json

from labhelpers.cli import main
from labhelpers.run.headless import record_values


def test_class_report_collects_runs(tmp_path, capsys):
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    for d in (ann, bob):
        d.mkdir()
    record_values(ann, prefix="ann", emulator_running=True, stack_outputs={},
                  records_sent_at_02=5, windows_scored_at_03=2, alerts_received=1,
                  alert_latency_s=6.5, max_score=4.2, leftovers=[],
                  exercise_02_template={"ok": True, "message": "20 records rendered"},
                  prediction_spike_score=5)
    record_values(bob, prefix="bob", emulator_running=True,
                  exercise_02_template={"ok": False, "message": "no field 'user'"})
    out = tmp_path / "class.html"
    assert main(["class-report", str(ann), str(bob), "--out", str(out)]) == 0
    page = out.read_text()
    assert "6/6: 00, 01, 02, 03, 04, 05" in page and "1/6: 00" in page
    assert "done: 20 records rendered" in page and "not yet: no field &#x27;user&#x27;" in page
    assert "prediction spike_score" in page and ">5<" in page and "6.5" in page
    assert "1 finished every step" in page
    assert json.loads((ann / "values.json").read_text())["prefix"] == "ann"


def test_not_a_run_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["class-report", str(tmp_path / "empty"), "--out", str(tmp_path / "x.html")])
    err = capsys.readouterr().err
    assert code != 0 and "is not a run folder: it has no values.json" in err, err
    assert not (tmp_path / "x.html").exists()
    code = main(["class-report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.html")])
    assert code != 0 and "is not a folder" in capsys.readouterr().err
