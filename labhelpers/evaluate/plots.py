"""The evaluation's plots (notebook 06): scenarios found and missed, the parameter grid, the
score histograms."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..pyplot import pyplot
from .scenarios import Suite

# ---------------------------------------------------------------------------------------------
# Plots (notebook 06)
# ---------------------------------------------------------------------------------------------


def plot_scenarios(table: pd.DataFrame, path: Path | str | None = None):
    """Per scenario: precision and recall (bars), false alarms per site-day (right panel)."""
    plt = pyplot()
    fig, (ax, ax_fa) = plt.subplots(1, 2, figsize=(12, 5), sharey=True,
                                    gridspec_kw={"width_ratios": [2, 1]})
    names = list(table["scenario"])
    y = list(range(len(names)))

    def bars(axis, ys, values, none_text, **kw):
        # every bar gets its number, so 0 reads as 0 and "not defined" is said, not blank
        values = [None if v is None or pd.isna(v) else float(v) for v in values]
        axis.barh(ys, [v or 0 for v in values], **kw)
        for yy, v in zip(ys, values, strict=True):
            axis.text(v or 0, yy, f" {none_text}" if v is None else f" {v:.2g}",
                      va="center", fontsize=7, color="dimgray" if not v else "black")

    bars(ax, [i - 0.2 for i in y], table["precision"], "n/a: nothing flagged", height=0.4,
         label="precision")
    bars(ax, [i + 0.2 for i in y], table["recall"], "n/a: no anomaly", height=0.4,
         label="recall (windows)")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xlabel("share of windows")
    ax.legend(loc="lower right")
    ax.set_title("flagged windows per scenario")
    fa = table["fa_per_site_day"]
    bars(ax_fa, y, fa, "", color="tab:red")
    ax_fa.set_xlim(0, max(1.0, float(fa.max()) * 1.25))  # 0 = none at all
    ax_fa.set_xlabel("false alarms per site-day")
    ax_fa.set_title("false alarms (alert episodes)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_grid(grid_df: pd.DataFrame, path: Path | str | None = None):
    """Anomalies detected (left) and false alarms per site-day (right, symlog) vs threshold,
    one line per (inputs, subsample size, shingle size, trees)."""
    plt = pyplot()
    fig, (ax_det, ax_fa) = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    keys = ["inputs", "subsample_size", "shingle_size", "num_trees"]
    # the run rule on and off are two lines of their own (a grid with run_thresholds)
    runs = "run_threshold" in grid_df and grid_df["run_threshold"].nunique() > 1
    for key, g in grid_df.sort_values("threshold").groupby(keys + (["run_threshold"] if runs
                                                                   else [])):
        label = f"{key[0]}, subsample {key[1]}" + (f", shingle {key[2]}" if key[2] != 1 else "") \
            + (f", {key[3]} trees" if key[3] != 100 else "")
        if runs:
            label += ", run rule off" if key[4] == 0 else f", run rule on ({key[4]:g})"
        style = "-" if key[0] == "raw" else "--"
        if runs and key[4] == 0:
            style = ":"
        ax_det.plot(g["threshold"], g["detected"], style, marker="o", label=label)
        ax_fa.plot(g["threshold"], g["fa_per_site_day"], style, marker="o", label=label)
    total = int(grid_df["anomalies"].max()) if len(grid_df) else 0
    ax_det.axhline(total, color="grey", lw=0.8)
    ax_det.set_ylim(0, max(1, total) * 1.05)  # from zero: a drop from 33 to 23 looks its size
    ax_det.set_ylabel(f"anomalies detected (of {total})")
    # symlog: linear below 1, logarithmic above, so 0 false alarms is drawn at 0
    ax_fa.set_yscale("symlog", linthresh=1)
    top = max(1.0, float(grid_df["fa_per_site_day"].max()) if len(grid_df) else 1.0)
    ticks = [t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if t <= top * 1.5]
    ax_fa.set_yticks(ticks, [str(t) for t in ticks])
    ax_fa.set_ylim(0, top * 1.3)
    ax_fa.set_ylabel("false alarms per site-day (log above 1)")
    for a in (ax_det, ax_fa):
        a.set_xlabel("threshold")
        a.grid(alpha=0.3)
    ax_fa.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_score_histograms(frames: Mapping[str, pd.DataFrame], suite: Suite, threshold: float,
                          path: Path | str | None = None):
    """Scores of normal vs anomalous windows (log counts), one panel per scored frame, with the
    threshold: where the two overlap, no threshold separates them."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(frames), figsize=(6 * len(frames), 4), squeeze=False)
    labels = suite.labels()
    for ax, (name, df) in zip(axes[0], frames.items(), strict=True):
        is_label = pd.Series([(s, w) in labels for s, w in zip(df["site"], df["window_start_ms"],
                                                               strict=True)], index=df.index)
        scores = df["anomaly_score"].astype(float)
        top = float(scores.max()) if scores.notna().any() else threshold
        bins = [i * 0.1 for i in range(int(max(top, threshold) * 10) + 2)]
        ax.hist(scores[~is_label & (scores > 0)].dropna(), bins=bins, alpha=0.6,
                label="normal windows")
        ax.hist(scores[is_label].dropna(), bins=bins, alpha=0.8, label="anomalous windows")
        ax.axvline(threshold, color="red", ls="--", label=f"threshold {threshold:g}")
        ax.set_yscale("log")
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("windows")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


