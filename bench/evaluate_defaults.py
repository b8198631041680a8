"""Choose the detector's defaults on a tuning suite and report them on a held-out suite.

    .venv/bin/python bench/evaluate_defaults.py [--size full|small] [--out DIR]
        [--tune-seeds 0 1 2 3] [--held-seed 6] [--tune-scores DIR ...] [--held-scores DIR]
        [--figures docs/figures.json]

1. Tuning part: the clickstream scenario suite (labhelpers/scenarios.py) with the tuning
   seeds (default 0-3), each run through the REAL job once (``replay``; or reuse
   ``--tune-scores DIR ...``, one folder per tuning seed, in order). The alert rule
   (threshold, run_slack, run_threshold) is swept on the job's scores of every tuning seed,
   and the point chosen is: the bars met (``choose``), then every labelled anomaly
   found if possible, then the fewest false-alarm episodes on quiet scenarios, then the
   shortest worst delay.
2. Held-out part: the same scenarios with the held-out seed (default 6: other random
   traffic, not looked at while the rule and its defaults were worked on; seeds 0 and 1
   were; seeds 2-5 were the held-out seeds of passes before, so they have been seen),
   through
   the real job (or ``--held-scores DIR``), scored AS DEPLOYED with the
   chosen parameters: the tool's own
   ``is_anomaly`` and alert episodes (SiteModel, the job's code; ``check_rescore`` proves the
   re-score equals the job on the job's own parameters). Also the "original-lab" preset on
   the same windows.
3. The labelled series suite for ``score-series``: tuning (the first tuning seed) and held
   out (the held-out seed), as deployed (series.SERIES_DEFAULTS, no tuning per series).

Writes the figures to ONE file (default docs/figures.json) and a readable docs/figures.md
next to it; docs and notebooks point there instead of repeating numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labhelpers.evaluate.evaluation import (  # noqa: E402
    check_rescore,
    detection_delay,
    evaluate_scores,
    flagged_windows,
    format_table,
    load_scores,
    rescore,
    run_evaluation,
    totals,
)
from labhelpers.evaluate.quiet_days import episode_rate, long_quiet_days  # noqa: E402
from labhelpers.evaluate.scenarios import build_suite  # noqa: E402
from labhelpers.evaluate.series import SERIES_DEFAULTS  # noqa: E402
from labhelpers.evaluate.series_suite import build_series_suite, evaluate_series  # noqa: E402
from labhelpers.job.forest import ForestParams, SiteModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PER_SCENARIO = ["scenario", "quiet", "sites", "anomalies", "detected", "delay_median_s",
                "delay_max_s", "fp", "false_alarms", "episodes", "episodes_per_site_day"]


def _truth(seed: int, size: str, folder: Path):
    """The suite's ground truth (no records), cached in ``folder``: building the records of
    a full suite takes minutes."""
    cache = folder / f"truth-{size}-{seed}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    suite = build_suite(size, seed, records=False)
    folder.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(suite))
    return suite


def _scores(seed: int, size: str, reuse: Path | None, out: Path) -> tuple:
    if reuse:
        return _truth(seed, size, reuse), load_scores(reuse)
    ev = run_evaluation(out / f"seed{seed}", size=size, seed=seed)
    print(f"replay seed {seed}: {ev.replay['windows']} windows, {ev.seconds}, "
          f"count mismatches {ev.count_mismatches}")
    return ev.suite.without_records(), ev.scores


def rule_flags(scores: pd.DataFrame, params: ForestParams) -> list[bool]:
    """The alert rule (SiteModel.decide, the job's code) on the job's own scores, per site;
    the forest is not re-run, so a held window's effect on later scores is left out (for
    the sweep only; the held-out figures are re-scored exactly)."""
    flags = pd.Series(False, index=scores.index)
    ordered = scores.sort_values(["window_start_ms", "site"], kind="stable")
    for _, g in ordered.groupby("site", sort=False):
        model, out = SiteModel(params), []
        complete = g["complete"] if "complete" in g else [True] * len(g)
        for v, c, i, ok in zip(g["anomaly_score"], g["clicks"], g["impressions"], complete,
                               strict=True):
            if pd.isna(v) or not ok:
                out.append(False)
                continue
            row = {"clicks": int(c), "impressions": int(i), "ctr": None}
            out.append(model.decide(row, float(v), float(v) > 0)[0])
        flags.loc[g.index] = out
    return flags.tolist()


RULE_GRID = {"threshold": (3.0, 3.25, 3.5), "run_slack": (0.5, 0.75, 1.0, 1.25),
             "run_threshold": (0.0, 3.0, 4.0, 5.0, 6.0)}


def grid_points(base: ForestParams):
    """(threshold, run_slack, run_threshold, params) of each RULE_GRID point."""
    for th, rl, rt in itertools.product(*RULE_GRID.values()):
        if rt == 0 and rl != RULE_GRID["run_slack"][0]:
            continue  # the run rule off: its slack does not matter
        yield th, rl, rt, replace(base, threshold=th, run_slack=rl, run_threshold=rt)


# Long quiet days (labhelpers/evaluate/quiet_days.py): site-days per quiet scenario, and the
# simulation's seeds (tuning; held out: this + the held-out suite seed).
LONG_QUIET_SITE_DAYS = 4.0
LONG_QUIET_TUNE_SEED, LONG_QUIET_HELD_SEED = 1_000, 2_000


def long_quiet_sweep(seed: int) -> pd.DataFrame:
    """Alert episodes per site-day of each grid point on long simulated quiet days (the
    forest scored once, with the defaults; the rule swept on those scores, as ``sweep``)."""
    scores = rescore(long_quiet_days(LONG_QUIET_SITE_DAYS, seed), ForestParams())
    rows = []
    for th, rl, rt, p in grid_points(ForestParams()):
        r = episode_rate(scores, rule_flags(scores, p), p.cooldown_seconds)
        rows.append({"threshold": th, "run_slack": rl, "run_threshold": rt,
                     "long_quiet_episodes_per_site_day": r["per_site_day"],
                     "long_quiet_max_fp_windows": r["max_windows_per_suite_run"]})
    return pd.DataFrame(rows)


def sweep(suite, scores: pd.DataFrame, base: ForestParams) -> pd.DataFrame:
    lab = scores[scores["scenario"] == "lab-spike"]
    rows = []
    for th, rl, rt, p in grid_points(base):
        table = evaluate_scores(suite, scores, p.cooldown_seconds, flags=rule_flags(scores, p))
        tot = totals(table)
        # the lab's own spike with the run rule alone (threshold out of the way): its score
        # sits close to the threshold, so the run rule must catch it as early on its own
        alone = replace(p, threshold=1e6)
        lab_table = evaluate_scores(suite, lab, p.cooldown_seconds, flags=rule_flags(lab, alone))
        lab_row = lab_table[lab_table["scenario"] == "lab-spike"].iloc[0]
        rows.append({"threshold": th, "run_slack": rl, "run_threshold": rt,
                     **{k: tot[k] for k in ("detected", "anomalies", "delay_max_s",
                                            "quiet_false_alarms", "quiet_max_fp_windows",
                                            "quiet_episodes_per_site_day",
                                            "lab_spike_caught")},
                     "delay_sum_s": float(table["delay_median_s"].fillna(0).sum()),
                     "lab_spike_run_alone_delay_s": lab_row["delay_max_s"]
                     if lab_row["detected"] == lab_row["anomalies"] else None})
    return pd.DataFrame(rows)


def sweep_seeds(parts: dict[int, tuple]) -> pd.DataFrame:
    """``sweep`` on each tuning seed's (suite, scores), one row per grid point and seed
    (column ``seed``)."""
    return pd.concat([sweep(suite, scores, ForestParams()).assign(seed=seed)
                      for seed, (suite, scores) in parts.items()], ignore_index=True)


def choose(table: pd.DataFrame) -> dict:
    """The issue's bars first: on EVERY tuning seed the lab's spike caught, and caught by
    the run rule alone as early as by the threshold (10 s); on long quiet days (a seed's
    quiet scenarios are under 1.5 site-days, 0-2 episodes, too few to tell two rules apart;
    and one chance episode too many in one of twenty scenario runs would decide), at most
    one false-alarm window to expect per run of a quiet scenario
    (``long_quiet_max_fp_windows``) and no more alert episodes per site-day than today's
    rule (threshold 3, no run rule); then, summed over the tuning seeds, the most anomalies
    found, the fewest quiet false alarms, the shortest worst delay, the shortest delays
    overall."""
    if "seed" not in table:
        table = table.assign(seed=0)
    today = table[(table["threshold"] == 3.0) & (table["run_threshold"] == 0)]
    today_quiet = float(today["long_quiet_episodes_per_site_day"].max())
    table = table.assign(lab_alone=table["lab_spike_run_alone_delay_s"].fillna(1e9))
    per = table.groupby(list(RULE_GRID), sort=False).agg(
        lab_spike_caught=("lab_spike_caught", "all"),
        fp_windows_per_run=("long_quiet_max_fp_windows", "max"),
        quiet_episodes=("long_quiet_episodes_per_site_day", "max"),
        lab_alone=("lab_alone", "max"),
        detected=("detected", "sum"),
        quiet_false_alarms=("quiet_false_alarms", "sum"),
        delay_max_s=("delay_max_s", "max"),
        delay_sum_s=("delay_sum_s", "sum")).reset_index()
    ok = per[per["lab_spike_caught"] & (per["fp_windows_per_run"] <= 1)
             & (per["quiet_episodes"] <= today_quiet + 1e-9)]
    robust = ok[ok["lab_alone"] <= 10.0]
    ok = robust if not robust.empty else ok
    if ok.empty:
        ok = per[per["lab_spike_caught"]]
    best = ok.sort_values(["detected", "quiet_false_alarms", "delay_max_s", "delay_sum_s"],
                          ascending=[False, True, True, True]).iloc[0]
    return {k: float(best[k]) for k in RULE_GRID}


# The timed targets: scenario -> (what, bound in seconds).
TIMED_TARGETS = {"busy-x2-60s": ("x2 click rise", 40), "dark-site": ("site gone dark", 40),
                 "busy-ctr-half-3min": ("CTR halving", 60)}
# Today's rule (before issue 14): threshold 3, no run rule, no zero-count windows for a
# silent site (dark_windows 0: the job made none); the same hold.
TODAY = {"threshold": 3.0, "run_threshold": 0.0, "dark_windows": 0}


def targets(suite, scores: pd.DataFrame, table: pd.DataFrame, today_table: pd.DataFrame
            ) -> dict:
    """The issue's clickstream targets on one scored suite, each with met true/false."""
    flagged = flagged_windows(scores)
    out: dict = {}
    tot, today = totals(table), totals(today_table)
    out["every event found"] = {"found": tot["detected"], "of": tot["anomalies"],
                                "met": tot["detected"] == tot["anomalies"]}
    for name, (what, bound) in TIMED_TARGETS.items():
        delays = [detection_delay(a, flagged, suite.window_s)
                  for a in suite.by_name[name].anomalies]
        ok = [d is not None and d <= bound for d in delays]
        out[f"{what} within {bound} s"] = {"scenario": name, "delays_s": delays,
                                           "within": sum(ok), "of": len(ok), "met": all(ok)}
    out["at most 1 false-alarm window per quiet scenario"] = {
        "max": tot["quiet_max_fp_windows"], "met": tot["quiet_max_fp_windows"] <= 1}
    out["quiet-day episodes per site-day no more than today's rule"] = {
        "now": tot["quiet_episodes_per_site_day"],
        "today": today["quiet_episodes_per_site_day"],
        "met": tot["quiet_episodes_per_site_day"] <= today["quiet_episodes_per_site_day"] + 1e-9}
    out["lab spike caught (every window, nothing else)"] = {"met": tot["lab_spike_caught"]}
    out["today's rule found"] = {"found": today["detected"], "of": today["anomalies"]}
    return out


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table[PER_SCENARIO].to_json(orient="records"))


def _markdown(fig: dict) -> str:
    lines = ["# Measured figures (generated by bench/evaluate_defaults.py; do not edit)", "",
             f"Generated {fig['generated']} in {fig['seconds']} s, suite size "
             f"{fig['size']}. Defaults chosen on the tuning part (seeds "
             f"{', '.join(map(str, fig['tune_seeds']))}): `{json.dumps(fig['chosen'])}`. "
             f"Held out: seed {fig['held_seed']}, not looked at while the rule and its "
             "defaults were worked on (seeds 0 and 1 were: the rule was changed after "
             "seeing them; seeds 2-5 were the held-out seeds of passes before and have "
             "been seen). The suite's noise is Poisson since 2026-12-02 (it was "
             "Binomial(4n, 1/4), variance 0.75 x mean, which flattered the false alarms).", ""]
    if "targets_held_out" in fig:
        lines += [f"## Targets, held out, seed {fig.get('held_seed', 1)} (as deployed)", "",
                  "| target | figures | met |",
                  "|---|---|---|"]
        for name, v in fig["targets_held_out"].items():
            figs = ", ".join(f"{k} {json.dumps(x)}" for k, x in v.items() if k != "met")
            met = "" if "met" not in v else ("yes" if v["met"] else "**no**")
            lines.append(f"| {name} | {figs} | {met} |")
        lines.append("")
    for part in ("held_out", "original_lab_held_out"):
        if part not in fig:
            continue
        lines += [f"## Clickstream, {part.replace('_', ' ')}, seed {fig.get('held_seed', 1)} "
                  "(as deployed: is_anomaly, alert episodes)", "",
                  "| scenario | anomalies | found | delay median s | delay max s | "
                  "false-alarm windows | false-alarm episodes | episodes per site-day |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in fig[part]["scenarios"]:
            lines.append(f"| {r['scenario']} | {r['anomalies']} | {r['detected']} | "
                         f"{r['delay_median_s'] if r['delay_median_s'] is not None else '-'} | "
                         f"{r['delay_max_s'] if r['delay_max_s'] is not None else '-'} | "
                         f"{r['fp']} | {r['false_alarms']} | "
                         f"{r['episodes_per_site_day']:.2f} |")
        lines += ["", f"Totals: `{json.dumps(fig[part]['totals'])}`", ""]
    lines += ["score-series' defaults (labhelpers/evaluate/series.py: SERIES_DEFAULTS) were "
              "chosen by hand on seeds 0-3 of the series suite (run_threshold on the tune part "
              "of the real-series suite: docs/series_benchmark.md); the held-out seed is a "
              "later one.", ""]
    for part in ("series_held_out", "series_tuning"):
        which = part.split("_", 1)[1]
        seed = fig.get("series_seeds", {}).get(which)
        lines += [f"## score-series, {which.replace('_', ' ')}"
                  f"{'' if seed is None else f', seed {seed}'} (as deployed: "
                  f"`{json.dumps(fig['series_defaults'])}`)", "",
                  "| series | quiet | points | events | found | delay max (points) | "
                  "false alarms | per 1,000 points |", "|---|---|---|---|---|---|---|---|"]
        for r in fig[part]["series"]:
            lines.append(f"| {r['series']} | {'yes' if r['quiet'] else ''} | {r['points']} | "
                         f"{r['events']} | {r['found']} | "
                         f"{r['delay_max_points'] if r['delay_max_points'] is not None else '-'}"
                         f" | {r['false_alarms']} | {r['fa_per_1000']:.2f} |")
        lines += ["", f"Quiet series: {fig[part]['quiet_fa_per_1000']:.2f} false alarms per "
                  "1,000 points.", ""]
    return "\n".join(lines) + "\n"


def _series_part(seed: int, size: str) -> dict:
    table = evaluate_series(build_series_suite(size, seed))
    quiet = table[table["quiet"]]
    return {"series": json.loads(table.to_json(orient="records")),
            "quiet_fa_per_1000": float(1000 * quiet["false_alarms"].sum()
                                       / quiet["points"].sum())}


def _series_figures(fig: dict, size: str, tune_seed: int, held_seed: int) -> None:
    fig["series_defaults"] = dict(SERIES_DEFAULTS)
    fig["series_seeds"] = {"tuning": tune_seed, "held_out": held_seed}
    fig["series_tuning"] = _series_part(tune_seed, size)
    fig["series_held_out"] = _series_part(held_seed, size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("small", "full"), default="full")
    ap.add_argument("--out", type=Path, default=Path("/tmp/evaluate-defaults"))
    ap.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--held-seed", type=int, default=6)
    ap.add_argument("--tune-scores", type=Path, nargs="+", default=None,
                    help="the job's scores of each tuning seed (one folder each, in order)")
    ap.add_argument("--held-scores", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures.json")
    ap.add_argument("--series-only", action="store_true",
                    help="keep the clickstream figures of --figures, redo the series suite")
    args = ap.parse_args()
    if args.series_only:
        fig = json.loads(args.figures.read_text())
        _series_figures(fig, args.size, args.tune_seeds[0], args.held_seed)
        args.figures.write_text(json.dumps(fig, indent=1, default=str) + "\n")
        args.figures.with_suffix(".md").write_text(_markdown(fig))
        print(f"series figures redone in {args.figures}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = ForestParams()

    if args.held_seed in args.tune_seeds:
        ap.error("the held-out seed must not be a tuning seed")
    if args.tune_scores and len(args.tune_scores) != len(args.tune_seeds):
        ap.error("--tune-scores: one folder per tuning seed")
    reuse = args.tune_scores or [None] * len(args.tune_seeds)
    parts = {seed: _scores(seed, args.size, r, args.out)
             for seed, r in zip(args.tune_seeds, reuse, strict=True)}
    table = sweep_seeds(parts).merge(long_quiet_sweep(LONG_QUIET_TUNE_SEED), on=list(RULE_GRID))
    table.to_csv(args.out / "rule_sweep.csv", index=False)
    chosen = choose(table)
    print(table.to_string(index=False), "\nchosen:", chosen)
    params = replace(base, **chosen)
    fig: dict = {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "size": args.size, "tune_seeds": args.tune_seeds,
                 "held_seed": args.held_seed, "chosen": chosen,
                 "defaults": params.to_dict()}

    # the tuning part's figures are the sweep's (the rule on the job's scores; a held
    # window's effect on later scores is left out there); the held-out part is re-scored
    fig["tuning_sweep"] = json.loads(table.to_json(orient="records"))

    suite1, held = _scores(args.held_seed, args.size, args.held_scores, args.out)
    fig["rescore_check"] = check_rescore(held, ForestParams())
    deployed = rescore(held, params)
    h_table = evaluate_scores(suite1, deployed, params.cooldown_seconds)
    print(format_table(h_table))
    fig["held_out"] = {"scenarios": _records(h_table), "totals": totals(h_table)}
    today = replace(params, **TODAY)
    t_table = evaluate_scores(suite1, rescore(held, today), today.cooldown_seconds)
    fig["today_held_out"] = {"scenarios": _records(t_table), "totals": totals(t_table),
                             "params": TODAY}
    fig["targets_held_out"] = targets(suite1, deployed, h_table, t_table)
    long = long_quiet_days(LONG_QUIET_SITE_DAYS, LONG_QUIET_HELD_SEED + args.held_seed)
    rates = {name: episode_rate(long, rescore(long, p)["is_anomaly"], p.cooldown_seconds)
             for name, p in (("now", params), ("today", today))}
    fig["long_quiet_held_out"] = rates
    fig["targets_held_out"]["long quiet days: episodes per site-day no more than today's"] = {
        "site_days": rates["now"]["site_days"], "now": round(rates["now"]["per_site_day"], 3),
        "today": round(rates["today"]["per_site_day"], 3),
        "false-alarm windows per quiet scenario run, at most":
            round(rates["now"]["max_windows_per_suite_run"], 2),
        "met": rates["now"]["per_site_day"] <= rates["today"]["per_site_day"] + 1e-9}
    lab = ForestParams.preset("original-lab")
    o_table = evaluate_scores(suite1, rescore(held, lab), lab.cooldown_seconds)
    fig["original_lab_held_out"] = {"scenarios": _records(o_table), "totals": totals(o_table),
                                    "params": lab.to_dict()}

    _series_figures(fig, args.size, args.tune_seeds[0], args.held_seed)
    fig["seconds"] = round(time.perf_counter() - t0)
    args.figures.parent.mkdir(parents=True, exist_ok=True)
    args.figures.write_text(json.dumps(fig, indent=1, default=str) + "\n")
    args.figures.with_suffix(".md").write_text(_markdown(fig))
    print(f"figures in {args.figures} and {args.figures.with_suffix('.md')}")


if __name__ == "__main__":
    main()
