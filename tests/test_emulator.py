"""The local emulator: start/reuse/stop, state file, busy port, stale state, aws no-op."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import psutil
import pytest

from labhelpers.errors import EmulatorError
from labhelpers.infra import emulator
from labhelpers.infra.config import LabConfig


def test_aws_backend_is_a_noop(tmp_path):
    cfg = LabConfig(backend="aws", home=tmp_path)
    assert emulator.start(cfg)["running"] is False, "aws backend must not start anything"
    assert "real AWS" in emulator.status(cfg)["note"], "the no-op must say why"
    assert emulator.stop(cfg) is False
    emulator.ensure_running(cfg)  # no error: nothing to check on AWS
    assert not (tmp_path / "emulator").exists(), "no emulator files for the aws backend"


def test_stale_state_file_is_removed(tmp_path, free_port):
    cfg = LabConfig(home=tmp_path, emulator_port=free_port)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = cfg.emulator_dir / f"moto-{cfg.emulator_port}.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"pid": dead.pid, "port": cfg.emulator_port}))
    st = emulator.status(cfg)
    assert st["running"] is False, st
    assert not state.exists(), "a state file of a dead process must be cleaned up"


def test_not_running_error_names_the_fix(tmp_path, free_port):
    cfg = LabConfig(home=tmp_path, emulator_port=free_port)
    with pytest.raises(EmulatorError) as err:
        emulator.ensure_running(cfg)
    text = str(err.value)
    assert f"not running on 127.0.0.1:{cfg.emulator_port}" in text, text
    assert "python -m labhelpers emulator start" in text and "notebook 00" in text, text


@pytest.mark.integration
def test_busy_port_raw_socket(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        cfg = LabConfig(home=tmp_path, emulator_port=sock.getsockname()[1])
        with pytest.raises(EmulatorError) as err:
            emulator.start(cfg)
    text = str(err.value)
    assert "already used by another program" in text and "LAB_EMULATOR_PORT" in text, text
    assert not (cfg.emulator_dir / f"moto-{cfg.emulator_port}.json").exists()


@pytest.mark.integration
def test_busy_port_other_http_server(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = LabConfig(home=tmp_path, emulator_port=server.server_address[1])
        with pytest.raises(EmulatorError, match="LAB_EMULATOR_PORT"):
            emulator.start(cfg)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_lifecycle_reuse_adopt_stop(tmp_path, free_port):
    cfg = LabConfig(home=tmp_path, emulator_port=free_port)
    first = emulator.start(cfg, warm_up=False)
    try:
        assert first["running"] and not first["reused"], first
        pid = first["pid"]
        assert os.getsid(pid) != os.getsid(0), "the server must run in its own session"
        state = json.loads((cfg.emulator_dir / f"moto-{cfg.emulator_port}.json").read_text())
        assert state["pid"] == pid and state["port"] == cfg.emulator_port and state["started_at"]
        assert (cfg.emulator_dir / f"moto-{cfg.emulator_port}.log").exists(), "log file"

        again = emulator.start(cfg)
        assert again["reused"] and again["pid"] == pid, "a running server must be reused"
        emulator.ensure_running(cfg)

        # A server whose state file vanished (LAB_HOME cleaned by hand) is adopted, not doubled.
        (cfg.emulator_dir / f"moto-{cfg.emulator_port}.json").unlink()
        adopted = emulator.start(cfg)
        assert adopted["reused"] and adopted["pid"] == pid, adopted
    finally:
        stopped = emulator.stop(cfg)
    assert stopped is True, "stop must report that it stopped the server"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert emulator.stop(cfg) is False, "stopping twice is harmless"
    assert emulator.status(cfg)["running"] is False
    with pytest.raises(EmulatorError, match="emulator start"):
        emulator.ensure_running(cfg)


@pytest.mark.integration
def test_session_emulator_answers(emulator_cfg):
    st = emulator.status(emulator_cfg)
    assert st["running"] and st["endpoint"] == f"http://127.0.0.1:{emulator_cfg.emulator_port}"
    assert emulator_cfg.client("s3").list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
