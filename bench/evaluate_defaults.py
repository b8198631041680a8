"""Choose the forest's defaults from the labelled scenario suite.

    .venv/bin/python bench/evaluate_defaults.py [--size full|small] [--out DIR]
                                                [--scores DIR] [--quick]

1. Runs the whole suite (labhelpers/scenarios.py) through the REAL job once (``replay``) with
   the current defaults and prints the per-scenario table (skipped with ``--scores DIR``,
   which reuses a previous run's output folder of the same size).
2. Checks that re-scoring the job's windows in Python with SiteModel gives the job's scores
   exactly (so the grid below measures what the job would do).
3. Grid: re-scores the job's windows for each parameter combination, for the job's current
   forest inputs ("raw": clicks, impressions, CTR %) and for the candidate "anscombe"
   inputs (see labhelpers/evaluate.py INPUTS); then the number of trees at the best point.
4. Compares the fixed threshold with a threshold relative to the site's recent scores.

Writes DIR/evaluation.csv, DIR/grid.csv and DIR/relative_rule.csv. ``--quick``: a smaller
grid (for a try-out; about a minute at size small).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labhelpers.analytics.forest import ForestParams  # noqa: E402
from labhelpers.evaluate.evaluation import (  # noqa: E402
    check_rescore,
    evaluate_scores,
    format_table,
    grid,
    load_scores,
    relative_rule,
    rescore,
    run_evaluation,
    totals,
)
from labhelpers.evaluate.scenarios import build_suite  # noqa: E402

SHOW = ["inputs", "num_trees", "subsample_size", "shingle_size", "threshold", "precision",
        "recall", "detected", "anomalies", "false_alarms", "fa_per_site_day",
        "quiet_fa_per_site_day", "delay_max_s", "lab_spike_caught"]


def _show(df: pd.DataFrame) -> str:
    return df[SHOW].to_string(index=False, float_format=lambda v: f"{v:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=("small", "full"), default="full")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temp dir)")
    ap.add_argument("--scores", type=Path, default=None,
                    help="reuse this earlier evaluation folder instead of running the job")
    ap.add_argument("--quick", action="store_true", help="a small grid")
    ap.add_argument("--processes", type=int, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="evaluate-defaults-"))
    out.mkdir(parents=True, exist_ok=True)
    params = ForestParams()

    t0 = time.perf_counter()
    if args.scores:
        suite = build_suite(args.size)
        scores = load_scores(args.scores)
        table = evaluate_scores(suite, scores, params.cooldown_seconds)
        print(f"== reusing the job's scores in {args.scores}")
    else:
        ev = run_evaluation(out, size=args.size, forest=params)
        suite, scores, table = ev.suite, ev.scores, ev.table
        print(f"== evaluation through the real job (size {args.size}): {ev.replay['windows']} "
              f"windows, seconds {ev.seconds}, count mismatches {ev.count_mismatches}")
    table.to_csv(out / "evaluation.csv", index=False)
    print(f"defaults: {params.to_dict()}")
    print(format_table(table))
    print("totals:", totals(table))

    t = time.perf_counter()
    check = check_rescore(scores, params)
    print(f"\n== Python re-score vs the job ({time.perf_counter() - t:.1f} s): {check}")
    if check["score_differs"] or check["flag_differs"]:
        sys.exit("the re-score differs from the job: the grid would not measure the job")

    if args.quick:
        parts = [dict(inputs=("raw",), subsample_sizes=(64,), thresholds=(3.0, 4.0, 5.0)),
                 dict(inputs=("anscombe",), subsample_sizes=(64,), thresholds=(2.5, 3.0, 3.5))]
    else:
        parts = [dict(inputs=("raw",), subsample_sizes=(32, 64, 128, 256),
                      thresholds=(3.0, 3.5, 4.0, 4.5, 5.0)),
                 dict(inputs=("anscombe",), subsample_sizes=(32, 64, 128, 256),
                      thresholds=(2.5, 2.75, 3.0, 3.25, 3.5), shingle_sizes=(1, 2))]
    frames = []
    for part in parts:
        t = time.perf_counter()
        g = grid(suite, scores, params, processes=args.processes, **part)
        frames.append(g)
        print(f"\n== grid {part} ({time.perf_counter() - t:.0f} s)")
        print(_show(g))
    if not args.quick:
        t = time.perf_counter()
        trees = grid(suite, scores, params, inputs=("anscombe",), num_trees=(50, 100, 200),
                     processes=args.processes)
        frames.append(trees)
        print(f"\n== number of trees, anscombe inputs, subsample 64, threshold 3 "
              f"({time.perf_counter() - t:.0f} s)")
        print(_show(trees))
    pd.concat(frames).to_csv(out / "grid.csv", index=False)

    # A threshold relative to each site's recent scores, on top of the fixed one.
    rows = []
    for inputs, th in (("raw", 3.0), ("anscombe", 3.0)):
        p = replace(params, threshold=th)
        scored = rescore(scores, p, inputs)
        base = totals(evaluate_scores(suite, scored, p.cooldown_seconds))
        rows.append({"inputs": inputs, "threshold": th, "rule": "fixed", **base})
        for k in (4.0, 6.0, 8.0):
            flags = relative_rule(scored, th, k=k)
            tot = totals(evaluate_scores(suite, scored, p.cooldown_seconds, flags=flags.tolist()))
            rows.append({"inputs": inputs, "threshold": th, "rule": f"mean+{k:g}sd", **tot})
    rel = pd.DataFrame(rows)
    rel.to_csv(out / "relative_rule.csv", index=False)
    print("\n== relative alert rule (flag only above mean + k sd of the site's last 360 scores)")
    print(rel[["inputs", "threshold", "rule", "precision", "recall", "detected", "anomalies",
               "false_alarms", "quiet_false_alarms", "lab_spike_caught"]]
          .to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nall done in {time.perf_counter() - t0:.0f} s; files in {out}")


if __name__ == "__main__":
    main()
