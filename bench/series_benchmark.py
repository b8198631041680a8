"""score-series against a plain Random Cut Forest on the labelled real-series suite.

    .venv/bin/python bench/series_benchmark.py [--parts tune held-out]
        [--out docs/series_benchmark.md] [--forest '{"threshold": 3.5}'] [--no-seasons]

The suite is labhelpers/evaluate/real_series.py (statsmodels' bundled data and generated
series replaying their fluctuations; a fixed tune / held-out split). Detectors:
labhelpers/evaluate/series_detectors.py: score-series as the command runs it, and a plain
forest (same krcf, sample 256, raw values, no rules). Score: labhelpers/evaluate/window_score.py
(NAB-like, perfect 100, never flagging 0), per part and per kind, two ways:

- deployed: the detector's own flags (score-series' is_anomaly; the plain forest's score
  above the lab's threshold);
- best: one threshold on the detector's scores for the whole part, the best one (its ceiling);
  per kind at that part's threshold.

Also: flags on the noisy square waves with and without seasons, and the synthetic series
suite's quiet-series false alarms (series_suite.py; its bar is <= 2 per 1,000 points).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labhelpers.evaluate.real_series import PARTS, build_real_suite  # noqa: E402
from labhelpers.evaluate.series_detectors import (  # noqa: E402
    plain_forest,
    score_series_detector,
)
from labhelpers.evaluate.series_suite import build_series_suite, evaluate_series  # noqa: E402
from labhelpers.evaluate.window_score import best_threshold, corpus_score  # noqa: E402


def run_part(part: str, forest: dict | None, seasons: bool) -> dict:
    suite = build_real_suite(part)
    det = {"score-series": [score_series_detector(s.timestamps, s.values, seasons, forest)
                            for s in suite],
           "plain-forest": [plain_forest(s.timestamps, s.values) for s in suite]}
    windows = [list(s.windows) for s in suite]
    if seasons:  # what the seasons buy: the same command with --no-seasons, totals only
        plain = [score_series_detector(s.timestamps, s.values, False, forest) for s in suite]
        extra = {"deployed": corpus_score([r.flags for r in plain], windows),
                 "best": best_threshold([r.scores for r in plain], windows)[1],
                 "flags": sum(sum(r.flags) for r in plain)}
    out: dict = {"series": len(suite), "points": sum(len(s.values) for s in suite),
                 "windows": sum(len(w) for w in windows), "detectors": {}, "kinds": {}}
    thresholds = {}
    for name, rows in det.items():
        th, best = best_threshold([r.scores for r in rows], windows)
        thresholds[name] = th
        out["detectors"][name] = {
            "deployed": corpus_score([r.flags for r in rows], windows),
            "best": best, "best_threshold": th,
            "flags": sum(sum(r.flags) for r in rows)}
    if seasons:
        out["no_seasons"] = extra
    for kind in dict.fromkeys(s.kind for s in suite):
        idx = [i for i, s in enumerate(suite) if s.kind == kind]
        w = [windows[i] for i in idx]
        row = {"series": len(idx)}
        for name, rows in det.items():
            row[name] = {
                "deployed": corpus_score([rows[i].flags for i in idx], w),
                "best": corpus_score([[x > thresholds[name] for x in rows[i].scores]
                                      for i in idx], w),
                "flags": sum(sum(rows[i].flags) for i in idx)}
        out["kinds"][kind] = row
    sq = [i for i, s in enumerate(suite) if s.kind == "square-noisy"]
    out["square_noisy_flags"] = {
        "seasons": sum(sum(det["score-series"][i].flags) for i in sq) if seasons else None,
        "no_seasons": sum(sum(plain[i].flags) for i in sq) if seasons else
        sum(sum(det["score-series"][i].flags) for i in sq)}
    return out


def quiet_fa(seasons: bool, forest: dict | None) -> dict:
    res = {}
    for size, seed in (("small", 1), ("full", 4)):
        t = evaluate_series(build_series_suite(size, seed=seed), forest, seasons=seasons)
        q = t[t["quiet"]]
        res[f"{size}/seed {seed}"] = {
            "quiet_fa_per_1000": round(1000 * q["false_alarms"].sum() / q["points"].sum(), 3),
            "found": f"{int(t['found'].sum())}/{int(t['events'].sum())}"}
    return res


NOTES = """## Reading the figures

- The split is fixed (real_series.py: TUNE_SEEDS / HELD_OUT_SEEDS, TUNE_SOURCES /
  HELD_OUT_SOURCES, REAL_PARTS). score-series' defaults (series.py: SERIES_DEFAULTS and the
  SEASON_* constants) were chosen on the tune part only; the held-out part was run once the
  choices were made.
- *best* thresholds the anomaly score alone (the run rule and the hold are left out), so a
  detector's deployed figure can be above its best one (a run-rule flag that the score
  misses, e.g. real-elnino).
- Weak spots of score-series: the weekly kind (before the first whole week the daily season
  flags the first weekend; a day-long anomaly then makes the weekly season look worse than
  the recent level for a while, and the next days are flagged against the recent level);
  heavy tails (Student-t, df 2: tail points pass the threshold); integer plateaus (small
  counts held for stretches); short real series (sunspots, nile, macrodata: 100-300 points,
  the forest's highest score stays below the threshold for its first ~100 points).
- These figures are not comparable with the 58-series benchmark of issue 27 (not in this
  repository). docs/figures.md's score-series section (bench/evaluate_defaults.py) predates
  the seasons and run_threshold 7.
"""


def to_markdown(fig: dict, command: str) -> str:
    lines = ["# score-series on real operational series", "",
             "Written by `bench/series_benchmark.py`; regenerate with:", "",
             f"    {command}", "",
             "Suite: `labhelpers/evaluate/real_series.py` (statsmodels' bundled data and "
             "generated series replaying their fluctuations; a fixed tune / held-out split; "
             "defaults chosen on tune only). Score: `labhelpers/evaluate/window_score.py` "
             "(NAB-like: perfect 100, never flagging 0, false positives cost 0.11 each). "
             "*deployed*: the detector's own flags; *best*: the best single threshold on its "
             "scores over the whole part (per kind: at that threshold). Plain forest: same "
             "krcf, sample 256, raw values, no rules, deployed at the lab's threshold 3.5.", ""]
    for part, p in fig["parts"].items():
        ss, pf = p["detectors"]["score-series"], p["detectors"]["plain-forest"]
        lines += [f"## {part}: {p['series']} series, {p['points']:,} points, "
                  f"{p['windows']} windows", "",
                  "| kind | series | score-series deployed | score-series best | "
                  "plain forest deployed | plain forest best | flags (ss / plain) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for kind, k in p["kinds"].items():
            a, b = k["score-series"], k["plain-forest"]
            lines.append(f"| {kind} | {k['series']} | {a['deployed']:.1f} | {a['best']:.1f} | "
                         f"{b['deployed']:.1f} | {b['best']:.1f} | {a['flags']} / {b['flags']} |")
        lines.append(f"| **all** | {p['series']} | **{ss['deployed']:.1f}** | "
                     f"**{ss['best']:.1f}** (th {ss['best_threshold']:.3g}) | "
                     f"**{pf['deployed']:.1f}** | **{pf['best']:.1f}** "
                     f"(th {pf['best_threshold']:.3g}) | {ss['flags']} / {pf['flags']} |")
        if "no_seasons" in p:
            ns = p["no_seasons"]
            lines.append(f"| score-series `--no-seasons` | {p['series']} | {ns['deployed']:.1f} | "
                         f"{ns['best']:.1f} | | | {ns['flags']} / |")
        sq = p["square_noisy_flags"]
        lines += ["", f"Noisy square waves of this part: {sq['no_seasons']} flags with "
                  f"`--no-seasons`, {sq['seasons']} with seasons.", ""]
    lines += ["## Synthetic series suite (series_suite.py), quiet-series false alarms", "",
              "| suite | with seasons | --no-seasons |", "|---|---|---|"]
    for key, v in fig["quiet"]["seasons"].items():
        w = fig["quiet"]["no_seasons"][key]
        lines.append(f"| {key} | {v['quiet_fa_per_1000']} / 1000, found {v['found']} | "
                     f"{w['quiet_fa_per_1000']} / 1000, found {w['found']} |")
    lines += ["", f"Run time: {fig['seconds']:.0f} s.", "", NOTES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown here")
    ap.add_argument("--forest", default=None, help="score-series' forest parameters, JSON")
    ap.add_argument("--no-seasons", action="store_true")
    args = ap.parse_args(argv)
    forest = json.loads(args.forest) if args.forest else None
    t0 = time.time()
    fig = {"parts": {p: run_part(p, forest, not args.no_seasons) for p in args.parts},
           "quiet": {"seasons": quiet_fa(True, forest), "no_seasons": quiet_fa(False, forest)}}
    fig["seconds"] = time.time() - t0
    command = "python bench/series_benchmark.py " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    text = to_markdown(fig, command.strip())
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
