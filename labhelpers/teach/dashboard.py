"""Flink's web dashboard of the running local app: where it is, and a link that opens it.

The app's mini-cluster serves Flink's own dashboard on a free loopback port (its log says
"Web frontend listening at http://127.0.0.1:PORT"). In a local JupyterLab the browser opens
that address directly; on a JupyterHub the browser is elsewhere, and jupyter-server-proxy
(when installed in the hub's environment) forwards ``<JUPYTERHUB_SERVICE_PREFIX>proxy/PORT/``
to it. On the aws backend the managed service has its own dashboard (the console's "Open
Apache Flink dashboard").
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import time
import urllib.request
from pathlib import Path

from ..infra.config import LabConfig

_LISTENING = re.compile(r"Web frontend listening at (http://[\d.]+:(\d+))")

WHAT_TO_LOOK_AT = (
    ("Jobs > Running Jobs > the job", "the job graph: the source, the SQL's calc and window "
     "aggregate, the scorer (the forest) and the sinks, with records received and sent per "
     "operator"),
    ("a box of the graph > Watermarks", "the watermark each operator has reached: the window "
     "aggregate's is LATENESS_SECONDS behind the newest event time"),
    ("Checkpoints", "how many completed, their size (the forests' state) and the last one's "
     "time: what a restart resumes from"),
    ("a box > Metrics / BackPressure", "whether an operator cannot keep up (none should, at "
     "the lab's rates)"),
)


def local_url(cfg: LabConfig) -> str | None:
    """The dashboard's loopback address from the running app's Flink log (None: no local
    app, or its log does not say)."""
    from ..analytics.runner import app_dir

    logs = sorted((app_dir(cfg) / "log").glob("flink-*.log"), key=lambda p: p.stat().st_mtime)
    for log in reversed(logs):
        found = _LISTENING.findall(log.read_text(errors="replace"))
        if found:
            return found[-1][0] + "/"
    return None


def answers(url: str, timeout: float = 10.0, tries: int = 3) -> bool:
    """True when Flink's REST API answers at ``url`` (a busy machine answers slowly: a few
    tries)."""
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url + "overview", timeout=timeout) as resp:  # noqa: S310
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def proxy_url(url: str) -> str | None:
    """The same dashboard through jupyter-server-proxy (None when it is not installed)."""
    if importlib.util.find_spec("jupyter_server_proxy") is None:
        return None
    port = url.rstrip("/").rsplit(":", 1)[-1]
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return f"{prefix.rstrip('/')}/proxy/{port}/"


class Dashboard:
    """The links to show in a notebook (HTML) and the same as text."""

    def __init__(self, direct: str | None, proxied: str | None, alive: bool) -> None:
        self.direct, self.proxied, self.alive = direct, proxied, alive

    def __repr__(self) -> str:
        if not self.direct:
            return ("No local Flink dashboard: the app is not running here (on AWS open it "
                    "from the console's Managed Apache Flink application page).")
        links = [f"on this machine: {self.direct}"]
        if self.proxied:
            links.append(f"through Jupyter (a hub): {self.proxied}")
        state = "" if self.alive else " (it does not answer now: is the app running?)"
        return "Flink dashboard" + state + ": " + "; ".join(links)

    def _repr_html_(self) -> str:
        if not self.direct:
            return f"<p>{html.escape(repr(self))}</p>"
        items = [f"<a href='{html.escape(self.direct)}' target='_blank'>{html.escape(self.direct)}"
                 "</a> (a browser on this machine: a local JupyterLab)"]
        if self.proxied:
            items.append(f"<a href='{html.escape(self.proxied)}' target='_blank'>"
                         f"{html.escape(self.proxied)}</a> (through Jupyter: on a JupyterHub)")
        else:
            items.append("on a JupyterHub: install jupyter-server-proxy in the hub's "
                         "environment, then this cell shows a second link")
        rows = "".join(f"<li><b>{html.escape(w)}</b>: {html.escape(t)}</li>"
                       for w, t in WHAT_TO_LOOK_AT)
        state = "" if self.alive else " <i>(not answering now: is the app running?)</i>"
        return (f"<div class='lab-dashboard'><p><b>Flink's dashboard</b>{state}</p><ul>"
                + "".join(f"<li>{i}</li>" for i in items) + f"</ul><p>What to look at:</p>"
                f"<ul>{rows}</ul></div>")


def dashboard(cfg: LabConfig) -> Dashboard:
    """The dashboard of the running local app, with both links where they can work."""
    direct = local_url(cfg)
    if direct is None:
        return Dashboard(None, None, False)
    return Dashboard(direct, proxy_url(direct), answers(direct))


def log_dir(cfg: LabConfig) -> Path:
    """Where the app's Flink logs are (the dashboard's address is read from them)."""
    from ..analytics.runner import app_dir

    return app_dir(cfg) / "log"
