"""The run rule, taught on the student's own windows: its three sums, which rule flagged what.

An alert is decided by two rules (``job/forest.py: AlertRule``): the forest's score above
``threshold``, and the run rule, a two-sided CUSUM per driving input
(``job/deviations.py: RUN_INPUTS``) that flags a window when one running sum passes
``run_threshold``. The score rows carry the rule's largest sum (``run_score``) and what
flagged each anomalous window (``flagged_by``); this module re-computes the three inputs' sums
window by window from the same rows with the job's own code (``SiteModel``), so the figure
shows each sum, not only their maximum.

    from labhelpers.teach import run_rule
    sums = run_rule.sums_frame(df, params)     # one row per window: every sum, the score
    fig = run_rule.plot(sums, params)          # the sum that flagged, against its bar
    run_rule.flags_table(df, params)           # each flagged window: forest, run rule, both
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from ..job.deviations import RUN_INPUTS
from ..job.forest import AlertRule, ForestParams, SiteModel
from .figure_style import ACCENT_C, CLICK_C, IMPRESSION_C, LATE_C, NEUTRAL_C, _pyplot

# What each sum watches, in words (the sums of deviations.RUN_INPUTS, "high" and "low").
WATCHES = {
    ("clicks_given_ctr", "high"): "more clicks than the usual CTR predicts for the impressions",
    ("clicks_given_ctr", "low"): "fewer clicks than the usual CTR predicts (a CTR falling)",
    ("impressions", "high"): "more impressions than lately (a traffic surge)",
    ("impressions", "low"): "fewer impressions than lately (an outage, a site going dark)",
    ("clicks_rise", "high"): "clicks above their usual count",
    ("clicks_rise", "low"): "never rises: a fall of clicks shows in the CTR sum",
}
SUM_COLOURS = {"clicks_given_ctr": CLICK_C, "impressions": IMPRESSION_C,
               "clicks_rise": ACCENT_C}


def sum_names() -> list[str]:
    """The six running sums, as ``<input>:<high|low>`` (the names ``flagged_by`` uses)."""
    return [f"{name}:{side}" for name in RUN_INPUTS for side in ("high", "low")]


def _windows(df: pd.DataFrame) -> pd.DataFrame:
    rows = df.copy()
    for col in ("window_start", "window_end"):
        rows[col] = pd.to_datetime(rows[col], utc=True)
    if "complete" in rows:
        rows = rows[rows["complete"].fillna(True).astype(bool)]
    return rows.sort_values(["window_start", "site"], kind="stable")


def sums_frame(df: pd.DataFrame, params: ForestParams,
               learned_before: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every window of ``df`` (score rows) scored again by the job's code, with each running
    sum as it stood when the window was decided (before a flag starts them again).
    ``learned_before``: the windows a warm start learned before reporting
    (``lab.warm_up_rows()``), fed to each site's model first as the job did, not returned.

    Columns: window_start, window_end, site, clicks, impressions, the job's anomaly_score,
    run_score, is_anomaly and flagged_by, the re-computed ``score`` and one column per sum
    (``sum_names``). The sums come from a shadow copy of the rule that never flags, so they
    are exactly the job's sums up to the decision."""
    out: list[dict[str, Any]] = []
    never = replace(params, threshold=1e6, run_threshold=1e6)
    for site, g in _windows(df).groupby("site", sort=False):
        model = SiteModel(params)
        for row in learned_before or ():
            if row["site"] == site:
                end = pd.Timestamp(row["window_end"])
                model.score(dict(row), int(end.timestamp() * 1000))
        real_decide = model.rule.decide
        seen: dict[str, list[float]] = {}

        def decide(score, ready, deviations=(), _real=real_decide, _model=model, _seen=seen):
            shadow = AlertRule(never)
            shadow.load(_model.rule.state())
            shadow.decide(score, ready, deviations)
            _seen["up"], _seen["down"] = list(shadow.up), list(shadow.down)
            return _real(score, ready, deviations)

        model.rule.decide = decide  # the job's code runs unchanged; the shadow only watches
        for _, r in g.iterrows():
            seen.clear()
            ms = int(r["window_end"].timestamp() * 1000)
            row = {"window_start": r["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "window_end": r["window_end"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "site": site, "clicks": int(r["clicks"]),
                   "impressions": int(r["impressions"]),
                   "ctr": None if pd.isna(r["ctr"]) else float(r["ctr"])}
            scored = model.score(row, ms)
            item = {"window_start": r["window_start"], "window_end": r["window_end"],
                    "site": site, "clicks": row["clicks"], "impressions": row["impressions"],
                    "anomaly_score": r.get("anomaly_score"), "run_score": r.get("run_score"),
                    "is_anomaly": bool(r.get("is_anomaly")), "flagged_by": r.get("flagged_by"),
                    "score": scored.get("anomaly_score")}
            up, down = seen.get("up", []), seen.get("down", [])
            for i, name in enumerate(RUN_INPUTS):
                item[f"{name}:high"] = up[i] if i < len(up) else 0.0
                item[f"{name}:low"] = down[i] if i < len(down) else 0.0
            out.append(item)
    return pd.DataFrame(out)


def rule_of(row: Any, params: ForestParams) -> str:
    """Which rule flagged a window: "forest", "run rule", "both" or "" (not flagged).

    The job names one (``flagged_by``: the score first); "both" when the score was above the
    threshold and the run rule's largest sum (``run_score``) above its bar too."""
    if not bool(row.get("is_anomaly")):
        return ""
    by = str(row.get("flagged_by") or "")
    run = row.get("run_score")
    run_over = run is not None and not pd.isna(run) and params.run_threshold > 0 and \
        float(run) > params.run_threshold
    if by.startswith("run:"):
        return "run rule"
    return "both" if run_over else "forest"


def flags_table(df: pd.DataFrame, params: ForestParams) -> pd.DataFrame:
    """The flagged windows of ``df``: score and its bar, largest run sum and its bar, the
    rule that flagged each (``rule_of``) and, for the run rule, the sum and what it watches."""
    bad = _windows(df)
    bad = bad[bad["is_anomaly"].astype(bool)]
    rows = []
    for _, r in bad.iterrows():
        by = str(r.get("flagged_by") or "")
        watch = ""
        if by.startswith("run:"):
            _, name, side = (by.split(":") + ["", ""])[:3]
            watch = f"{name}:{side}: {WATCHES.get((name, side), '')}"
        rows.append({"window_start": r["window_start"], "site": r["site"],
                     "clicks": r["clicks"], "impressions": r["impressions"],
                     "score": r["anomaly_score"], "threshold": params.threshold,
                     "run_score": r.get("run_score"), "run_threshold": params.run_threshold,
                     "flagged by": rule_of(r, params), "the sum that passed its bar": watch})
    return pd.DataFrame(rows)


def leading_sum(sums: pd.DataFrame, site: str | None = None) -> str:
    """The sum that rose highest in ``sums`` (one site): the one worth drawing."""
    g = sums if site is None else sums[sums["site"] == site]
    cols = [c for c in sum_names() if c in g]
    return max(cols, key=lambda c: float(g[c].max())) if len(g) else cols[0]


def plot(sums: pd.DataFrame, params: ForestParams, site: str | None = None,
         last: int = 40, path: str | None = None):
    """Two panels over the same windows of one site (the last ``last`` of ``sums``): the
    forest's score with its threshold, and the run rule's sums with their bar, the highest one
    drawn bold; flagged windows marked with the rule that flagged them. Returns the Figure."""
    plt = _pyplot()
    site = site or (sums["site"].iloc[0] if len(sums) else "")
    g = sums[sums["site"] == site].tail(last)
    lead = leading_sum(g) if len(g) else sum_names()[0]
    fig, (ax_s, ax_r) = plt.subplots(2, 1, sharex=True, figsize=(11.5, 5.6))
    x = g["window_end"]
    ax_s.plot(x, g["anomaly_score"], marker=".", color=NEUTRAL_C, label="forest's score")
    ax_s.axhline(params.threshold, color=LATE_C, ls="--",
                 label=f"threshold {params.threshold:g}")
    for name in RUN_INPUTS:
        for side in ("high", "low"):
            col = f"{name}:{side}"
            if col == "clicks_rise:low":
                continue  # never rises (a fall of clicks shows in the CTR sum)
            bold = col == lead
            ax_r.plot(x, g[col], color=SUM_COLOURS[name], lw=2.4 if bold else 0.9,
                      ls="-" if side == "high" else ":", alpha=1 if bold else 0.6,
                      label=f"{col}" + (" (highest)" if bold else ""))
    if params.run_threshold > 0:
        ax_r.axhline(params.run_threshold, color=LATE_C, ls="--",
                     label=f"bar (run_threshold) {params.run_threshold:g}")
    last_who = None
    for _, r in g.iterrows():
        who = rule_of(r, params)
        if who:
            for ax in (ax_s, ax_r):
                ax.axvline(r["window_end"], color=LATE_C, alpha=0.25, lw=6)
            if who != last_who:  # one label per run of windows flagged by the same rule
                ax_s.annotate(f"flagged by: {who}", (r["window_end"], r["anomaly_score"] or 0),
                              textcoords="offset points", xytext=(-10, 8), ha="right",
                              color=LATE_C, fontsize=8)
        last_who = who
    ax_s.set_ylabel("anomaly score")
    ax_r.set_ylabel("running sum")
    ax_r.set_xlabel("window end (UTC)")
    ax_s.set_title(f"{site}: the forest's score (top) and the run rule's sums (bottom), same "
                   "windows\n(red bands: flagged windows, labelled with the rule that flagged)")
    ax_s.set_ylim(bottom=0, top=max(params.threshold, float(g["anomaly_score"].max() or 0)) * 1.25)
    ax_r.set_ylim(bottom=0, top=max(params.run_threshold, float(g[[c for c in sum_names()
                                                                     if c in g]].max().max()
                                                                  or 0)) * 1.2)
    ax_s.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    ax_r.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="x-small")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig


def cusum_steps(deviations: list[float], slack: float, bar: float) -> pd.DataFrame:
    """A CUSUM by hand, on a list of deviations: the high sum after each one,
    max(0, sum + deviation - slack), and whether it passed ``bar`` (then it starts again)."""
    total, rows = 0.0, []
    for i, d in enumerate(deviations, 1):
        before = total
        total = max(0.0, total + d - slack)
        over = total > bar
        rows.append({"window": i, "deviation": d, "sum before": round(before, 2),
                     "+ deviation - slack": round(d - slack, 2), "sum after": round(total, 2),
                     "passes the bar": over})
        if over:
            total = 0.0
    return pd.DataFrame(rows)


def explain(row: Any, params: ForestParams) -> str:
    """One flagged window in one sentence: which rule flagged it, and why."""
    when = pd.Timestamp(row["window_start"]).strftime("%H:%M:%S")
    what = (f"The window from {when} on {row['site']} ({row['clicks']} clicks, "
            f"{row['impressions']} impressions)")
    score, run = float(row.get("anomaly_score") or 0), row.get("run_score")
    run = None if run is None or pd.isna(run) else float(run)
    rule = rule_of(row, params)
    run_text = "" if run is None else (f"; the run rule's largest sum was {run:.1f} against its "
                                       f"bar {params.run_threshold:g}")
    if rule == "run rule":
        _, name, side = (str(row["flagged_by"]).split(":") + ["", ""])[:3]
        return (f"{what} was flagged by the run rule: its sum {name}:{side} ("
                f"{WATCHES.get((name, side), '')}) reached {run:.1f}, past its bar "
                f"{params.run_threshold:g}, while the forest's score was {score:.2f}, under the "
                f"threshold {params.threshold:g}.")
    if rule == "both":
        return (f"{what} was flagged by the forest's score, {score:.2f}, above the threshold "
                f"{params.threshold:g}{run_text}, so the run rule would have flagged it too.")
    if rule == "forest":
        return (f"{what} was flagged by the forest's score, {score:.2f}, above the threshold "
                f"{params.threshold:g}{run_text}: the run rule alone would not have flagged it.")
    return f"{what} was not flagged."


def rule_shares(suite: Any, scores: pd.DataFrame, params: ForestParams) -> pd.DataFrame:
    """Each rule's share on a labelled suite (notebook 06): the job's windows re-scored with
    the forest alone (run rule off), the run rule alone (threshold out of reach) and both
    (the job). Columns: rule, detected, anomalies, false_alarms, fa_per_site_day."""
    from ..evaluate.evaluation import grid

    g = grid(suite, scores, base=params, thresholds=[params.threshold, 1e6],
             run_thresholds=[0.0, params.run_threshold], subsample_sizes=[params.subsample_size],
             inputs=[params.inputs])
    names = {(params.threshold, 0.0): "forest alone (run rule off)",
             (1e6, params.run_threshold): "run rule alone (score ignored)",
             (params.threshold, params.run_threshold): "both (the job)"}
    g = g[[(t, r) in names for t, r in zip(g["threshold"], g["run_threshold"], strict=True)]]
    out = g.assign(rule=[names[(t, r)] for t, r in zip(g["threshold"], g["run_threshold"],
                                                        strict=True)])
    return out[["rule", "detected", "anomalies", "false_alarms", "fa_per_site_day",
                "delay_max_s"]].reset_index(drop=True)
