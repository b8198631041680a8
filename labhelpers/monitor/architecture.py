"""The lab's architecture as one diagram (SVG), with the current notebook's step highlighted.

Every notebook opens with ``architecture.show(step="03")``: the same picture each time, the
boxes that notebook builds or uses drawn in orange, a caption saying what the step does. With
``backend="aws"`` the boxes name the AWS services; with ``"local"`` the stand-ins that run on
this machine. The object returned shows itself as SVG in Jupyter and as one line of text
elsewhere; ``svg(step)`` gives the SVG text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ..errors import ConfigError
from ..infra.config import BACKENDS

WIDTH, HEIGHT = 1040, 346
BOX_W, BOX_H, GAP = 124, 74, 24
ROW1_Y, ROW2_Y, ROW2_H = 92, 214, 56
LEFT = (WIDTH - (7 * BOX_W + 6 * GAP)) // 2

# Colours: normal, highlighted (this step), to be removed (cleanup), dimmed (not used).
NORMAL = {"fill": "#f4f6f8", "stroke": "#9aa5b1", "text": "#1f2933", "width": 1.4}
HIGHLIGHT = {"fill": "#fff1d6", "stroke": "#e07b00", "text": "#1f2933", "width": 3.2}
REMOVE = {"fill": "#fdecea", "stroke": "#c0392b", "text": "#1f2933", "width": 2.6}
ARROW = "#7b8794"
ARROW_ON = "#e07b00"


@dataclass(frozen=True)
class Box:
    """One component: its place, title and two lines per backend."""

    key: str
    col: int          # 0-6, left to right
    row: int          # 1 = the main flow, 2 = below it
    title: str
    local: tuple[str, str]
    aws: tuple[str, str]
    notebook: str     # the notebook that builds or uses it first
    in_stack: bool    # created by the CloudFormation stack (notebook 01)


BOXES = (
    Box("generator", 0, 1, "Generator", ("Click + Impression", "background process"),
        ("Click + Impression", "PutRecords"), "02", False),
    Box("input", 1, 1, "Input stream", ("stream log on disk", "(Kinesis on AWS)"),
        ("Kinesis Data Stream", "<prefix>-clicks"), "01", True),
    Box("app", 2, 1, "Analytics app", ("Flink SQL (local)", "+ Random Cut Forest"),
        ("Managed Flink", "+ Random Cut Forest"), "03", False),
    Box("scores", 3, 1, "Scores stream", ("stream log on disk", "one row per window"),
        ("Kinesis Data Stream", "one row per window"), "01", True),
    Box("alert", 4, 1, "Alert function", ("alert_handler.py", "run by local poller"),
        ("AWS Lambda", "event source mapping"), "01", True),
    Box("sns", 5, 1, "SNS topic", ("in the emulator", "1 message / episode"),
        ("Amazon SNS", "1 message / episode"), "01", True),
    Box("inbox", 6, 1, "Inbox", ("SQS queue", "alerts.inbox(cfg)"),
        ("e-mail / SMS", "confirm the e-mail!"), "04", True),
    Box("raw", 1, 2, "Raw archive", ("S3 raw bucket", ""), ("Firehose -> S3", ""), "02", True),
    Box("dead", 2, 2, "Dead letters", ("bad records + reason", ""),
        ("Kinesis stream", ""), "03", True),
    Box("monitor", 3, 2, "Monitor", ("plot, in-app streams", ""),
        ("plot, in-app streams", ""), "04", False),
    Box("processed", 4, 2, "Processed bucket", ("S3: anomalies/, alerts/", ""),
        ("S3: scores/, anomalies/", ""), "04", True),
)
BOX_KEYS = tuple(b.key for b in BOXES)

# (from, to, label): row-1 arrows go right, row-2 arrows go down from the box above.
EDGES = (
    ("generator", "input", ""),
    ("input", "app", ""),
    ("app", "scores", ""),
    ("scores", "alert", ""),
    ("alert", "sns", ""),
    ("sns", "inbox", ""),
    ("input", "raw", "copy"),
    ("app", "dead", "set aside"),
    ("scores", "monitor", "read"),
    ("alert", "processed", "CSV + claim"),
)


@dataclass(frozen=True)
class Step:
    """What one notebook does in the picture."""

    notebook: str
    name: str
    caption: str
    boxes: frozenset[str]
    bar: bool = False          # the emulator / AWS account bar is part of the step
    style: str = "highlight"   # "highlight" | "remove" (cleanup)
    dim_others: bool = False   # grey out what the step does not use (notebook 06)
    # what a box stands for in this step, when not its usual self: key -> (title, line, line)
    relabel: tuple[tuple[str, tuple[str, str, str]], ...] = ()


_STACK = frozenset(b.key for b in BOXES if b.in_stack)
STEPS = {
    "00": Step("00", "setup", "Setup: check Python and Java, start the local AWS emulator",
               frozenset(), bar=True),
    "01": Step("01", "deploy", "Deploy: one CloudFormation stack makes the streams, buckets, "
               "alert function and SNS topic", _STACK, bar=True),
    "02": Step("02", "generate", "Generate: Click and Impression records flow into the input "
               "stream (and a raw copy to S3)", frozenset({"generator", "input", "raw"})),
    "03": Step("03", "analytics", "Analytics app: Flink SQL counts each window, the forest "
               "scores it, rows go to the scores stream", frozenset({"app", "scores", "dead",
                                                                     "monitor"})),
    "04": Step("04", "monitor", "Monitor and alerts: spike the clicks, watch the score, get "
               "one alert per episode", frozenset({"generator", "monitor", "alert", "sns",
                                                  "inbox", "processed"})),
    "05": Step("05", "cleanup", "Cleanup: stop traffic and app, delete the stack and buckets, "
               "stop the emulator", frozenset(BOX_KEYS), bar=True, style="remove"),
    "06": Step("06", "evaluate", "Evaluate: labelled scenarios replayed through the same job "
               "(no emulator, no alerts)", frozenset({"generator", "app", "scores"}),
               dim_others=True,
               relabel=(("generator", ("Scenario suite", "labelled traffic", "simulated time")),
                        ("app", ("Analytics app", "the same job, via", "replay (event time)")),
                        ("scores", ("Scores", "scores.jsonl", "vs the labels")))),
}
_NAMES = {s.name: key for key, s in STEPS.items()}


# Per backend (the keys are config.BACKENDS): the bar under the boxes, and where things run.
BAR_TEXT = {
    "local": "Local AWS emulator (moto, loopback port): CloudFormation, S3, SNS, SQS, "
             "Kinesis, Lambda. The same template goes to AWS with backend \"aws\".",
    "aws": "Your AWS account: CloudFormation stack from cfn/clickstream.yaml "
           "(streams, Firehose, buckets, Lambda, SNS); Managed Service for Apache Flink",
}
WHERE = {"local": "local emulator", "aws": "AWS account"}

def resolve_step(step: str | int) -> Step:
    """A Step from ``"03"``, ``3``, ``"03_analytics_app"`` or ``"analytics"``."""
    if isinstance(step, int) and not isinstance(step, bool):
        key = f"{step:02d}"
    else:
        text = str(step).strip().lower()
        key = _NAMES.get(text, text[:2])
    if key not in STEPS:
        names = ", ".join(f"{k} ({s.name})" for k, s in STEPS.items())
        raise ConfigError(f"Unknown step {step!r}", f"use one of {names}.")
    return STEPS[key]


def _box_xy(box: Box) -> tuple[int, int, int, int]:
    x = LEFT + box.col * (BOX_W + GAP)
    if box.row == 1:
        return x, ROW1_Y, BOX_W, BOX_H
    return x, ROW2_Y, BOX_W, ROW2_H


def _text(x: float, y: float, text: str, size: float = 11, weight: str = "normal",
          anchor: str = "middle", fill: str = "#1f2933", style: str = "normal") -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" '
            f'font-style="{style}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>')


def svg(step: str | int, backend: str = "local") -> str:
    """The architecture diagram as SVG text, with ``step``'s boxes highlighted."""
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}.")
    st = resolve_step(step)
    on_style = REMOVE if st.style == "remove" else HIGHLIGHT
    by_key = {b.key: b for b in BOXES}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" '
        f'role="img" aria-label="Lab architecture, notebook {st.notebook} highlighted">',
        f"<title>Lab architecture: notebook {st.notebook} ({escape(st.name)})</title>",
        "<defs>",
        *(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
          f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
          f'fill="{colour}"/></marker>' for name, colour in (("off", ARROW), ("on", ARROW_ON))),
        "</defs>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    # The bar: where the AWS services run.
    bar_style = on_style if st.bar else NORMAL
    bar_text = BAR_TEXT[backend]
    bar_opacity = 0.35 if st.dim_others else 1
    if st.dim_others:
        bar_text = "Not used in this notebook: " + bar_text
    parts.append(
        f'<g id="bar" class="{"on" if st.bar else "off"}" opacity="{bar_opacity}">'
        f'<rect x="{LEFT}" y="14" width="{WIDTH - 2 * LEFT}" '
        f'height="40" rx="8" fill="{bar_style["fill"]}" stroke="{bar_style["stroke"]}" '
        f'stroke-width="{bar_style["width"]}" stroke-dasharray="6 4"/>'
        + _text(WIDTH / 2, 39, bar_text, 12, "bold" if st.bar else "normal") + "</g>")
    parts.append(_text(LEFT, 76, "boxes marked \"stack\" are made by the CloudFormation "
                       "stack (notebook 01); the number is the notebook that starts or uses "
                       "them", 10, anchor="start", fill="#52606d", style="italic"))

    # Arrows first, boxes on top.
    for src, dst, label in EDGES:
        a, b = by_key[src], by_key[dst]
        on = src in st.boxes and dst in st.boxes
        colour, width, marker = (ARROW_ON, 2.6, "on") if on else (ARROW, 1.4, "off")
        ax, ay, aw, ah = _box_xy(a)
        bx, by, bw, bh = _box_xy(b)
        if a.row == b.row:
            x1, y1, x2, y2 = ax + aw, ay + ah / 2, bx - 2, by + bh / 2
        else:
            x1, y1, x2, y2 = ax + aw / 2, ay + ah, bx + bw / 2, by - 2
        opacity = 0.35 if st.dim_others and not on else 1
        parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                     f'stroke="{colour}" stroke-width="{width}" opacity="{opacity}" '
                     f'marker-end="url(#arrow-{marker})"/>')
        if label:
            parts.append(_text(x1 + 5, (y1 + y2) / 2 + 4, label, 9.5, anchor="start",
                               fill="#52606d", style="italic"))

    for box in BOXES:
        x, y, w, h = _box_xy(box)
        on = box.key in st.boxes
        style = on_style if on else NORMAL
        opacity = 0.35 if st.dim_others and not on else 1
        relabelled = box.key in dict(st.relabel)
        title, *lines = dict(st.relabel).get(
            box.key, (box.title, *getattr(box, backend)))
        lines = [ln for ln in lines if ln]
        state = ("remove" if st.style == "remove" else "on") if on else "off"
        g = [f'<g id="box-{box.key}" class="{state}" opacity="{opacity}">',
             f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="9" fill="{style["fill"]}" '
             f'stroke="{style["stroke"]}" stroke-width="{style["width"]}"'
             + (' stroke-dasharray="7 4"' if on and st.style == "remove" else "") + "/>"]
        title_y = y + (22 if box.row == 1 else 21)
        g.append(_text(x + w / 2, title_y, title, 13, "bold", fill=style["text"]))
        for i, line in enumerate(lines):
            g.append(_text(x + w / 2, title_y + 17 + 14 * i, line, 10.5, fill="#3e4c59"))
        # the notebook badge (top-left corner) and the stack mark (top-right)
        g.append(f'<circle cx="{x + 2}" cy="{y + 2}" r="10" fill="{style["stroke"]}"/>')
        badge = st.notebook if relabelled else box.notebook
        g.append(_text(x + 2, y + 6, badge, 9.5, "bold", fill="white"))
        if box.in_stack and not relabelled:
            g.append(_text(x + w - 6, y + h - 6, "stack", 8.5, anchor="end", fill="#7b8794",
                           style="italic"))
        g.append("</g>")
        parts.extend(g)

    # The caption: you are here.
    word = "removes" if st.style == "remove" else "is about"
    parts.append(
        f'<rect x="{LEFT}" y="{HEIGHT - 62}" width="{WIDTH - 2 * LEFT}" height="46" rx="8" '
        f'fill="{on_style["fill"]}" stroke="{on_style["stroke"]}" stroke-width="1.5"/>')
    parts.append(_text(LEFT + 14, HEIGHT - 43, f"You are here: notebook {st.notebook}", 12.5,
                       "bold", anchor="start", fill=on_style["stroke"]))
    parts.append(_text(LEFT + 14, HEIGHT - 25, f"{st.caption}  (the coloured boxes are what "
                       f"this notebook {word})", 12, anchor="start"))
    parts.append("</svg>")
    return "\n".join(parts)


def describe(step: str | int, backend: str = "local") -> str:
    """One line of text: the flow, with this step's components in [brackets]."""
    st = resolve_step(step)
    by_key = {b.key: b for b in BOXES}

    def name(key: str) -> str:
        title = by_key[key].title.lower()
        return f"[{title}]" if key in st.boxes else title

    flow = " -> ".join(name(k) for k in ("generator", "input", "app", "scores", "alert",
                                          "sns", "inbox"))
    side = ", ".join(name(k) for k in ("raw", "dead", "monitor", "processed"))
    where = WHERE[backend]
    return (f"Notebook {st.notebook} ({st.name}, {where}): {flow}; also {side}. "
            f"{st.caption}.")


class Diagram:
    """The diagram for one step: SVG in Jupyter, a line of text elsewhere."""

    def __init__(self, step: str | int, backend: str = "local") -> None:
        self.step = resolve_step(step)
        self.backend = backend
        self.svg = svg(step, backend)

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return describe(self.step.notebook, self.backend)

    def save(self, path: Path | str) -> Path:
        """Write the SVG to ``path``; returns the path."""
        path = Path(path)
        path.write_text(self.svg, encoding="utf-8")
        return path


def show(step: str | int, backend: str | None = None) -> Diagram:
    """The architecture with ``step`` highlighted (``"00"``-``"06"`` or a step name), for the
    notebook's first cells: ``architecture.show(step="03", backend=BACKEND)``.
    ``backend`` None or "" means the configured one (LAB_BACKEND, else local)."""
    if not backend:
        from ..infra.config import load_config

        backend = load_config().backend
    return Diagram(step, backend)
