"""The local AWS emulator: a moto server on a loopback port, shared by every notebook and kernel.

``start`` launches ``python -m moto.server`` as a detached background process (its own
session, so it outlives the kernel that started it) and records its pid, port and start time
in a state file under ``cfg.emulator_dir``. Any later call, from any process, reads that file
and reuses the running server. The emulator keeps everything in memory: stopping it forgets
every bucket, stream and stack it held.

For the ``aws`` backend these functions do nothing and say so.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..background import BackgroundProcess
from ..errors import EmulatorError
from . import emulator_services
from .config import LabConfig

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
MARKER = "moto"  # in the server's command line

_AWS_NOTE = "backend 'aws' uses real AWS endpoints: there is no local emulator to manage"
_FIX_START = "run `python -m labhelpers emulator start` or notebook 00 (setup)."


def process(cfg: LabConfig) -> BackgroundProcess:
    """The moto server's background process; one state file and log per port, so two
    configurations with different ports never collide."""
    return BackgroundProcess(cfg.emulator_dir / f"moto-{cfg.emulator_port}.json", MARKER,
                             cfg.emulator_dir / f"moto-{cfg.emulator_port}.log")


def _port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_moto(port: int, timeout: float = 2.0) -> bool:
    """Whether the program on the port answers like a moto server (its /moto-api/config)."""
    try:
        with urllib.request.urlopen(
            f"http://{HOST}:{port}/moto-api/config", timeout=timeout
        ) as resp:
            body = json.loads(resp.read(65536).decode("utf-8"))
        return isinstance(body, dict) and "lambda" in body
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _listener_pid(port: int) -> int | None:
    """The pid of a moto server listening on the port (best effort; None if unknown)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        if "moto" not in " ".join(proc.info.get("cmdline") or []):
            continue
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@contextmanager
def _start_lock(cfg: LabConfig):
    """Serialise starts across processes (two kernels starting at once start one server)."""
    cfg.emulator_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the port check still prevents doubles
        yield
        return
    with open(cfg.emulator_dir / f"moto-{cfg.emulator_port}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _busy_port_error(port: int) -> EmulatorError:
    return EmulatorError(
        f"Port {port} on {HOST} is already used by another program, not by the lab's emulator",
        f"choose another port, e.g. set LAB_EMULATOR_PORT={port + 1 if port < 65535 else 4599} "
        "(or pass emulator_port=...) and start the emulator again.",
    )


def _warm_up(cfg: LabConfig) -> None:
    # moto's CloudFormation imports its services' code on its first call (~5 s with every
    # service, under 1 s with the lab's: emulator_services); pay that here, once.
    cfg.client("cloudformation").list_stacks()


def _aws_noop() -> dict[str, Any]:
    return {"backend": "aws", "running": False, "pid": None, "port": None, "endpoint": None,
            "note": _AWS_NOTE}


def status(cfg: LabConfig) -> dict[str, Any]:
    """Where the emulator stands: ``running``, ``pid``, ``port``, ``endpoint``, ``started_at``.

    A state file left by a server that died is removed here.
    """
    if not cfg.world.emulator:
        return _aws_noop()
    server = process(cfg)
    state = server.state()
    if state and not server.running:
        server.state_file.unlink(missing_ok=True)  # stale: the process is gone
        state = {}
    running = _is_moto(cfg.emulator_port) if (state or _port_open(cfg.emulator_port)) else False
    return {
        "backend": cfg.backend,
        "running": running,
        "pid": state.get("pid") if running else None,
        "port": cfg.emulator_port,
        "endpoint": cfg.endpoint_url,
        "started_at": state.get("started_at") if running else None,
        "log": str(server.log),
        "state_file": str(server.state_file),
    }


def start(cfg: LabConfig, timeout: float = START_TIMEOUT_S, warm_up: bool = True) -> dict[str, Any]:
    """Start the emulator on ``127.0.0.1:cfg.emulator_port``, or reuse the one running there.

    Returns ``status(cfg)`` plus ``reused`` (True when a running server was found).
    ``warm_up`` makes the server load its CloudFormation support now (about 5 s) rather than
    during the first deploy.
    Raises EmulatorError when the port is taken by another program or the server does not
    answer within ``timeout`` seconds.
    """
    if not cfg.world.emulator:
        return {**_aws_noop(), "reused": False}
    port = cfg.emulator_port
    server = process(cfg)
    with _start_lock(cfg):
        current = status(cfg)  # also removes a stale state file
        if current["running"]:
            if current["pid"] is None:
                # A moto server we did not record (state file deleted, or started by hand):
                # adopt it so that stop() can end it later.
                server.write_state(pid=_listener_pid(port), port=port, adopted=True,
                                   started_at=_now())
            return {**status(cfg), "reused": True}
        if server.running:  # our recorded server is alive but does not answer (hung)
            server.stop(STOP_TIMEOUT_S)
        if _port_open(port):
            raise _busy_port_error(port)
        cfg.emulator_dir.mkdir(parents=True, exist_ok=True)
        # moto behind the limits a real account enforces (labhelpers.infra.moto_rules)
        # only the services the lab uses (LAB_EMULATOR_SERVICES=all: every one)
        services = os.environ.get(emulator_services.ENV, "")
        try:  # a wrong name fails here, not in the server
            emulator_services.selected(services)
        except ValueError as err:
            raise EmulatorError(str(err), f"unset {emulator_services.ENV} or fix it, then "
                                "start the emulator again.") from None
        cmd = [sys.executable, "-m", "labhelpers.infra.moto_rules", "-H", HOST, "-p", str(port),
               "--services", services or ",".join(emulator_services.SERVICES)]
        server.start(cmd, cwd=cfg.emulator_dir, fresh_log=True, port=port,
                     started_at=_now(), command=cmd)

        def failed(why: str) -> EmulatorError:
            if "address already in use" in why.lower():
                return _busy_port_error(port)
            return EmulatorError(
                f"The emulator (moto server) on {HOST}:{port} did not start: {why}",
                "check that moto[server] is installed in this environment "
                "(pip install 'moto[all,server]') and start it again; a slow first start can "
                "take longer: start(cfg, timeout=120).")

        server.wait_ready(lambda: _is_moto(port, timeout=1.0), "the emulator to answer",
                          timeout, failed, interval=0.1)
        if warm_up:
            _warm_up(cfg)
    return {**status(cfg), "reused": False}


def stop(cfg: LabConfig) -> bool:
    """Stop the emulator on ``cfg.emulator_port``. True if one was stopped, False if none ran.

    Everything the emulator held (buckets, streams, the stack) is gone afterwards.
    """
    if not cfg.world.emulator:
        return False
    server = process(cfg)
    with _start_lock(cfg):
        if server.running:
            return server.stop(STOP_TIMEOUT_S)
        # No live recorded process; a moto server may still answer (started by hand).
        pid = _listener_pid(cfg.emulator_port) if _is_moto(cfg.emulator_port) else None
        server.state_file.unlink(missing_ok=True)
        if not pid:
            return False
        server.write_state(pid=pid)
        return server.stop(STOP_TIMEOUT_S)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ensure_running(cfg: LabConfig) -> None:
    """Raise EmulatorError unless the emulator answers (local backend); nothing for ``aws``."""
    if not cfg.world.emulator:
        return
    if not _is_moto(cfg.emulator_port):
        raise EmulatorError(
            f"The local emulator is not running on {HOST}:{cfg.emulator_port} "
            "(it does not survive a reboot, and stopping it forgets every resource it held)",
            f"{_FIX_START} Then deploy again (notebook 01 or `python -m labhelpers deploy`).",
        )
