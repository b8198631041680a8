"""Driving JupyterLab in headless Chromium (Playwright with Debian's chromium): a server on a
free loopback port, notebooks opened, run and read through JupyterLab's own app object.
Shared by the browser test (tests/test_browser.py) and the timed walk-through
(bench/walkthrough_times.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
CHROMIUM = os.environ.get("LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(name: str, nb_dir: Path, params: dict) -> None:
    """Copy notebook ``name`` into the served folder with its parameters injected, as
    papermill would (the cell tagged ``injected-parameters``), without running it."""
    import papermill as pm

    pm.execute_notebook(str(NOTEBOOKS / name), str(nb_dir / name), parameters=params,
                        prepare_only=True, progress_bar=False, kernel_name="python3")


class JupyterLab:
    """A JupyterLab server on a free loopback port, serving ``root``."""

    def __init__(self, root: Path, work: Path, env: dict) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = work / "lab-settings"
        for ext, name, value in (
            # every cell in the DOM (no virtual scrolling), so widgets can be found by class
            ("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"}),
            ("@jupyterlab/apputils-extension", "notification",
             {"fetchNews": "false", "checkForUpdates": False}),
        ):
            path = settings / ext / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.log = work / "jupyter.log"
        lab_env = {**env, "JUPYTER_CONFIG_DIR": str(work / "jupyter-config"),
                   "JUPYTER_RUNTIME_DIR": str(work / "jupyter-runtime")}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.allow_root=True",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={work / 'lab-workspaces'}"]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, env=lab_env, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def api(self, path: str, method: str = "GET") -> object:
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, ValueError):
                self.api("/api/status")
                return
            time.sleep(0.3)
        raise AssertionError("JupyterLab did not start:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        """Shut the kernels down, then the server; kill what is left of its children."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        with contextlib.suppress(Exception):
            for kernel in self.api("/api/kernels"):  # type: ignore[union-attr]
                self.api(f"/api/kernels/{kernel['id']}", "DELETE")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


# JavaScript run in the page (JupyterLab exposes its app as window.jupyterapp).
JS_OPEN = """async (path) => {
  const app = window.jupyterapp;
  await app.started; await app.restored;
  const w = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await w.context.ready;
  await w.sessionContext.ready;
  window.__lab = window.__lab || {};
  window.__lab[path] = w;
  app.shell.activateById(w.id);
  return w.id;
}"""
JS_RUN_ALL = """async (path) => {
  const app = window.jupyterapp, w = window.__lab[path];
  for (let i = 0; i < 50 && app.shell.currentWidget !== w; i++) {
    app.shell.activateById(w.id);
    await new Promise(r => setTimeout(r, 100));
  }
  if (app.shell.currentWidget !== w) throw new Error('could not activate ' + path);
  app.commands.execute('notebook:run-all-cells');  // not awaited: it runs for minutes
  return true;
}"""
JS_ACTIVATE = """async (path) => {
  const app = window.jupyterapp, w = window.__lab[path];
  for (let i = 0; i < 50 && app.shell.currentWidget !== w; i++) {
    app.shell.activateById(w.id);
    await new Promise(r => setTimeout(r, 100));
  }
  return app.shell.currentWidget === w;
}"""
JS_ERRORS = """(path) => {
  const cells = window.__lab[path].content.model.cells, out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error')
        out.push(o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n'));
    }
  }
  return out;
}"""


class Lab:
    """The JupyterLab page: open notebooks, run them, read widgets by CSS class."""

    def __init__(self, page, shots: list[Path], shot_dir: Path) -> None:
        self.page, self.shots, self.shot_dir = page, shots, shot_dir
        self.ids: dict[str, str] = {}

    def open(self, path: str) -> None:
        self.ids[path] = self.page.evaluate(JS_OPEN, path)

    def run_all(self, path: str) -> None:
        self.page.evaluate(JS_RUN_ALL, path)

    def activate(self, path: str) -> None:
        assert self.page.evaluate(JS_ACTIVATE, path), f"{path}: not the current tab"
        self.page.wait_for_timeout(300)

    def find(self, path: str, css: str):
        return self.page.locator(f'[id="{self.ids[path]}"] {css}').first

    def text(self, path: str, css: str) -> str:
        loc = self.find(path, css)
        return loc.inner_text(timeout=2000) if loc.count() else ""

    def check_errors(self, path: str) -> None:
        errors = self.page.evaluate(JS_ERRORS, path)
        if errors:
            clean = re.sub(r"\x1b\[[0-9;]*m", "", errors[0])
            raise AssertionError(f"{path} failed in the browser:\n{clean[-3000:]}")

    def wait(self, path: str, check, what: str, timeout: float, every: float = 0.5):
        """Poll ``check()`` until truthy; fail at once if a cell of ``path`` errs."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_errors(path)
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: no {what} after {timeout:.0f} s")
            self.page.wait_for_timeout(every * 1000)

    def shot(self, name: str, path: str | None = None, css: str | None = None) -> Path:
        file = self.shot_dir / f"{len(self.shots) + 1:02d}-{name}.png"
        if css and path:
            loc = self.find(path, css)
            loc.scroll_into_view_if_needed(timeout=5000)
            self.page.wait_for_timeout(300)
            loc.screenshot(path=str(file), timeout=10_000)
        else:
            self.page.screenshot(path=str(file))
        self.shots.append(file)
        return file

    def type_into_cell(self, path: str, marker: str, text: str) -> None:
        """Replace the code of the cell whose text contains ``marker`` with ``text``, as a
        person would type it (inserted text: no auto-closed brackets), then run it with
        Shift+Enter."""
        cell = self.page.locator(f'[id="{self.ids[path]}"] .jp-CodeCell').filter(
            has_text=marker).first
        editor = cell.locator(".cm-content").first
        editor.scroll_into_view_if_needed(timeout=5000)
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.press("Delete")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Shift+Enter")

    def press_slider(self, path: str, css: str, key: str, times: int) -> None:
        """Move an ipywidgets slider with the keyboard, like a person would."""
        handle = self.find(path, f"{css} .noUi-handle")
        handle.scroll_into_view_if_needed(timeout=5000)
        handle.focus()
        for _ in range(times):
            handle.press(key)
            self.page.wait_for_timeout(150)


