"""The live monitor of notebook 04: the app's outputs, updated in place while you watch.

A background thread polls the scores stream (``tables.scores_frame``), the alert inbox
(``alerts.inbox``) and the generator's spike counter every ``refresh_s`` seconds and updates
a few widgets without printing anything: a status line (windows scored, windows the forest
has learned, forest ready, spikes, anomalies, alerts, time of the last update), the plot of
CTR and anomaly score per site with the threshold and the anomalies (``tables.plot_scores``),
a table of the latest windows and the inbox.

``show(cfg, threshold)`` displays it and starts it; ``wait_for`` blocks the notebook until
something is seen (with ``wait.wait_until``'s progress bar and time-out); ``stop(save_to=)``
stops the thread and saves the final plot as PNG (headless runs: the run folder's
``scores.png``). It works the same without a browser (papermill): only nobody sees the
widgets. The DOM elements carry stable CSS classes (``lab-monitor``, ``lab-monitor-status``,
``lab-monitor-plot``, ``lab-monitor-table``, ``lab-monitor-inbox``, ``lab-monitor-note``) so
that a browser test can read them.
"""

from __future__ import annotations

import atexit
import html
import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LabError
from ..infra.config import LabConfig
from ..job.contracts import SCORE_COLUMNS
from ..wait import wait_until

PLOT_FILE = "scores.png"  # the final plot in a headless run's folder (tests/test_notebooks.py)
TABLE_ROWS = 8  # latest windows shown in the table
INBOX_ROWS = 5  # latest alerts shown
PLOT_DPI = 80  # the live plot: 10 x 6 inches -> 800 x 480 px
SAVE_DPI = 110  # the saved PNG, as tables.plot_scores saves it

# pyplot is not thread-safe; every render goes through this lock.
_PLOT_LOCK = threading.Lock()
# one running monitor per lab (prefix + home): running the cell again replaces it
_RUNNING: dict[tuple[str, str], LiveMonitor] = {}


@dataclass(frozen=True)
class Snapshot:
    """What the monitor saw at one refresh."""

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCORE_COLUMNS))
    inbox: list[dict[str, Any]] = field(default_factory=list)
    spikes: int | None = None  # the generator's spike counter (None: unknown)
    errors: tuple[str, ...] = ()
    at: float = 0.0  # epoch seconds of the refresh (0: never)
    # per site, windows learned before the start position (a "warm" start, not reported)
    warm_up: dict[str, int] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        """Windows scored so far (all sites)."""
        return len(self.frame)

    @property
    def anomalies(self) -> int:
        return int(self.frame["is_anomaly"].astype(bool).sum()) if self.windows else 0

    @property
    def alerts(self) -> int:
        return len(self.inbox)

    @property
    def sites(self) -> list[str]:
        return sorted(self.frame["site"].unique()) if self.windows else []

    @property
    def forest_ready(self) -> bool:
        """Every site's latest window was scored by a warmed-up forest."""
        return self.windows > 0 and bool(
            self.frame.groupby("site")["forest_ready"].last().astype(bool).all())

    @property
    def learned(self) -> int:
        """Windows the forest has learned, for the site with the fewest (0 without data).

        Every scored window is learned except anomalous ones (held out, see
        ``ForestParams.anomaly_hold_windows``), and so is every window of a warm start's
        warm-up (``warm_up``: read before the start position, learned, not reported): the
        highest score a forest can give grows with this number, so a spike is flagged
        reliably only after enough of them.
        """
        if not self.windows:
            return 0
        df = self.frame
        learned = df["anomaly_score"].notna() & ~df["is_anomaly"].astype(bool)
        per_site = learned.groupby(df["site"]).sum()
        return int(min(n + self.warm_up.get(site, 0) for site, n in per_site.items()))

    @property
    def learned_before_start(self) -> int:
        """Of ``learned``: the windows learned before the start position (0 if none)."""
        return min((self.warm_up.get(site, 0) for site in self.sites), default=0)

    @property
    def normal_after_last_anomaly(self) -> int:
        """Normal windows after the last anomalous one, for the site with the fewest
        (0 if there was no anomaly)."""
        if not self.anomalies:
            return 0
        counts = []
        for _, g in self.frame.groupby("site"):
            flags = g["is_anomaly"].astype(bool).tolist()
            if True in flags:
                counts.append(len(flags) - 1 - max(i for i, f in enumerate(flags) if f))
        return min(counts)


def render_png(df: pd.DataFrame, threshold: float, dpi: int = PLOT_DPI) -> bytes:
    """``tables.plot_scores`` as PNG bytes, without leaving a figure for the notebook to
    show (it is closed at once, and not queued for inline display)."""
    import matplotlib.pyplot as plt

    from .tables import plot_scores

    with _PLOT_LOCK:
        interactive = plt.isinteractive()
        plt.ioff()  # not queued for display at the end of the running cell
        try:
            fig = plot_scores(df, threshold)
        finally:
            if interactive:
                plt.ion()
        plt.close(fig)  # out of pyplot's list of figures; the Figure still draws
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt_time(ts: Any) -> str:
    try:
        return pd.Timestamp(ts).strftime("%H:%M:%S")
    except (ValueError, TypeError):
        return str(ts)


def status_html(snap: Snapshot, threshold: float, running: bool, note: str = "") -> str:
    """The status line. Each figure is in a span with class ``lab-monitor-<name>`` and reads
    ``name: value`` (e.g. ``anomalies: 2``)."""
    if snap.at:
        updated = datetime.fromtimestamp(snap.at, tz=UTC).strftime("%H:%M:%S UTC")
    else:
        updated = "never"
    items = [("windows", f"windows scored: {snap.windows}"),
             ("learned", f"learned per site: {snap.learned}"
                         + (f" ({snap.learned_before_start} before the start)"
                            if snap.learned_before_start else "")),
             ("ready", f"forest ready: {'yes' if snap.forest_ready else 'no'}"),
             ("spikes", f"spikes: {'?' if snap.spikes is None else snap.spikes}"),
             ("anomalies", f"anomalies: {snap.anomalies}"),
             ("alerts", f"alerts: {snap.alerts}"),
             ("threshold", f"threshold: {threshold:g}"),
             ("updated", f"updated: {updated}"),
             ("state", "live" if running else "stopped")]
    color = "#c00" if snap.anomalies else "inherit"
    spans = " · ".join(
        f"<span class='lab-monitor-{k}'"
        + (f" style='color:{color};font-weight:bold'" if k == "anomalies" else "")
        + f">{html.escape(v)}</span>" for k, v in items)
    out = f"<div>{spans}</div>"
    if note:
        out += (f"<div class='lab-monitor-note' style='color:#b36b00'>"
                f"{html.escape(note)}</div>")
    for err in snap.errors:
        out += f"<div class='lab-monitor-error' style='color:#c00'>{html.escape(err)}</div>"
    return out


def table_html(df: pd.DataFrame, rows: int = TABLE_ROWS) -> str:
    """The latest ``rows`` windows (newest last); anomalous rows in red."""
    if df.empty:
        return "<i>no scored windows yet</i>"
    head = ("window start", "site", "clicks", "impressions", "CTR %", "score", "run sum",
            "anomaly", "flagged by")
    cell = "padding:0 8px;white-space:nowrap"
    out = ["<table class='lab-monitor-rows'><tr>"
           + "".join(f"<th style='{cell}'>{h}</th>" for h in head) + "</tr>"]
    for _, r in df.tail(rows).iterrows():
        bad = bool(r["is_anomaly"])
        score = r["anomaly_score"]
        ctr = r["ctr"]
        run = r.get("run_score")
        cells = (_fmt_time(r["window_start"]), r["site"], r["clicks"], r["impressions"],
                 "" if pd.isna(ctr) else f"{ctr:.0f}",
                 "" if pd.isna(score) else f"{score:.2f}",
                 "" if run is None or pd.isna(run) else f"{run:.1f}",
                 "ANOMALY" if bad else "", flagged_by_words(r.get("flagged_by")) if bad else "")
        style = " style='color:#c00;font-weight:bold'" if bad else ""
        cls = "lab-monitor-anomaly" if bad else "lab-monitor-normal"
        out.append(f"<tr class='{cls}'{style}>" + "".join(
            f"<td style='{cell}'>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def flagged_by_words(value: Any) -> str:
    """A row's ``flagged_by`` in the table: "forest score" or "run rule: <sum>"."""
    if value == "score":
        return "forest score"
    if isinstance(value, str) and value.startswith("run:"):
        return "run rule: " + value[4:]
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def inbox_html(messages: Sequence[dict[str, Any]], rows: int = INBOX_ROWS) -> str:
    """The latest alerts received (subject, site, when)."""
    if not messages:
        return "<b>Inbox</b>: <i>no alerts yet</i>"
    items = "".join(
        f"<li class='lab-monitor-alert'>{html.escape(str(m.get('received_at', ''))[11:19])} "
        f"<b>{html.escape(str(m.get('subject') or '(no subject)'))}</b> "
        f"({html.escape(str(m.get('site') or ''))})</li>" for m in list(messages)[-rows:])
    return f"<b>Inbox</b> ({len(messages)} alert{'s' if len(messages) != 1 else ''}):<ul>" \
           f"{items}</ul>"


class LiveMonitor:
    """Watches one lab's outputs and keeps the widgets up to date (see the module's text).

    frames / inbox / spikes: where the data comes from (default: the backend's scores and
    inbox, and the generator's status for ``cfg``); tests pass stand-ins.
    """

    def __init__(self, cfg: LabConfig, threshold: float, *, run_dir: str | Path | None = None,
                 refresh_s: float = 2.0,
                 frames: Callable[[], pd.DataFrame] | None = None,
                 inbox: Callable[[], list[dict[str, Any]]] | None = None,
                 spikes: Callable[[], int | None] | None = None,
                 warm_up: Callable[[], dict[str, int]] | None = None) -> None:
        import ipywidgets as w

        from ..backends import for_config
        from ..generate import traffic
        from . import tables as monitor

        self.cfg, self.threshold = cfg, float(threshold)
        self.run_dir = Path(run_dir) if run_dir else None
        self.refresh_s = float(refresh_s)
        lab = for_config(cfg)
        self._frames = frames or (lambda: monitor.scores_frame(lab))
        self._inbox = inbox or lab.inbox
        self._spikes = spikes or (lambda: traffic.status(cfg).get("spikes"))
        self._warm_up = warm_up or lab.warm_up_windows
        self._snap = Snapshot()
        self._plotted: tuple | None = None  # what the shown plot was drawn from
        self._note = ""
        self._lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renders = 0  # plots drawn (tests: unchanged data is not drawn again)

        self.status = w.HTML(status_html(self._snap, self.threshold, False))
        self.plot = w.Image(format="png", layout=w.Layout(max_width="820px"))
        self.table = w.HTML(table_html(self._snap.frame))
        self.inbox = w.HTML(inbox_html([]))
        self.status.add_class("lab-monitor-status")
        self.plot.add_class("lab-monitor-plot")
        self.table.add_class("lab-monitor-table")
        self.inbox.add_class("lab-monitor-inbox")
        self.widget = w.VBox([
            w.HTML("<b>Live monitor</b>: CTR and anomaly score per window and site "
                   f"(threshold {self.threshold:g}; red circles: anomalies)"),
            self.status, self.plot, w.HBox([self.table, self.inbox])])
        self.widget.add_class("lab-monitor")

    # ---- reading ----
    def _read(self) -> Snapshot:
        errors = []
        frame, inbox, spikes = self._snap.frame, self._snap.inbox, self._snap.spikes
        try:
            frame = self._frames()
        except Exception as err:  # shown, and the last frame kept: the monitor goes on
            errors.append(f"scores: {type(err).__name__}: {err}")
        try:
            inbox = list(self._inbox())
        except (LabError, OSError) as err:
            errors.append(f"inbox: {err}")
        except Exception as err:  # botocore errors when the emulator went away
            errors.append(f"inbox: {type(err).__name__}: {err}")
        try:
            spikes = self._spikes()
        except (LabError, OSError, ValueError):
            pass
        warm_up = self._snap.warm_up
        try:
            warm_up = dict(self._warm_up())
        except (LabError, OSError, ValueError) as err:
            errors.append(f"warm-up: {err}")
        return Snapshot(frame=frame, inbox=inbox, spikes=spikes, errors=tuple(errors),
                        at=time.time(), warm_up=warm_up)

    def refresh(self) -> Snapshot:
        """Read the outputs once and update the widgets; returns what was seen. Problems
        (the emulator stopped, a stream not there yet) are shown, not raised."""
        with self._lock:
            snap = self._read()
            self._snap = snap
            df = snap.frame
            key = (len(df), str(df["window_end"].iloc[-1]) if len(df) else "",
                   snap.anomalies)
            if key != self._plotted:
                self.plot.value = render_png(df, self.threshold)
                self._plotted = key
                self.renders += 1
            self.table.value = table_html(df)
            self.inbox.value = inbox_html(snap.inbox)
            self.status.value = status_html(snap, self.threshold, self.running, self._note)
            return snap

    def latest(self) -> pd.DataFrame:
        """The score rows as last read (refreshed now if the monitor is not running)."""
        return self.snapshot().frame

    def snapshot(self) -> Snapshot:
        """The last refresh (a new one if the monitor is not running)."""
        if not self.running:
            return self.refresh()
        return self._snap

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts in the inbox, as last read."""
        return self.snapshot().inbox

    # ---- waiting ----
    def wait_for(self, predicate: Callable[[Snapshot], Any], what: str,
                 timeout: float = 300) -> Any:
        """Block until ``predicate(snapshot)`` is truthy and return its value (WaitTimeout
        after ``timeout`` s). The snapshot has ``frame``, ``inbox``, ``windows``,
        ``learned``, ``forest_ready``, ``anomalies``, ``alerts``, ``spikes``."""
        def check() -> Any:
            if not self.running:
                self.refresh()
            return predicate(self._snap)

        return wait_until(check, what, timeout=timeout,
                          interval=min(1.0, max(0.2, self.refresh_s / 2)))

    def wait_for_forest(self, learned: int = 20, timeout: float = 300) -> Snapshot:
        """Wait until every site's forest is warmed up and has learned ``learned`` windows."""
        return self.wait_for(lambda s: s if s.forest_ready and s.learned >= learned else None,
                             f"the forest to learn {learned} windows per site", timeout)

    def wait_for_spike(self, timeout: float = 300) -> int:
        """Wait for a spike asked elsewhere (the Spike button of notebook 02's panel, or
        ``traffic.spike`` / ``python -m labhelpers generate spike``): until the generator's
        spike counter goes up. Returns the new count."""
        before = self.snapshot().spikes or 0
        self._note = ("waiting for a spike: press Spike in notebook 02's generator panel "
                      "(or run traffic.spike(cfg))")
        self.status.value = status_html(self._snap, self.threshold, self.running, self._note)
        try:
            return self.wait_for(lambda s: s.spikes if (s.spikes or 0) > before else None,
                                 "a spike (press Spike in notebook 02's panel)", timeout)
        finally:
            self._note = ""

    # ---- running ----
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveMonitor:
        """Start refreshing every ``refresh_s`` seconds in a daemon thread (idempotent)."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="live-monitor", daemon=True)
        self._thread.start()
        _register(self)
        return self

    def _loop(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as err:  # a closed widget or a kernel going away: stop quietly
                try:
                    self.status.value = (f"<div class='lab-monitor-error'>monitor stopped: "
                                         f"{html.escape(str(err))}</div>")
                except Exception:
                    pass
                return
            if self._stop.wait(self.refresh_s):
                return

    def stop(self, save_to: str | Path | None = None, timeout: float = 10) -> Path | None:
        """Stop refreshing (idempotent; never raises for a thread that is gone), refresh one
        last time and save the final plot as PNG: to ``save_to``, else to ``run_dir``'s
        ``scores.png`` when there is a run folder (headless runs). Returns the path saved,
        None if nothing was saved."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        _unregister(self)
        try:
            snap = self.refresh()
        except Exception:  # the kernel is shutting down: nothing to show any more
            return None
        if save_to is None and self.run_dir is not None:
            save_to = self.run_dir / PLOT_FILE
        if save_to is None:
            return None
        path = Path(save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_png(snap.frame, self.threshold, dpi=SAVE_DPI))
        return path

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _key(cfg: LabConfig) -> tuple[str, str]:
    return (cfg.prefix, str(cfg.home))


def _register(mon: LiveMonitor) -> None:
    old = _RUNNING.get(_key(mon.cfg))
    if old is not None and old is not mon:
        old.stop()
    _RUNNING[_key(mon.cfg)] = mon


def _unregister(mon: LiveMonitor) -> None:
    if _RUNNING.get(_key(mon.cfg)) is mon:
        del _RUNNING[_key(mon.cfg)]


@atexit.register
def _stop_all() -> None:
    """The kernel is going away: stop every monitor's thread, quietly."""
    for mon in list(_RUNNING.values()):
        mon._stop.set()
    _RUNNING.clear()


def show(cfg: LabConfig, threshold: float, run_dir: str | Path | None = None,
         refresh_s: float = 2.0, **kwargs: Any) -> LiveMonitor:
    """Display a live monitor for ``cfg`` and start it (a monitor already running for the
    same lab, from an earlier run of the cell, is stopped when this one starts)."""
    from IPython.display import display

    mon = LiveMonitor(cfg, threshold, run_dir=run_dir, refresh_s=refresh_s, **kwargs)
    display(mon.widget)
    mon.refresh()
    return mon.start()


__all__ = ["LiveMonitor", "Snapshot", "render_png", "show"]
