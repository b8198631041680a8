"""The generator's control panel for notebook 02 (ipywidgets).

A rate slider per template, start and stop, a spike button with its size and length, live
counters (sent, acknowledged, retried, throttled, failed, with the last error) and a small
chart of the rate actually achieved.

It drives the background traffic process (``labhelpers.generate.traffic``), not a generator thread
inside the kernel: the traffic must keep flowing while the student moves on to notebooks 03
and 04, survive a kernel restart, be spiked from notebook 04 and stopped by cleanup. Every
button is one call of ``traffic`` (``start``, ``stop``, ``spike``, ``set_rate``), so the
panel does nothing the command line cannot.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import LabError
from ..infra.config import LabConfig
from ..job.contracts import CLICK, IMPRESSION
from .templates import Template

CHART_SECONDS = 120  # the chart shows the last two minutes


def achieved_rates(history: Sequence[Sequence[float]], seconds: float = CHART_SECONDS
                   ) -> list[tuple[float, float]]:
    """``(elapsed_s, acknowledged records/s)`` between consecutive history samples
    (``[elapsed_s, records, acknowledged]``), over the last ``seconds``."""
    if not history:
        return []
    t_end = history[-1][0]
    pts = [h for h in history if h[0] >= t_end - seconds - 1]
    out = []
    for (t0, _, a0), (t1, _, a1) in zip(pts, pts[1:], strict=False):
        if t1 > t0:
            out.append((t1, (a1 - a0) / (t1 - t0)))
    return out


def rate_chart_svg(points: Sequence[tuple[float, float]], planned: float | None = None,
                   width: int = 360, height: int = 110) -> str:
    """A small SVG line chart of achieved records/s (and the planned rate, dashed)."""
    pad_l, pad_b, pad_t = 44, 18, 8
    w, h = width - pad_l - 6, height - pad_b - pad_t
    top = max([r for _, r in points] + [planned or 0, 1.0]) * 1.15
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'style="font:10px sans-serif">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="#fafafa" '
             'stroke="#ccc"/>',
             f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top:,.0f}</text>',
             f'<text x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end">0</text>',
             f'<text x="{pad_l}" y="{height - 4}">records/s acknowledged, last '
             f'{CHART_SECONDS} s</text>']
    if planned:
        y = pad_t + h - planned / top * h
        parts.append(f'<line class="planned" x1="{pad_l}" x2="{pad_l + w}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="#999" stroke-dasharray="4 3"/>')
    if points:
        t_end = points[-1][0]
        xy = " ".join(f"{pad_l + w - (t_end - t) / CHART_SECONDS * w:.1f},"
                      f"{pad_t + h - r / top * h:.1f}"
                      for t, r in points if t_end - t <= CHART_SECONDS)
        parts.append(f'<polyline points="{xy}" fill="none" stroke="#1f77b4" '
                     'stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def css_name(name: str) -> str:
    """A template name as it appears in a CSS class (``lab-rate-<name>``): letters, digits,
    ``-`` and ``_``, anything else as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def counters_html(st: Mapping[str, Any]) -> str:
    """The status counters as a small HTML table (with warning and last error)."""
    sink = st.get("sink") or {}
    running = "running" if st.get("running") else "stopped"
    cells = [("state", running), ("generated", st.get("records", 0)),
             ("sent", sink.get("sent", 0)), ("acknowledged", sink.get("acknowledged", 0)),
             ("retried", sink.get("retried", 0)), ("throttled", sink.get("throttled", 0)),
             ("failed", sink.get("failed", 0)), ("spikes", st.get("spikes", 0))]
    row = "".join(f"<td class='lab-count-{k}' style='padding:0 8px'>"
                  f"<b>{html.escape(str(v))}</b><br>{k}</td>" for k, v in cells)
    out = f"<table><tr>{row}</tr></table>"
    if st.get("last_event_time"):
        out += f"<div>last event time {html.escape(st['last_event_time'])}</div>"
    for key, color in (("warning", "#b36b00"), ("error", "#c00")):
        if st.get(key):
            out += f"<div style='color:{color}'>{html.escape(str(st[key]))}</div>"
    if sink.get("failed") and sink.get("last_error"):
        out += (f"<div style='color:#c00'>last failure: {html.escape(sink['last_error'])} "
                f"(all in {html.escape(str(st.get('failure_log', 'failures.jsonl')))})</div>")
    return out


class GeneratorPanel:
    """Widgets that drive the background traffic (``traffic``) for ``cfg``.

    rates: template name -> records/s per site shown on the sliders (default: the running
    generator's, else Impression 1 and Click 1). templates: your own templates (by name).
    backend: the ``traffic`` module, or a stand-in with the same functions (tests).
    """

    def __init__(self, cfg: LabConfig, sites: Sequence[str] = ("example.com",),
                 rates: Mapping[str, float] | None = None,
                 templates: Mapping[str, Template] | None = None, *, backend: Any = None,
                 max_rate: float = 20.0, refresh_s: float = 1.0) -> None:
        import ipywidgets as w

        if backend is None:
            from . import traffic as backend
        self.cfg, self.sites, self.backend = cfg, list(sites), backend
        self.templates = dict(templates or {})
        self.refresh_s = refresh_s
        current = self._status()
        if current.get("running") and current.get("rates"):
            rates = {**(rates or {}), **current["rates"]}
        rates = dict(rates or {IMPRESSION: 1.0, CLICK: 1.0})
        top = max([max_rate, *rates.values()])
        self.sliders = {
            name: w.FloatSlider(value=rate, min=0.0, max=top, step=0.5, description=name,
                                continuous_update=False, readout_format=".1f",
                                style={"description_width": "120px"},
                                layout=w.Layout(width="420px"))
            for name, rate in rates.items()}
        for name, slider in self.sliders.items():
            slider.observe(lambda change, n=name: self._on_rate(n, change["new"]),
                           names="value")
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop")
        names = list(rates)
        self.spike_template = w.Dropdown(options=names, value=CLICK if CLICK in names
                                         else names[0], description="spike",
                                         layout=w.Layout(width="220px"))
        self.spike_extra = w.IntSlider(value=3, min=1, max=20, description="extra senders",
                                       style={"description_width": "90px"})
        self.spike_seconds = w.IntSlider(value=20, min=5, max=300, step=5,
                                         description="seconds",
                                         style={"description_width": "90px"})
        self.spike_button = w.Button(description="Spike", button_style="warning", icon="bolt")
        self.counters = w.HTML()
        self.chart = w.HTML()
        self.message = w.HTML()
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.spike_button.on_click(lambda _: self.spike())
        self.widget = w.VBox([
            w.HTML("<b>Traffic generator</b> (records/s per site; sites: "
                   f"{html.escape(', '.join(self.sites))})"),
            *self.sliders.values(),
            w.HBox([self.start_button, self.stop_button]),
            w.HBox([self.spike_template, self.spike_extra, self.spike_seconds,
                    self.spike_button]),
            self.counters, self.chart, self.message])
        # stable CSS classes, for browser tests (tests/test_browser.py) and custom styling
        self.widget.add_class("lab-generator")
        for name, slider in self.sliders.items():
            slider.add_class(f"lab-rate-{css_name(name)}")
        for widget, cls in ((self.start_button, "lab-start"), (self.stop_button, "lab-stop"),
                            (self.spike_button, "lab-spike"),
                            (self.spike_template, "lab-spike-template"),
                            (self.spike_extra, "lab-spike-extra"),
                            (self.spike_seconds, "lab-spike-seconds"),
                            (self.counters, "lab-counters"), (self.chart, "lab-rate-chart"),
                            (self.message, "lab-message")):
            widget.add_class(cls)
        self._stop_refresh = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # ---- actions (each one traffic call; errors are shown, not raised: they come from
    # button callbacks, where an exception would vanish into the browser console) ----
    def _status(self) -> dict[str, Any]:
        try:
            return self.backend.status(self.cfg)
        except (LabError, OSError) as err:
            return {"running": False, "error": str(err)}

    def _do(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except LabError as err:
            self.message.value = (f"<div style='color:#c00'>{html.escape(what)} failed: "
                                  f"{html.escape(str(err))}</div>")
            return None
        self.message.value = f"<div>{html.escape(what)}: done</div>"
        self.refresh()
        return result

    @property
    def rates(self) -> dict[str, float]:
        """The sliders' rates (records/s per site)."""
        return {name: float(s.value) for name, s in self.sliders.items()}

    def start(self) -> Any:
        """Start the traffic at the sliders' rates."""
        return self._do("start", self.backend.start, self.cfg, sites=self.sites,
                        rates=self.rates, templates=self.templates or None)

    def stop(self) -> Any:
        """Stop the traffic."""
        return self._do("stop", self.backend.stop, self.cfg)

    def spike(self) -> Any:
        """Spike the chosen template: ``extra senders`` more copies for ``seconds``."""
        name = self.spike_template.value
        return self._do(f"spike {name} x{1 + self.spike_extra.value}", self.backend.spike,
                        self.cfg, extra_senders=self.spike_extra.value,
                        seconds=self.spike_seconds.value, payload=name)

    def _on_rate(self, name: str, rate: float) -> None:
        if self._status().get("running"):
            self._do(f"{name} at {rate:g}/s", self.backend.set_rate, self.cfg, name, rate)

    # ---- display ----
    def refresh(self) -> dict[str, Any]:
        """Read the generator's status and update counters and chart."""
        st = self._status()
        self.counters.value = counters_html(st)
        rates = st.get("rates") or (self.rates if st.get("running") else {})
        planned = sum(rates.values()) * len(self.sites) if st.get("running") else None
        self.chart.value = rate_chart_svg(achieved_rates(st.get("history") or []), planned)
        self.start_button.disabled = bool(st.get("running"))
        self.stop_button.disabled = not st.get("running")
        self.spike_button.disabled = not st.get("running")
        return st

    def start_auto_refresh(self) -> None:
        """Refresh every ``refresh_s`` in a daemon thread until ``close``."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_refresh.clear()

        def loop() -> None:
            while not self._stop_refresh.wait(self.refresh_s):
                try:
                    self.refresh()
                except Exception as err:  # a closed widget or a torn-down kernel: stop
                    self.message.value = f"<div>panel stopped updating: {html.escape(str(err))}"
                    return

        self._thread = threading.Thread(target=loop, name="generator-panel", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop refreshing and remove the widgets (the traffic keeps running)."""
        self._stop_refresh.set()
        self.widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def show(cfg: LabConfig, sites: Sequence[str] = ("example.com",),
         rates: Mapping[str, float] | None = None,
         templates: Mapping[str, Template] | None = None, *, auto_refresh: bool = True,
         **kwargs: Any) -> GeneratorPanel:
    """Display the panel for ``cfg`` and keep it up to date (a refresh per second)."""
    from IPython.display import display

    panel = GeneratorPanel(cfg, sites, rates, templates, **kwargs)
    display(panel.widget)
    if auto_refresh:
        panel.start_auto_refresh()
    return panel
