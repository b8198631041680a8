"""A by-hand walk-through leaves the same record as `make run` (issue 12): values.json,
summary.json and report.html in the student's own run folder; and a class on one server gets
one emulator port per lab home."""

from __future__ import annotations

import html
import json
import socket

from labhelpers.infra.config import PORT_FILE, load_config
from labhelpers.run.headless import finish_run, record_values, run_folder, show_report


def test_a_by_hand_run_keeps_its_record_in_the_students_folder(tmp_path, monkeypatch, capsys):
    """runs/ beside the notebooks: the kernel's folder, which JupyterLab shows."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_RUNS_DIR", raising=False)
    folder = tmp_path / "my-lab"
    folder.mkdir()
    monkeypatch.chdir(folder)  # a notebook's kernel runs in the notebook's folder
    cfg = load_config(prefix="student-7")
    first = run_folder(cfg, "", new=True)  # notebook 00
    assert first.parent == folder / "runs" and first.name.startswith("student-7-")
    assert run_folder(cfg, "") == first, "later notebooks add to the same folder"
    record_values(first, records_sent=120, windows_scored=30, anomalies=2, alerts_received=1,
                  alert_latency_s=9.5, leftovers=[])
    report = finish_run(first)
    summary = json.loads((first / "summary.json").read_text())
    assert summary["records_sent"] == 120 and summary["alerts_received"] == 1
    assert summary["seconds"] is not None and summary["seconds"] >= 0
    assert report.exists() and "exactly one alert arrived" in report.read_text()
    out = capsys.readouterr().out
    assert f"runs/{first.name}" in out and str(tmp_path) not in out, (
        f"the last notebook names the folder as the file browser shows it: {out}")
    shown = show_report(first)
    assert "exactly one alert arrived" in html.unescape(shown.data) and "<iframe" in shown.data


def test_headless_runs_keep_their_own_folder(tmp_path):
    cfg = load_config(home=tmp_path)
    assert run_folder(cfg, tmp_path / "runs" / "x") == tmp_path / "runs" / "x"


def test_two_lab_homes_get_two_emulator_ports(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_EMULATOR_PORT", raising=False)
    with socket.socket() as taken:  # another program (or another student) holds a port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("LAB_EMULATOR_PORT", str(port))
        a = load_config(home=tmp_path / "a")
        assert a.emulator_port != port, "a taken port is not used"
        monkeypatch.delenv("LAB_EMULATOR_PORT")
        assert load_config(home=tmp_path / "a").emulator_port == a.emulator_port, (
            "the chosen port is remembered in the lab home")
        assert (tmp_path / "a" / PORT_FILE).read_text().strip() == str(a.emulator_port)
        b = load_config(home=tmp_path / "b")
        assert b.emulator_port != port


def test_a_class_starting_at_once_gets_one_port_each(tmp_path, monkeypatch):
    """Thirty students run notebook 00 at the same moment: no two lab homes share a port."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv("LAB_EMULATOR_PORT", raising=False)
    homes = [tmp_path / f"student{i}" for i in range(30)]
    with ThreadPoolExecutor(30) as pool:
        ports = list(pool.map(lambda h: load_config(home=h).emulator_port, homes))
    assert len(set(ports)) == 30, f"shared ports: {sorted(ports)}"
    assert [load_config(home=h).emulator_port for h in homes] == ports, "each keeps its port"


def test_a_headless_run_says_how_much_each_notebooks_kernel_held(tmp_path):
    """A kernel keeps its memory while its notebook stays open: summary.json, the printed
    progress and the report give each notebook's kernel at its largest, so that an
    instructor can size a class server (a notebook that holds 200 MB more says so)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from labhelpers.run.headless import run_lab

    books = []
    for name, code in (("00_small.ipynb", "x = 1"),
                       ("01_large.ipynb", "blob = bytearray(200 * 2**20)\nblob[::4096] = "
                                          "b'1' * len(blob[::4096])")):
        nb = new_notebook(cells=[new_code_cell("RUN_DIR = ''\nSOLVE_TASKS = False",
                                               metadata={"tags": ["parameters"]}),
                                 new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, tmp_path / name)
        books.append(tmp_path / name)
    run = run_lab(tmp_path / "run", notebooks=books, folder=tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    small, large = summary["kernel_mb"]["00_small.ipynb"], summary["kernel_mb"]["01_large.ipynb"]
    assert 20 < small < 200, summary["kernel_mb"]
    assert large - small >= 180, summary["kernel_mb"]
    assert f"its kernel {large} MB" in (run / "report.html").read_text()
