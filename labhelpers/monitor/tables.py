"""Monitor: score rows into pandas, and the plot of CTR and anomaly score per site."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..backends import Backend, for_config
from ..infra.config import LabConfig
from ..job.contracts import SCORE_COLUMNS
from ..stream.log import read_all_lines


def scores_frame(source: Backend | LabConfig | Path | str) -> pd.DataFrame:
    """All score rows so far, oldest first, from the app's scores stream (or a replay folder).

    ``source`` is the running lab (a Backend, or the LabConfig that selects one), a replay
    output folder (its scores.jsonl), or a folder of JSON-lines files.
    """
    if isinstance(source, LabConfig):
        source = for_config(source)
    if isinstance(source, Backend):
        lines = source.score_lines()
    else:
        path = Path(source)
        lines = (path / "scores.jsonl").read_text().splitlines() if (
            path / "scores.jsonl"
        ).exists() else read_all_lines(path)
    df = pd.DataFrame([json.loads(s) for s in lines if s.strip()], columns=list(SCORE_COLUMNS))
    if df.empty:
        return df
    for col in ("window_start", "window_end"):
        df[col] = pd.to_datetime(df[col], utc=True)
    df["is_anomaly"] = df["is_anomaly"].astype(bool)
    return df.sort_values(["window_start", "site"]).reset_index(drop=True)


def plot_scores(df: pd.DataFrame, threshold: float, path: Path | str | None = None, ax=None):
    """CTR (top) and anomaly score (bottom) per site, threshold line, anomalies marked.

    Saves a PNG when ``path`` is given. Returns the matplotlib figure.
    """
    from ..pyplot import pyplot

    plt = pyplot()

    fig, (ax_ctr, ax_score) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    if df.empty:
        ax_ctr.text(0.5, 0.5, "no scored windows yet", ha="center", transform=ax_ctr.transAxes)
    for site, g in df.groupby("site"):
        ax_ctr.plot(g["window_end"], g["ctr"], marker=".", label=site)
        ax_score.plot(g["window_end"], g["anomaly_score"], marker=".", label=site)
        bad = g[g["is_anomaly"]]
        ax_ctr.scatter(bad["window_end"], bad["ctr"], s=120, facecolors="none",
                       edgecolors="red", linewidths=2, zorder=3)
        ax_score.scatter(bad["window_end"], bad["anomaly_score"], s=120, facecolors="none",
                         edgecolors="red", linewidths=2, zorder=3)
    warming = df[~df["forest_ready"].astype(bool)] if not df.empty else df
    if not warming.empty:
        for ax in (ax_ctr, ax_score):
            ax.axvspan(warming["window_start"].min(), warming["window_end"].max(),
                       color="grey", alpha=0.15, lw=0)
        ax_score.text(warming["window_start"].min(), threshold * 0.9,
                      " forest warming up (score 0)", color="grey", va="top", fontsize="small")
    ax_score.axhline(threshold, color="red", linestyle="--", label=f"threshold {threshold:g}")
    ax_ctr.set_ylabel("CTR (%)")
    ax_score.set_ylabel("anomaly score")
    ax_score.set_xlabel("window end (UTC)")
    seconds = (df["window_end"] - df["window_start"]).dt.total_seconds().median() if (
        not df.empty) else None
    per = f"{seconds:g}-s window" if seconds else "window"
    ax_ctr.set_title(f"Click-through rate and Random Cut Forest score per {per}\n(red circles: "
                     "anomalies: a score above the threshold, or a run of windows off their "
                     "usual counts)")
    if not df.empty:
        ax_ctr.legend(loc="upper left", fontsize="small")
    ax_score.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def forest_ready(df: pd.DataFrame) -> bool:
    """True once every site's latest window was scored by a warmed-up forest."""
    return not df.empty and bool(df.groupby("site")["forest_ready"].last().all())


def in_app_streams(cfg: LabConfig, rows: int = 5) -> dict[str, pd.DataFrame]:
    """The app's "in-application streams", as the original lab's console showed them, read
    from the app's outputs: the input records, clicks and impressions per window, CTR, the
    forest's scores, the anomalies, and the records set aside."""
    def parse(line: str) -> dict:
        try:
            rec = json.loads(line)
            return rec if isinstance(rec, dict) else {"line": line}
        except ValueError:
            return {"line": line}

    lab = for_config(cfg)
    source = pd.DataFrame([parse(s) for s in lab.input_lines(rows)])
    scores = scores_frame(lab)
    window = ["window_start", "window_end", "site"]
    dead = pd.DataFrame([json.loads(s) for s in lab.dead_letter_lines()[-rows:]],
                        columns=["reason", "line"])
    return {
        "source records (input stream)": source,
        "clicks and impressions per window": scores[[*window, "clicks", "impressions"]]
        .tail(rows),
        "CTR per window": scores[[*window, "ctr"]].tail(rows),
        "scores (Random Cut Forest)": scores[[*window, "ctr", "anomaly_score", "forest_ready",
                                               "attribution"]].tail(rows),
        "anomalies (the lab's DESTINATION_SQL_STREAM)": scores[scores["is_anomaly"]][
            [*window, "ctr", "anomaly_score", "episode_id"]].tail(rows),
        "bad records (dead letters)": dead,
    }
