"""Shared fixtures. ``emulator_cfg``: one real moto server for the integration tests."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from labhelpers.infra import emulator
from labhelpers.infra.config import LabConfig


def pytest_configure(config) -> None:
    """Under pytest-xdist (`make test` runs each lane on several workers) every worker gets a
    lab home of its own, so two workers never share an emulator, a stack or a port claim."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        base = Path(os.environ.get("LAB_HOME") or tempfile.mkdtemp(prefix="clicklab-test-"))
        os.environ["LAB_HOME"] = str(base / f"xdist-{worker}")


# The longest modules of the notebooks/browser/live lane (minutes each), started first: that
# lane runs a module per worker (`make test`: --dist loadscope --no-loadscope-reorder), so a
# long module picked up last would end the run alone.
LONG_FIRST = ("test_installed.py", "test_notebooks.py", "test_aws_timeline.py",
              "test_stream_semantics.py")


def pytest_collection_modifyitems(config, items) -> None:
    """The modules of LONG_FIRST first, in that order; every other test keeps its place."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def free_port() -> int:
    """A loopback port nothing listens on right now."""
    return _free_port()


@pytest.fixture(scope="session")
def emulator_cfg(tmp_path_factory):
    """A LabConfig (prefix "testlab", temporary LAB_HOME, free port) with the emulator running.

    Tests that need their own resources use ``emulator_cfg.with_(prefix=...)``: every name
    then differs, and all share this one server (stopped at the end of the session).
    """
    home = tmp_path_factory.mktemp("labhome")
    cfg = LabConfig(home=home, emulator_port=_free_port(), prefix="testlab")
    emulator.start(cfg)
    yield cfg
    emulator.stop(cfg)
