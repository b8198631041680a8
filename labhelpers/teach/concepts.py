"""Concept figures for the notebooks: the lab's ideas as small pictures.

Each function draws one idea with matplotlib and returns the Figure (no network, well under a
second each): a timeline of events, tumbling windows, the watermark and a late record, the
app's keyed state and what a checkpoint saves, a Random Cut Forest on a small 2-D example,
an alert episode, and the forest learning during notebook 04's warm-up.

In a notebook: ``fig = concepts.tumbling_windows()`` (the inline backend shows it once).
Elsewhere: ``concepts.save(fig, "windows.png")``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from .figure_style import (  # noqa: F401  (colours: one palette for every figure)
    ACCENT_C,
    CLICK_C,
    IMPRESSION_C,
    LATE_C,
    NEUTRAL_C,
    _arrow,
    _box,
    _pyplot,
    save,
)
from .forest_figures import (  # noqa: F401  (the Random Cut Forest's figures and helpers)
    example_points,
    forest_learning,
    forest_scores,
    leaf_depths,
    learning_curve,
    random_cut_forest,
    random_cut_tree,
)

# ---------------------------------------------------------------------------------------------
# Events and windows
# ---------------------------------------------------------------------------------------------


def example_events(seconds: int = 30, seed: int = 3) -> list[tuple[float, str]]:
    """(event time s, action) of a small example: about 1 Click and 1 Impression a second,
    with a burst of clicks between 20 and 24 s (the lab's spike, in miniature)."""
    rng = random.Random(seed)
    events = [(i + rng.uniform(0.05, 0.95), "Impression") for i in range(seconds)]
    events += [(i + rng.uniform(0.05, 0.95), "Click") for i in range(seconds)]
    events += [(20 + rng.uniform(0, 4), "Click") for _ in range(8)]
    return sorted(events)


def _plot_events(ax, events: Sequence[tuple[float, str]]) -> None:
    for action, y, colour, marker in (("Impression", 0.3, IMPRESSION_C, "s"),
                                      ("Click", 0.7, CLICK_C, "o")):
        xs = [t for t, a in events if a == action]
        ax.scatter(xs, [y] * len(xs), s=28, color=colour, marker=marker, label=action,
                   zorder=3, edgecolor="white", linewidth=0.5)
    ax.set_yticks([0.3, 0.7], ["Impression", "Click"])
    ax.set_ylim(0, 1.25)


def events_timeline(seconds: int = 30):
    """A stream of click-stream records on an event-time axis: each dot is one record."""
    plt = _pyplot()
    events = example_events(seconds)
    fig, ax = plt.subplots(figsize=(9, 2.4))
    _plot_events(ax, events)
    ax.set_xlim(0, seconds)
    ax.set_xlabel("event time (s): when the generator made the record, written in the record")
    ax.set_title("A stream: records arrive one after the other and never end",
                 loc="left", fontsize=11)
    ax.annotate("a burst of clicks", xy=(22, 0.75), xytext=(24.5, 1.1), fontsize=9,
                arrowprops={"arrowstyle": "->", "color": NEUTRAL_C})
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def tumbling_windows(seconds: int = 30, window_s: int = 10):
    """The same records cut into tumbling windows, with clicks, impressions and CTR of each."""
    plt = _pyplot()
    events = example_events(seconds)
    fig, ax = plt.subplots(figsize=(9, 2.9))
    for k, start in enumerate(range(0, seconds, window_s)):
        end = start + window_s
        ax.axvspan(start, end, color=ACCENT_C if k % 2 == 0 else "#9ecae1", alpha=0.12)
        ax.axvline(start, color=ACCENT_C, lw=0.8)
        clicks = sum(1 for t, a in events if a == "Click" and start <= t < end)
        imps = sum(1 for t, a in events if a == "Impression" and start <= t < end)
        ctr = 100.0 * clicks / imps if imps else float("nan")
        ax.text((start + end) / 2, 1.05, f"[{start}, {end}) s\n{clicks} clicks / {imps} impr.\n"
                f"CTR {ctr:.0f} %", ha="center", va="bottom", fontsize=8.5,
                color=LATE_C if ctr > 150 else "black")
    _plot_events(ax, events)
    ax.set_ylim(0, 1.75)
    ax.set_xlim(0, seconds)
    ax.set_xlabel("event time (s)")
    ax.set_title(f"Tumbling windows of {window_s} s: every record in exactly one window; "
                 "one row per window and site", loc="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def watermark_lateness(lateness_s: int = 5, window_s: int = 10):
    """Records by arrival (x) and event time (y), the watermark, the window firing, and one
    record that arrives too late to be counted (and, with some lateness allowed, one out of
    order but in time)."""
    plt = _pyplot()
    rng = random.Random(1)
    span = max(25, window_s + lateness_s + 10)
    # (arrival s, event s): in order, with a little jitter
    recs = [(t + 0.3 + rng.uniform(0, 0.6), t + rng.uniform(0, 0.3)) for t in range(span - 1)]
    wm_x, wm_y, seen = [], [], -math.inf
    for arr, ev in sorted(recs):
        seen = max(seen, ev)
        wm_x.append(arr)
        wm_y.append(seen - lateness_s)
    fire = next(x for x, y in zip(wm_x, wm_y, strict=True) if y >= window_s)
    too_late = (round(fire + 2, 1), round(window_s * 0.7, 1))
    in_time = None
    if lateness_s >= 1:  # out of order, but the watermark has not passed its window yet
        arrival = fire - min(1.5, lateness_s / 2)
        in_time = (round(arrival, 1), round(min(window_s - 0.5, arrival - lateness_s / 2), 1))
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.step(wm_x, wm_y, where="post", color=ACCENT_C, lw=2,
            label=f"watermark = latest event time seen − {lateness_s} s")
    ax.scatter([a for a, _ in recs], [e for _, e in recs], s=18, color=NEUTRAL_C,
               label="records", zorder=3)
    if in_time:
        ax.scatter(*in_time, s=60, color="#f39c12", zorder=4, edgecolor="black",
                   label=f"out of order by {in_time[0] - in_time[1]:.1f} s: still counted")
    ax.scatter(*too_late, s=70, color=LATE_C, marker="X", zorder=4,
               label="late: its window was already reported, not counted")
    ax.axhspan(0, window_s, color=CLICK_C, alpha=0.08)
    ax.axhline(window_s, color=CLICK_C, lw=1, ls="--")
    ax.axvline(fire, color=CLICK_C, lw=1, ls=":")
    ax.text(fire - 0.3, -lateness_s - 0.7, f"here the watermark passes {window_s} s:\n"
            f"window [0, {window_s}) s is reported", fontsize=9, color=CLICK_C, va="bottom",
            ha="right")
    ax.text(0.3, window_s * 0.9, f"window [0, {window_s}) s", color=CLICK_C, fontsize=9,
            va="top")
    ax.annotate(f"arrives at {too_late[0]:g} s,\nevent time {too_late[1]:g} s", xy=too_late,
                xytext=(too_late[0] + 0.05 * span, too_late[1] - 0.03 * span), fontsize=8.5,
                color=LATE_C)
    ax.set_xlabel("arrival time (s): when the app reads the record")
    ax.set_ylabel("event time (s)")
    ax.set_xlim(0, span)
    ax.set_ylim(-lateness_s - 1, span)
    ax.set_title("Event time, the watermark and lateness", loc="left", fontsize=11)
    ax.legend(loc="upper left", fontsize=8.5, framealpha=0.95)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Keyed state and checkpoints
# ---------------------------------------------------------------------------------------------


def keyed_state(sites: Sequence[str] = ("example.com", "shop.example")):
    """What the app keeps per site (key) and what a checkpoint saves of it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5.2)
    ax.axis("off")
    _box(ax, 0.1, 2.1, 1.6, 1.0, "input stream\n(read up to\nfile / offset)", NEUTRAL_C)
    _box(ax, 2.1, 2.1, 1.9, 1.0, "SQL: open windows\n(counts so far per\nsite and window)",
         IMPRESSION_C)
    _arrow(ax, 1.7, 2.6, 2.1, 2.6)
    ax.text(4.4, 4.85, "key by site: each site's state lives apart", fontsize=9,
            color=ACCENT_C)
    for i, site in enumerate(sites[:3]):
        y = 3.3 - i * 1.75
        _box(ax, 4.4, y, 2.9, 1.45,
             f"key = {site}\n• forest snapshot (every 64 windows)\n• points learned since\n"
             "• windows seen, current alert\n  episode, held anomalies", ACCENT_C, fontsize=8,
             ha="left")
        _arrow(ax, 4.0, 2.6, 4.4, y + 0.7)
        _arrow(ax, 7.3, y + 0.7, 7.9, 2.65, colour=LATE_C)
    _box(ax, 7.9, 1.2, 2.0, 2.9,
         "checkpoint n\n(every 2 s)\n\n• source position\n• open windows\n• every site's\n  "
         "forest state\n\nafter a crash or stop:\nrestart from here,\nnothing lost or\n"
         "counted twice", LATE_C, fontsize=8, alpha=0.1)
    for x0 in (0.9, 3.05):
        ax.annotate("", xy=(8.6, 1.2), xytext=(x0, 2.1),
                    arrowprops={"arrowstyle": "->", "color": LATE_C, "lw": 1, "ls": "--",
                                "connectionstyle": "arc3,rad=0.3"})
    ax.text(4.6, 0.05, "every checkpoint saves all of these together, as of the same moment",
            fontsize=8, color=LATE_C)
    ax.set_title("Keyed state per site, and what a checkpoint saves", loc="left",
                 fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Alert episodes
# ---------------------------------------------------------------------------------------------


def episodes(flags: Sequence[bool], window_s: int = 10, cooldown_s: int = 60) -> list[int | None]:
    """Episode number of each window (None for normal ones): anomalous windows whose gap to
    the previous anomalous window is at most the cool-down share an episode, as the app's
    SiteModel groups them."""
    out: list[int | None] = []
    current, last_end = -1, None
    for i, flag in enumerate(flags):
        end = (i + 1) * window_s
        if not flag:
            out.append(None)
            continue
        if last_end is None or end - last_end > cooldown_s:
            current += 1
        last_end = end
        out.append(current)
    return out


def alert_episode(scores: Sequence[float] | None = None, threshold: float = 3.0,
                  window_s: int = 10, cooldown_s: int = 60):
    """Scores per window with the threshold; the first anomalous window of each episode sends
    one message, the rest of the episode sends none."""
    plt = _pyplot()
    if scores is None:
        scores = [0.9, 1.0, 0.8, 1.1, 4.6, 3.9, 3.3, 1.2, 0.9, 3.4, 1.0, 0.8, 0.9, 1.1, 0.9,
                  1.0, 0.7, 4.1, 1.3, 0.9]
    flags = [s > threshold for s in scores]
    eps = episodes(flags, window_s, cooldown_s)
    fig, ax = plt.subplots(figsize=(10, 3.4))
    starts = [i * window_s for i in range(len(scores))]
    colours = [LATE_C if f else ACCENT_C for f in flags]
    ax.bar(starts, scores, width=window_s * 0.85, align="edge", color=colours, alpha=0.8)
    ax.axhline(threshold, color=LATE_C, ls="--", lw=1)
    ax.text(starts[-1] + window_s, threshold + 0.1, f"threshold {threshold:g}", ha="right",
            color=LATE_C, fontsize=8.5)
    seen: set[int] = set()
    for i, ep in enumerate(eps):
        if ep is None:
            continue
        first = ep not in seen
        seen.add(ep)
        ax.text(starts[i] + window_s * 0.42, scores[i] + 0.15,
                "sends\n1 alert" if first else "no\nmsg", ha="center",
                va="bottom", fontsize=7.5, weight="bold" if first else "normal",
                color="black" if first else NEUTRAL_C)
    for ep in sorted(seen):
        idx = [i for i, e in enumerate(eps) if e == ep]
        a, b = starts[idx[0]], starts[idx[-1]] + window_s
        ax.axvspan(a, b + cooldown_s, color="#f5b7b1", alpha=0.25, lw=0)
        ax.text(a + 1, -0.75, f"episode {ep + 1}: its windows + {cooldown_s}-s cool-down",
                fontsize=7.5, color=LATE_C)
    ax.set_ylim(-1.0, max(scores) + 1.4)
    ax.set_xlim(0, starts[-1] + window_s)
    ax.set_xlabel("window start (s)")
    ax.set_ylabel("anomaly score")
    ax.set_title("Alert episodes: one message per episode, however many windows it covers",
                 loc="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


FIGURES = {
    "events_timeline": events_timeline,
    "tumbling_windows": tumbling_windows,
    "watermark_lateness": watermark_lateness,
    "keyed_state": keyed_state,
    "random_cut_forest": random_cut_forest,
    "alert_episode": alert_episode,
    "forest_learning": forest_learning,
}


def render_all(out_dir: Path | str) -> dict[str, float]:
    """Draw every figure into ``out_dir`` as PNG; returns seconds per figure (draw + save)."""
    import time

    plt = _pyplot()
    times: dict[str, float] = {}
    for name, make in FIGURES.items():
        started = time.perf_counter()
        fig = make()
        save(fig, Path(out_dir) / f"{name}.png")
        plt.close(fig)
        times[name] = round(time.perf_counter() - started, 3)
    return times
