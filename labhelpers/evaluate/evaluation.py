"""Evaluation of the detector on the labelled scenario suite (labhelpers/evaluate/scenarios.py).

``run_evaluation`` writes the whole suite as one file and runs it through the REAL job
(``replay``: the lab's SQL and the forest in Flink keyed state) once, then scores the result
per scenario: windows flagged correctly and wrongly, precision, recall, the delay from each
anomaly's start to its first flagged window, and false alarms per site-day.

``grid`` compares forest parameters without running Flink again: the windows (clicks,
impressions, CTR per site and window) come from the real job, and each grid point re-scores
them in Python with ``forest.SiteModel``, the very code the job runs per site
(``check_rescore`` proves that on the job's own parameters the re-score equals the job's
scores exactly).

Definitions (pure functions below, unit-tested on hand-made inputs):

- a window is *labelled* when it overlaps an injected anomaly (scenarios.Anomaly);
- tp / fp / fn: flagged and labelled / flagged and not labelled / labelled and not flagged;
  precision = tp / (tp + fp), recall = tp / (tp + fn) (None when the denominator is 0);
- delay of an anomaly: end of its first flagged labelled window minus the anomaly's start,
  in seconds (the earliest moment a score can exist; the live app adds the lateness and
  the checkpoint interval); None when it was missed;
- episodes: a site's flagged windows grouped like the alert rule does (a window ending more
  than ``cooldown_seconds`` after the previous flagged one starts a new episode); a *false
  alarm* is an episode without any labelled window, i.e. one alert that should not have been
  sent; false alarms per site-day = false alarms / (sites x scenario duration in days).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..job.contracts import parse_event_time
from ..job.forest import FOREST_POINTS, ForestParams, SiteModel
from ..job.params import JobParams
from .scenarios import Anomaly, Suite, build_suite, window_counts

LAB_SCENARIO = "lab-spike"
# Columns of the per-scenario table, in print order.
TABLE_COLUMNS = ("scenario", "quiet", "sites", "windows", "labelled", "flagged", "tp", "fp",
                 "fn", "precision", "recall", "anomalies", "detected", "delay_median_s",
                 "delay_max_s", "false_alarms", "site_days", "fa_per_site_day", "episodes",
                 "episodes_per_site_day")


# ---------------------------------------------------------------------------------------------
# Metrics (pure)
# ---------------------------------------------------------------------------------------------


def ratio(num: int, den: int) -> float | None:
    """num / den, or None when den is 0 (precision without flags, recall without labels)."""
    return None if den == 0 else num / den


def confusion(flagged: set[tuple[str, int]],
              labels: set[tuple[str, int]]) -> tuple[int, int, int]:
    """(tp, fp, fn) of flagged windows against labelled windows, both (site, start ms)."""
    tp = len(flagged & labels)
    return tp, len(flagged) - tp, len(labels) - tp


def episodes(window_ends_ms: Iterable[int], cooldown_s: int) -> list[list[int]]:
    """Group one site's flagged window ends into alert episodes (the SiteModel rule: a window
    ending more than ``cooldown_s`` (+1 ms) after the previous flagged one starts a new one)."""
    out: list[list[int]] = []
    last: int | None = None
    for end in sorted(window_ends_ms):
        if last is None or end - last > cooldown_s * 1000 + 1:
            out.append([])
        out[-1].append(end)
        last = end
    return out


def detection_delay(anomaly: Anomaly, flagged: set[tuple[str, int]],
                    window_s: int) -> float | None:
    """Seconds from the anomaly's start to the end of its first flagged labelled window."""
    hits = [w for w in anomaly.windows(window_s) if (anomaly.site, w) in flagged]
    if not hits:
        return None
    return (min(hits) + window_s * 1000 - anomaly.start_ms) / 1000


def false_alarms(flagged: set[tuple[str, int]], labels: set[tuple[str, int]],
                 window_s: int, cooldown_s: int) -> int:
    """Alert episodes (per site) that contain no labelled window."""
    by_site: dict[str, list[int]] = {}
    for site, start in flagged:
        by_site.setdefault(site, []).append(start)
    n = 0
    w = window_s * 1000
    for site, starts in by_site.items():
        for ep in episodes([s + w for s in starts], cooldown_s):
            if not any((site, end - w) in labels for end in ep):
                n += 1
    return n


def scenario_metrics(flagged: set[tuple[str, int]], anomalies: Sequence[Anomaly],
                     sites: Sequence[str], duration_s: float, window_s: int = 10,
                     cooldown_s: int = 60, scored_windows: int | None = None) -> dict[str, Any]:
    """Every metric of one scenario from its flagged windows and its ground truth.

    ``flagged``: (site, window start ms) of the windows the detector flagged (only this
    scenario's sites). Returns a dict with the keys of TABLE_COLUMNS (minus scenario/quiet).
    """
    labels = {(a.site, w) for a in anomalies for w in a.windows(window_s)}
    tp, fp, fn = confusion(flagged, labels)
    delays = [detection_delay(a, flagged, window_s) for a in anomalies]
    found = [d for d in delays if d is not None]
    site_days = len(sites) * duration_s / 86_400
    fa = false_alarms(flagged, labels, window_s, cooldown_s)
    by_site: dict[str, list[int]] = {}
    for site, start in flagged:
        by_site.setdefault(site, []).append(start + window_s * 1000)
    n_episodes = sum(len(episodes(ends, cooldown_s)) for ends in by_site.values())
    return {
        "sites": len(sites),
        "windows": scored_windows,
        "labelled": len(labels),
        "flagged": len(flagged),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "anomalies": len(anomalies),
        "detected": len(found),
        "delay_median_s": statistics.median(found) if found else None,
        "delay_max_s": max(found) if found else None,
        "false_alarms": fa,
        "site_days": site_days,
        "fa_per_site_day": fa / site_days if site_days else None,
        "episodes": n_episodes,
        "episodes_per_site_day": n_episodes / site_days if site_days else None,
    }


def totals(table: pd.DataFrame) -> dict[str, Any]:
    """Suite-wide figures from a per-scenario table (micro-averaged over windows)."""
    tp, fp, fn = (int(table[c].sum()) for c in ("tp", "fp", "fn"))
    quiet = table[table["quiet"]]
    lab = table[table["scenario"] == LAB_SCENARIO]
    delays = table["delay_max_s"].dropna()
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "anomalies": int(table["anomalies"].sum()),
        "detected": int(table["detected"].sum()),
        "delay_max_s": float(delays.max()) if len(delays) else None,
        "false_alarms": int(table["false_alarms"].sum()),
        "fa_per_site_day": float(table["false_alarms"].sum() / table["site_days"].sum()),
        "quiet_false_alarms": int(quiet["false_alarms"].sum()),
        "quiet_fa_per_site_day": (float(quiet["false_alarms"].sum() / quiet["site_days"].sum())
                                  if len(quiet) else None),
        # the bar for quiet days: false-alarm windows per quiet scenario, episodes
        "quiet_max_fp_windows": int(quiet["fp"].max()) if len(quiet) else None,
        "quiet_episodes_per_site_day": (float(quiet["episodes"].sum() / quiet["site_days"].sum())
                                        if len(quiet) else None),
        # the lab's own test: every spike window flagged, and nothing else on that site
        "lab_spike_caught": bool(len(lab) and (lab["fn"] == 0).all() and (lab["fp"] == 0).all()),
    }


# ---------------------------------------------------------------------------------------------
# Scores: from the job, and re-scored in Python
# ---------------------------------------------------------------------------------------------


def _ms(text: str) -> int:
    return int(parse_event_time(text).timestamp() * 1000)


def load_scores(path: Path | str) -> pd.DataFrame:
    """A replay's scores.csv as a frame, plus ``window_start_ms`` and ``scenario`` columns."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.csv"
    if not path.exists():
        raise ConfigError(f"No scores file at {path}",
                          "run the evaluation (python -m labhelpers evaluate) first.")
    df = pd.read_csv(path, dtype={"window_start": str, "window_end": str, "site": str})
    df["is_anomaly"] = df["is_anomaly"].astype(str) == "True"
    # complete: False for a window the input ended inside (older files: all complete)
    df["complete"] = (df["complete"].astype(str) != "False") if "complete" in df else True
    df["window_start_ms"] = [_ms(t) for t in df["window_start"]]
    df["scenario"] = df["site"].str.split("/", n=1).str[0]
    return df.sort_values(["window_start_ms", "site"], kind="stable").reset_index(drop=True)


# How a window becomes the forest's point: ForestParams.inputs ("anscombe" is the job's
# default, "raw" the original lab's [clicks, impressions, CTR %]); the grid measures both.
INPUTS = tuple(FOREST_POINTS)


def _check_inputs(inputs: str | None) -> None:
    if inputs is not None and inputs not in INPUTS:
        raise ConfigError(f"Unknown forest inputs {inputs!r}", f"use one of {', '.join(INPUTS)}.")


def _rescore_site(rows: list[dict[str, Any]], params: ForestParams,
                  inputs: str | None = None) -> list[tuple[float, bool]]:
    _check_inputs(inputs)
    model = SiteModel(params if inputs is None else replace(params, inputs=inputs))
    out = []
    for row in rows:
        if row["clicks"] == 0 and row["impressions"] == 0 and \
                model.silent >= model.params.dark_windows:
            # the job made no more dark-site windows than dark_windows in a row; with a
            # smaller value here, the windows beyond it do not exist
            out.append((math.nan, False))
            continue
        r = model.score(row, _ms(row["window_end"]), complete=row.get("complete", True))
        score = r["anomaly_score"]
        out.append((math.nan if score is None else float(score), bool(r["is_anomaly"])))
    return out


def rescore(windows: pd.DataFrame, params: ForestParams,
            inputs: str | None = None) -> pd.DataFrame:
    """Score the job's windows again in Python with ``SiteModel`` (one per site, window order).

    ``inputs``: how a window becomes a point (INPUTS; None = ``params.inputs``, as the job).
    Returns a copy of ``windows`` with ``anomaly_score`` and ``is_anomaly`` replaced.
    """
    _check_inputs(inputs)
    out = windows.sort_values(["window_start_ms", "site"], kind="stable").copy()
    scores: dict[int, float] = {}
    flags: dict[int, bool] = {}
    for _, g in out.groupby("site", sort=False):
        complete = g["complete"] if "complete" in g else [True] * len(g)
        rows = [{"window_start": ws, "window_end": we, "site": s, "clicks": int(c),
                 "impressions": int(i), "ctr": None if pd.isna(ctr) else float(ctr),
                 "complete": bool(ok)}
                for ws, we, s, c, i, ctr, ok in zip(g["window_start"], g["window_end"],
                                                    g["site"], g["clicks"], g["impressions"],
                                                    g["ctr"], complete, strict=True)]
        for idx, (score, flag) in zip(g.index, _rescore_site(rows, params, inputs),
                                      strict=True):
            scores[idx] = score
            flags[idx] = flag
    out["anomaly_score"] = pd.Series(scores, dtype=float)
    out["is_anomaly"] = pd.Series(flags, dtype=bool)
    return out


def check_rescore(job_scores: pd.DataFrame, params: ForestParams) -> dict[str, Any]:
    """Re-score the job's windows with the job's parameters and compare exactly.

    Returns counts of windows whose score or flag differ (both must be 0) and the largest
    score difference.
    """
    again = rescore(job_scores, params)
    a = job_scores.sort_values(["window_start_ms", "site"], kind="stable")
    b = again.loc[a.index]
    sa, sb = a["anomaly_score"].to_numpy(), b["anomaly_score"].to_numpy()
    both_nan = pd.isna(sa) & pd.isna(sb)
    differ = ~both_nan & (sa != sb)
    diff = pd.Series(abs(sa - sb))[~both_nan]
    return {
        "windows": len(a),
        "score_differs": int(differ.sum()),
        "flag_differs": int((a["is_anomaly"].to_numpy() != b["is_anomaly"].to_numpy()).sum()),
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Evaluation of a scored suite
# ---------------------------------------------------------------------------------------------


def flagged_windows(scores: pd.DataFrame,
                    flags: Sequence[bool] | None = None) -> set[tuple[str, int]]:
    """(site, window start ms) of the flagged rows (``flags`` overrides ``is_anomaly``)."""
    mask = scores["is_anomaly"] if flags is None else pd.Series(list(flags), index=scores.index)
    sel = scores[mask.astype(bool)]
    return set(zip(sel["site"], sel["window_start_ms"], strict=True))


def evaluate_scores(suite: Suite, scores: pd.DataFrame, cooldown_s: int = 60,
                    flags: Sequence[bool] | None = None) -> pd.DataFrame:
    """The per-scenario table (TABLE_COLUMNS) for one scored run of ``suite``."""
    flagged = flagged_windows(scores, flags)
    per_scenario: dict[str, set[tuple[str, int]]] = {}
    for site, w in flagged:
        per_scenario.setdefault(suite.scenario_of(site), set()).add((site, w))
    scored = scores.groupby("scenario").size().to_dict()
    rows = []
    for sc in suite.scenarios:
        m = scenario_metrics(per_scenario.get(sc.name, set()), sc.anomalies, sc.sites,
                             sc.duration_s, suite.window_s, cooldown_s,
                             scored_windows=int(scored.get(sc.name, 0)))
        rows.append({"scenario": sc.name, "quiet": sc.quiet, **m})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def count_mismatches(suite: Suite, scores: pd.DataFrame, lateness_s: int) -> int:
    """Windows whose clicks/impressions in the job's output differ from a plain recount of the
    suite's records (with the watermark's drop of too-late records): must be 0. The job's
    dark-site windows (zero counts) are not in a recount and are left out."""
    expected = window_counts(suite.records(), suite.window_s, lateness_s)
    got = {(s, w): (int(c), int(i)) for s, w, c, i in zip(
        scores["site"], scores["window_start_ms"], scores["clicks"], scores["impressions"],
        strict=True) if c or i}
    keys = set(expected) | set(got)
    return sum(expected.get(k) != got.get(k) for k in keys)


@dataclass
class Evaluation:
    """One evaluation run: the suite, the job's scores, the per-scenario table."""

    suite: Suite
    params: ForestParams
    scores: pd.DataFrame
    table: pd.DataFrame
    totals: dict[str, Any]
    replay: dict[str, Any]
    count_mismatches: int
    seconds: dict[str, float]
    out_dir: Path


def run_evaluation(out_dir: Path | str, size: str = "full", seed: int = 0,
                   params: JobParams | Mapping[str, Any] | None = None,
                   **changes: Any) -> Evaluation:
    """Build the suite, run it through the real job once (``replay``), score each scenario.

    params / changes: the app's parameters (``JobParams.of``; e.g. ``forest=...`` or
    ``threshold=3.5``); the window length is the suite's own. Writes
    ``out_dir/suite.jsonl`` (the input), ``scores.csv`` (the job's output) and
    ``evaluation.csv`` (the per-scenario table).
    """
    from ..analytics.replay import replay

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    suite = build_suite(size, seed)
    job = JobParams.of(JobParams.of(params, **changes), window_seconds=suite.window_s)
    suite.write(out / "suite.jsonl")
    t1 = time.perf_counter()
    summary = replay(out / "suite.jsonl", out, job)
    t2 = time.perf_counter()
    scores = load_scores(out / "scores.csv")
    table = evaluate_scores(suite, scores, job.forest.cooldown_seconds)
    table.to_csv(out / "evaluation.csv", index=False)
    mism = count_mismatches(suite, scores, job.lateness_seconds)
    return Evaluation(suite=suite, params=job.forest, scores=scores, table=table,
                      totals=totals(table), replay=summary, count_mismatches=mism,
                      seconds={"build": round(t1 - t0, 1), "replay": round(t2 - t1, 1),
                               "evaluate": round(time.perf_counter() - t2, 1)},
                      out_dir=out)


def format_table(table: pd.DataFrame) -> str:
    """The per-scenario table as fixed-width text (None shown as "-")."""
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, bool):
            return "yes" if v else ""
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    cols = ["scenario", "quiet", "sites", "windows", "labelled", "flagged", "tp", "fp", "fn",
            "precision", "recall", "anomalies", "detected", "delay_median_s", "delay_max_s",
            "false_alarms", "fa_per_site_day"]
    heads = ["scenario", "quiet", "sites", "windows", "labelled", "flagged", "tp", "fp", "fn",
             "prec", "recall", "anom", "found", "delay_med", "delay_max", "false_al",
             "fa/site-day"]
    body = [[fmt(r[c]) for c in cols] for r in table.to_dict("records")]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    lines_ = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                        for i, (h, w) in enumerate(zip(heads, widths, strict=True)))]
    for b in body:
        lines_.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                                for i, (v, w) in enumerate(zip(b, widths, strict=True))))
    return "\n".join(lines_)


# ---------------------------------------------------------------------------------------------
# Grid over forest parameters (re-scoring the job's windows)
# ---------------------------------------------------------------------------------------------

GRID_COLUMNS = ("inputs", "num_trees", "subsample_size", "shingle_size", "threshold",
                "run_slack", "run_threshold", "precision", "recall", "detected", "anomalies",
                "false_alarms", "fa_per_site_day", "quiet_fa_per_site_day",
                "quiet_max_fp_windows", "quiet_episodes_per_site_day", "delay_max_s",
                "lab_spike_caught", "seconds")


def _grid_point(args: tuple[Suite, pd.DataFrame, ForestParams, str]) -> dict[str, Any]:
    suite, windows, params, inputs = args
    t = time.perf_counter()
    scored = rescore(windows, params, inputs)
    tot = totals(evaluate_scores(suite, scored, params.cooldown_seconds))
    return {"inputs": inputs, "num_trees": params.num_trees,
            "subsample_size": params.subsample_size, "shingle_size": params.shingle_size,
            "threshold": params.threshold, "run_slack": params.run_slack,
            "run_threshold": params.run_threshold,
            **{k: tot[k] for k in GRID_COLUMNS if k in tot},
            "seconds": round(time.perf_counter() - t, 1)}


def grid(suite: Suite, windows: pd.DataFrame, base: ForestParams | None = None,
         thresholds: Sequence[float] = (3.0,), subsample_sizes: Sequence[int] = (64,),
         shingle_sizes: Sequence[int] = (1,), num_trees: Sequence[int] = (100,),
         inputs: Sequence[str] = ("anscombe",), processes: int | None = None,
         run_slacks: Sequence[float] | None = None,
         run_thresholds: Sequence[float] | None = None,
         progress: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Suite-wide figures (GRID_COLUMNS) for every combination of the given parameters.

    ``windows``: the job's scored windows (``load_scores``); every point re-scores them with
    SiteModel, so the windows are the real job's and the scores are the job's code. Points run
    in ``processes`` worker processes (default: one per CPU).
    """
    base = base or ForestParams()
    for name in inputs:
        _check_inputs(name)
    levels = (base.run_slack,) if run_slacks is None else run_slacks
    runs = (base.run_threshold,) if run_thresholds is None else run_thresholds
    points = [(replace(base, num_trees=n, subsample_size=s, shingle_size=sh, threshold=th,
                       run_slack=rl, run_threshold=rt), inp)
              for inp, n, s, sh, th, rl, rt in product(inputs, num_trees, subsample_sizes,
                                                       shingle_sizes, thresholds, levels, runs)]
    cols = ["window_start", "window_end", "site", "clicks", "impressions", "ctr",
            "window_start_ms", "scenario", "complete"]
    # the records stay behind: workers need only the ground truth and the windows
    tasks = [(suite.without_records(), windows[cols], p, inp) for p, inp in points]
    workers = max(1, min(processes or os.cpu_count() or 1, len(tasks)))
    rows: list[dict[str, Any]] = []
    if workers == 1:
        results: Iterable[dict[str, Any]] = map(_grid_point, tasks)
        for row in results:
            rows.append(row)
            if progress:
                progress(row)
    else:
        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(_grid_point, tasks):
                rows.append(row)
                if progress:
                    progress(row)
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


# ---------------------------------------------------------------------------------------------
# An alert rule relative to the recent scores of a site (measured, not adopted: see notebook 06)
# ---------------------------------------------------------------------------------------------


def relative_flags(scores: Sequence[float | None], threshold: float, k: float = 6.0,
                   history: int = 360, min_history: int = 30) -> list[bool]:
    """Flags of one site's windows (in order) under a threshold relative to its recent scores.

    A window is flagged when its score is above ``threshold`` AND above mean + k * standard
    deviation of the site's previous ``history`` positive scores (once there are at least
    ``min_history``; before that the fixed threshold alone decides). A missing score (None or
    NaN: a window without CTR) is never flagged and not remembered; a score of 0 (warm-up)
    is not remembered.
    """
    out: list[bool] = []
    recent: list[float] = []
    for v in scores:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(False)
            continue
        bound = threshold
        if len(recent) >= min_history:
            window = recent[-history:]
            mean = statistics.fmean(window)
            bound = max(threshold, mean + k * statistics.pstdev(window, mean))
        out.append(v > bound)
        if v > 0:
            recent.append(float(v))
    return out


def relative_rule(scores: pd.DataFrame, threshold: float, k: float = 6.0,
                  history: int = 360, min_history: int = 30) -> pd.Series:
    """``relative_flags`` applied per site (window order) to a scores frame; a bool Series."""
    flags = pd.Series(False, index=scores.index)
    ordered = scores.sort_values(["window_start_ms", "site"], kind="stable")
    for _, g in ordered.groupby("site", sort=False):
        vals = [None if pd.isna(v) else float(v) for v in g["anomaly_score"]]
        flags.loc[g.index] = relative_flags(vals, threshold, k, history, min_history)
    return flags.astype(bool)
