"""The lab as a student or a class server gets it, outside the checkout (issue 23).

One shared environment is built once for both tests, the way INSTRUCTOR.md says ("A class on
one server"): the wheel built from this checkout, installed (not editable) with JupyterHub
into a fresh virtual environment in another folder, readable by every user, its JVM cache
built and its kernel registered.

- From there, in a folder that is not the checkout, ``clicklab`` replays a stream and notebook
  00 runs from the student's copy of the notebooks (``clicklab notebooks DIR``).
- A real JupyterHub (configurable-http-proxy from npm, LocalProcessSpawner, PAM, the committed
  jupyterhub_config.py) serves two Unix users made with useradd; each runs notebooks 00, 01
  (deploy, and an alert through the emulator's SNS) and 05 through their own single-user
  server, at the same time, with the same prefix; each gets their own emulator port, lab home,
  run record and alert, and cannot read the other's home.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labhelpers.generate.plan import lab_test_plan
from labhelpers.generate.timeline import timeline, to_line
from labhelpers.infra.config import REPO_ROOT

# Building the shared environment is a full install (~3 min on an idle 2-core machine with
# pip's cache warm, several times that under load): more than the suite's default timeout.
pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(2400)]
CI = os.environ.get("CI") == "true"
KERNEL = "clicklab"  # the kernel the shared environment registers (INSTRUCTOR.md)
HUB_VERSION = "jupyterhub>=5.2"  # the `hub` extra's pin is what INSTRUCTOR.md installs
PROXY = "configurable-http-proxy@5"


def _run(cmd, timeout=900, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}")
    return proc.stdout


def _base_python() -> str:
    """An interpreter every user can run: Debian's /usr/bin/python3 when it is 3.11/3.12 (a
    venv made from one under /root, e.g. pyenv's, is unreadable for students), else ours."""
    system = Path("/usr/bin/python3")
    if system.exists():
        out = subprocess.run([system, "-c", "import sys, venv; print(sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() in ("(3, 11)", "(3, 12)"):
            return str(system)
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="module")
def shared_env():
    """The class's shared environment (INSTRUCTOR.md steps 1-3), in a folder every user can
    read; removed at the end."""
    parent = "/opt" if os.access("/opt", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="clicklab-shared-", dir=parent))
    root.chmod(0o755)
    env_dir = root / "env"
    try:
        started = time.monotonic()
        # 1. the wheel, built from the checkout
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", REPO_ROOT,
              "-w", root / "wheels"])
        (wheel,) = (root / "wheels").glob("labhelpers-*.whl")
        # 2. a fresh environment with the lab (not editable) and JupyterHub. The versions of
        # the environment running this test as constraints: the class gets what the suite
        # tested, and pip has little to resolve (unconstrained, Debian 12's Python 3.11.2
        # backtracked for over 15 minutes: soupsieve 4 needs 3.11.5).
        base = _base_python()
        _run([base, "-m", "venv", env_dir])
        _run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", "--upgrade", "pip"])
        tested = root / "tested-versions.txt"
        tested.write_text(_tested_versions(_run([base, "-c", "import platform; print("
                                                 "platform.python_version())"]).strip()))
        _run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[hub]",
              "-c", tested], timeout=1500)
        # 3. the JVM start-up cache and the kernel, inside the environment
        _run([env_dir / "bin" / "clicklab", "jvm-cache"])
        _run([env_dir / "bin" / "python", "-m", "ipykernel", "install", "--sys-prefix",
              "--name", KERNEL, "--display-name", "Clickstream lab"])
        print(f"shared environment built in {time.monotonic() - started:.0f} s")
        yield env_dir
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _tested_versions(python_version: str) -> str:
    """Constraints: this environment's packages at their versions, less the ones whose version
    needs a newer Python than the class's interpreter (pip picks an older one of those)."""
    from importlib.metadata import distributions

    from packaging.specifiers import SpecifierSet

    pins = set()
    for dist in distributions():
        name, needs = dist.metadata["Name"], dist.metadata.get("Requires-Python")
        if name.lower() == "labhelpers" or (needs and python_version not in SpecifierSet(needs)):
            continue
        pins.add(f"{name}=={dist.version}\n")
    return "".join(sorted(pins))


def _student_env(env_dir: Path, home: Path, prefix: str) -> dict[str, str]:
    """A shell of a student's, not the developers': the shared environment's commands first,
    nothing of this checkout or of this test run's lab settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{env_dir / 'bin'}:/usr/bin:/bin", LAB_HOME=str(home), LAB_PREFIX=prefix)
    return env


def test_the_wheel_runs_the_lab_from_another_folder(shared_env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _student_env(shared_env, tmp_path / "home", "wheeltest")
    where = _run([shared_env / "bin" / "python", "-c",
                  "import labhelpers.resources as r; print(r.data_dir('sql'))"],
                 cwd=elsewhere, env=env).strip()
    assert Path(where).is_relative_to(shared_env) and not Path(where).is_symlink(), (
        f"the installed package reads its own SQL, not the checkout's: {where}")
    lean = _run([shared_env / "bin" / "python", "-c", "from labhelpers import flinkenv as f; "
                 "print(sorted(p.parent.name for p in f.JOB_IMPORTS.glob('*/__init__.py')))"],
                cwd=elsewhere, env=env).strip()
    assert lean == "['apache_beam', 'pandas', 'pyarrow']", f"the wheel lacks the stand-ins: {lean}"
    helptext = _run(["clicklab", "--help"], cwd=elsewhere, env=env)
    assert helptext.startswith("usage: clicklab") and "notebooks" in helptext, helptext

    plan = lab_test_plan(warmup_s=300, sites=("example.com",))
    start = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    (elsewhere / "in.jsonl").write_text(
        "".join(to_line(r) + "\n" for r in timeline(plan, start, seed=3)))
    out = _run(["clicklab", "replay", "in.jsonl", "--out", "scores"], cwd=elsewhere, env=env)
    summary = json.loads(out[out.index("{"):])
    assert summary["windows"] >= 30 and summary["anomalies"] >= 1, summary
    assert (elsewhere / "scores" / "scores.csv").exists()

    _run(["clicklab", "notebooks", "my-lab"], cwd=elsewhere, env=env)
    lab = elsewhere / "my-lab"
    assert sorted(p.name[:2] for p in lab.glob("*.ipynb")) == [
        "00", "01", "02", "03", "04", "05", "06"]
    try:
        _run(["papermill", "-k", KERNEL, "--cwd", lab, lab / "00_setup.ipynb",
              tmp_path / "00_setup.out.ipynb"], cwd=elsewhere, env=env, timeout=600)
    finally:
        _run(["clicklab", "cleanup"], cwd=elsewhere, env=env, timeout=300)
    (run,) = (lab / "runs").iterdir()
    values = json.loads((run / "values.json").read_text())
    assert values["emulator_running"] is True and run.name.startswith("wheeltest-"), values


# ---------------------------------------------------------------- a class on JupyterHub
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_pair() -> int:
    """A port that is free with the one above it: the hub's internal port, whose neighbour is
    the proxy's API (jupyterhub_config.py). Checking the first alone once failed the test when
    another test's server held the second (EADDRINUSE in the proxy, CI on 2026-12-07)."""
    for _ in range(50):
        with socket.socket() as low, socket.socket() as high:
            low.bind(("127.0.0.1", 0))
            port = low.getsockname()[1]
            try:
                high.bind(("127.0.0.1", port + 1))
            except (OSError, OverflowError):  # taken, or port was the last one
                continue
            return port
    raise RuntimeError("no two neighbouring free ports on 127.0.0.1")


class Hub:
    """The hub's REST API and the students' single-user servers, with the service token."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else {}

    def ready(self) -> bool:
        try:
            return "version" in self.call("GET", "/hub/api/")
        except OSError:
            return False

    def server_ready(self, user: str) -> bool:
        server = self.call("GET", f"/hub/api/users/{user}").get("servers", {}).get("")
        return bool(server and server.get("ready"))

    def run_notebook(self, user: str, path: str, cells: list[str] | None = None) -> list[str]:
        """Open ``path`` in the user's JupyterLab as a browser would (a session, the
        registered kernel, running in the notebook's folder) and run its code cells (or
        ``cells``) in order; the text they printed. A failing cell fails the test."""
        if cells is None:
            home_copy = Path(f"~{user}").expanduser() / "clickstream-lab" / path
            nb = json.loads(home_copy.read_text())
            cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        session = self.call("POST", f"/user/{user}/api/sessions", {
            "path": path, "type": "notebook", "name": path, "kernel": {"name": KERNEL}})
        try:
            return asyncio.run(self._execute(user, session["kernel"]["id"], path, cells))
        finally:
            self.call("DELETE", f"/user/{user}/api/sessions/{session['id']}")

    async def _execute(self, user: str, kernel: str, path: str, cells: list[str]) -> list[str]:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = (self.base.replace("http", "ws", 1)
               + f"/user/{user}/api/kernels/{kernel}/channels")
        ws = await websocket_connect(HTTPRequest(
            url, headers={"Authorization": f"token {self.token}"}, request_timeout=60))
        printed: list[str] = []
        session = uuid.uuid4().hex
        try:
            for i, code in enumerate(cells):
                msg_id = uuid.uuid4().hex
                await ws.write_message(json.dumps({
                    "header": {"msg_id": msg_id, "msg_type": "execute_request",
                               "session": session, "username": user, "version": "5.3",
                               "date": datetime.now(UTC).isoformat()},
                    "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                    "content": {"code": code, "silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False,
                                "stop_on_error": True}}))
                # done when the reply (shell) AND the kernel's idle status (iopub) have come:
                # the two channels share this socket in no fixed order, and a cell's printed
                # text (iopub) may arrive after its reply
                replied = idle = False
                while not (replied and idle):
                    raw = await asyncio.wait_for(ws.read_message(), timeout=300)
                    assert raw is not None, f"{user}: the kernel's connection closed"
                    msg = json.loads(raw)
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "stream":
                        printed.append(content["text"])
                    elif kind == "error":
                        raise AssertionError(f"{user}, {path}, cell {i}: {content['ename']}: "
                                             f"{content['evalue']}\n{code}")
                    elif kind == "execute_reply":
                        assert content["status"] == "ok", f"{user}, {path}, cell {i}: {content}"
                        replied = True
                    elif kind == "status" and content.get("execution_state") == "idle":
                        idle = True
        finally:
            ws.close()
        return printed


def _needs_root_hub() -> str | None:
    if os.geteuid() != 0:
        return "a JupyterHub with Unix users needs root (useradd, LocalProcessSpawner)"
    for tool in ("useradd", "userdel", "npm"):
        if not shutil.which(tool):
            return f"{tool} is missing (.ci/run installs it)"
    return None


def _make_student(name: str) -> None:
    # INSTRUCTOR.md step 4: homes only their owner can read (the run records, the lab home)
    _run(["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700", name])


def _remove_student(name: str) -> None:
    import psutil

    for proc in psutil.process_iter(["username"]):  # what a failed run left (an emulator)
        if proc.info["username"] == name:
            proc.kill()
    from labhelpers.infra.config import release_port_claims

    release_port_claims(Path(f"~{name}").expanduser() / ".clicklab")  # its emulator's port
    subprocess.run(["userdel", "--remove", name], capture_output=True)


INFO_CELL = """import json, os
from labhelpers import load_config
from labhelpers.run.headless import runs_dir
cfg = load_config()
print(json.dumps({"port": cfg.emulator_port, "home": str(cfg.home), "cwd": os.getcwd(),
                  "runs": [str(p) for p in runs_dir().iterdir()], "uid": os.getuid()}))
"""
PEEK_CELL = """import json, os, socket
def reach(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0
try:
    os.listdir({home!r}); home_readable = True
except PermissionError:
    home_readable = False
print(json.dumps({{"home_readable": home_readable, "port_reachable": reach({port})}}))
"""


def test_a_class_on_one_jupyterhub(shared_env, tmp_path):
    why = _needs_root_hub()
    if why:
        if CI:
            pytest.fail(f"the class test must run in CI: {why}")
        pytest.skip(why)
    tag = secrets.token_hex(2)
    students = [f"clk{tag}ana", f"clk{tag}ben"]
    state = tmp_path / "hub"
    proxy = shared_env.parent / "proxy"
    _run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", proxy, PROXY],
         timeout=600)
    token = secrets.token_hex(32)
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "VIRTUAL_ENV"))},
           "PATH": f"{shared_env / 'bin'}:{proxy / 'node_modules' / '.bin'}:/usr/bin:/bin",
           "CLICKLAB_STUDENTS": ",".join(students), "CLICKLAB_HUB_STATE": str(state),
           "CLICKLAB_HUB_PORT": str(port), "CLICKLAB_HUB_API_PORT": str(_free_port_pair()),
           "CLICKLAB_HUB_TOKEN": token}
    hub_log = tmp_path / "hub.log"
    hub_proc = None
    try:
        for name in students:
            _make_student(name)
        with open(hub_log, "w") as log:
            hub_proc = subprocess.Popen(
                [shared_env / "bin" / "jupyterhub", "-f", REPO_ROOT / "jupyterhub_config.py"],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        hub = Hub(port, token)
        _wait(hub.ready, 90, "the hub to answer", hub_log)
        for name in students:
            hub.call("POST", f"/hub/api/users/{name}/server")
        for name in students:
            _wait(lambda n=name: hub.server_ready(n), 240, f"{name}'s JupyterLab", hub_log)
        culling = _kernel_culling(students)

        def each(fn):  # both students at the same time
            results, errors = {}, []

            def one(name):
                try:
                    results[name] = fn(name)
                except BaseException as err:  # reported with the other student's result
                    errors.append(err)

            threads = [threading.Thread(target=one, args=(n,)) for n in students]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, f"{errors}\n(hub log: {hub_log.read_text()[-2000:]})"
            return results

        each(lambda n: [hub.run_notebook(n, book) for book in
                        ("00_setup.ipynb", "01_deploy.ipynb")])
        info = {n: json.loads(out[-1]) for n, out in each(
            lambda n: hub.run_notebook(n, "00_setup.ipynb", [INFO_CELL])).items()}
        a, b = students
        peek = {n: json.loads(out[-1]) for n, out in each(
            lambda n: hub.run_notebook(n, "00_setup.ipynb", [PEEK_CELL.format(
                home=str(Path(f"~{b if n == a else a}").expanduser()),
                port=info[b if n == a else a]["port"])])).items()}
        each(lambda n: hub.run_notebook(n, "05_cleanup.ipynb"))
    finally:
        if hub_proc is not None:
            hub_proc.terminate()
            try:
                hub_proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                hub_proc.kill()
        homes = {n: Path(f"~{n}").expanduser() for n in students}
        records = {n: sorted((homes[n] / "clickstream-lab" / "runs").glob("clicklab-*"))
                   for n in students}
        reports = {n: [(r / "report.html").exists() for r in records[n]] for n in students}
        for name in students:
            _remove_student(name)
    for name in students:
        home = homes[name]
        assert info[name]["home"] == str(home / ".clicklab"), info[name]
        assert info[name]["cwd"] == str(home / "clickstream-lab"), info[name]
        assert info[name]["uid"] != 0, "the student's kernel runs as the student"
        assert len(records[name]) == 1 and reports[name] == [True], (
            f"{name}: one run record with its report in ~/clickstream-lab/runs: {records}")
    assert info[a]["port"] != info[b]["port"], f"one emulator port each: {info}"
    assert culling == {n: "3600" for n in students}, (
        f"each student's server shuts down kernels idle for an hour: {culling}")
    assert not peek[a]["home_readable"] and not peek[b]["home_readable"], (
        f"homes made with HOME_MODE=0700 keep each student's records private: {peek}")
    # What is NOT isolated, as INSTRUCTOR.md says: any local user reaches any loopback port
    assert peek[a]["port_reachable"] and peek[b]["port_reachable"], peek


def _kernel_culling(users: list[str]) -> dict[str, str | None]:
    """Each user's single-user server's idle-kernel timeout (s) from its command line."""
    import psutil

    found: dict[str, str | None] = dict.fromkeys(users)
    for proc in psutil.process_iter(["username", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["username"] in found and any("jupyterhub-singleuser" in a for a in cmd):
            flag = "--MappingKernelManager.cull_idle_timeout="
            found[proc.info["username"]] = next(
                (a.removeprefix(flag) for a in cmd if a.startswith(flag)), None)
    return found


def _wait(check, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"waited {seconds:.0f} s for {what}; hub log:\n"
                         f"{log.read_text()[-4000:]}")
