"""Settings reach a child process one way (issue 22): a notebook's parameters win over the
``LAB_*`` variables of the shell it was started from, in the notebook and in every background
process it starts (the traffic generator, the analytics runner, the ESM runner).

Each parent is asked to start its child as the notebook would; the command and environment it
launches with are recorded; that exact command is then run in a fresh interpreter whose
environment carries ``LAB_*`` values that disagree, and the first ``LabConfig`` the child
builds is printed. It must be the notebook's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labhelpers.background import BackgroundProcess
from labhelpers.infra.config import LabConfig, load_config

# The child runs its module as __main__, but the first LabConfig it builds reports itself
# and ends the process: what it would have run with, without running it.
_SNIFF = """
import json, os, runpy, sys
from labhelpers.infra import config

def _report(self, _orig=config.LabConfig.__post_init__):
    _orig(self)
    print("CHILD-CONFIG " + json.dumps({
        "backend": self.backend, "prefix": self.prefix, "region": self.region,
        "home": str(self.home), "emulator_port": self.emulator_port,
        "emulated": self.emulated, "profile": self.profile}), flush=True)
    os._exit(0)

config.LabConfig.__post_init__ = _report
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""

# What the shell says: every value differs from the notebook's.
# (LAB_EMULATED=0 with a local notebook is refused in the notebook itself: see the ESM test.)
SHELL = {"LAB_BACKEND": "aws", "LAB_PREFIX": "shellprefix", "LAB_REGION": "eu-west-1",
         "LAB_EMULATOR_PORT": "4999", "LAB_PROFILE": "shell-profile"}


class _Launched(Exception):
    """Raised instead of starting the child: the command and environment it would get."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None) -> None:
        super().__init__("launched")
        self.cmd, self.env = cmd, env


@pytest.fixture
def notebook_cfg(tmp_path, monkeypatch) -> LabConfig:
    """The config a notebook builds from its parameters cell in a shell with other LAB_*."""
    for key, value in SHELL.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "shell-home"))
    cfg = load_config(backend="local", prefix="nbprefix", region="us-west-2",
                      home=tmp_path / "nb-home", emulator_port=4777)
    assert (cfg.backend, cfg.prefix, cfg.region, cfg.emulated) == (
        "local", "nbprefix", "us-west-2", True), cfg
    return cfg


def _launch(monkeypatch, start) -> _Launched:
    def fake_start(self, cmd, *, env=None, **kw):  # noqa: ARG001
        raise _Launched(list(cmd), env)

    monkeypatch.setattr(BackgroundProcess, "start", fake_start)
    with pytest.raises(_Launched) as caught:
        start()
    return caught.value


def _child_config(launched: _Launched, home: Path, **shell: str) -> dict:
    """Run the launched command (``python -m MODULE ...``) and return the child's config."""
    cmd = launched.cmd
    assert cmd[1] == "-m", cmd
    env = dict(launched.env if launched.env is not None else os.environ)
    env.update(SHELL, **shell)
    env["LAB_HOME"] = str(home / "shell-home")
    out = subprocess.run([sys.executable, "-c", _SNIFF, *cmd[2:]], env=env, cwd=home,
                         capture_output=True, text=True, timeout=120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("CHILD-CONFIG ")]
    assert lines, f"the child built no LabConfig:\n{out.stdout}\n{out.stderr}"
    return json.loads(lines[0].removeprefix("CHILD-CONFIG "))


def _expect(cfg: LabConfig) -> dict:
    return {"backend": cfg.backend, "prefix": cfg.prefix, "region": cfg.region,
            "home": str(cfg.home), "emulator_port": cfg.emulator_port,
            "emulated": cfg.emulated, "profile": cfg.profile}


def test_the_traffic_child_follows_the_notebook(notebook_cfg, monkeypatch, tmp_path):
    from labhelpers.generate import traffic

    launched = _launch(monkeypatch, lambda: traffic.start(notebook_cfg, duration_s=5))
    assert _child_config(launched, tmp_path) == _expect(notebook_cfg)


def test_the_analytics_runner_child_follows_the_notebook(notebook_cfg, monkeypatch, tmp_path):
    from labhelpers.analytics import runner

    launched = _launch(monkeypatch, lambda: runner.start(notebook_cfg, alerts=False,
                                                         start_position="earliest"))
    assert _child_config(launched, tmp_path) == _expect(notebook_cfg)


def test_the_esm_runner_child_follows_the_notebook(tmp_path, monkeypatch):
    """The ESM runner serves the aws backend on the emulator: the notebook says aws and
    emulated, the shell says a real account in another region."""
    for key, value in SHELL.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAB_EMULATED", "0")
    cfg = load_config(backend="aws", emulated=True, prefix="nbprefix", region="us-west-2",
                      home=tmp_path / "nb-home", emulator_port=4777)
    from labhelpers.alerts import esm_runner

    launched = _launch(monkeypatch, lambda: esm_runner.start(cfg))
    assert _child_config(launched, tmp_path, LAB_EMULATED="0") == _expect(cfg)


def test_settings_survive_the_round_trip_through_arguments(tmp_path):
    cfg = LabConfig(backend="aws", emulated=True, prefix="round-trip", region="eu-north-1",
                    profile="p", home=tmp_path, emulator_port=4601)
    assert LabConfig.from_args(cfg.to_args()) == cfg
    plain = LabConfig(home=tmp_path)
    assert LabConfig.from_args(plain.to_args()) == plain
