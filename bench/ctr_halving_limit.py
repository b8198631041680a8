"""How fast can ANY detector see a CTR halving on a busy site, at a given false-alarm rate?

    .venv/bin/python bench/ctr_halving_limit.py [--quiet-windows N] [--events M]

Issue 14 asks for a CTR halving on a busy noisy site (10 impressions/s, CTR ~10 %: about
10 clicks per 10-s window) to be flagged within 60 s, and for quiet days to stay as quiet
as before. This measures how far apart those two targets are, on simulated windows:

- **the bound**: a CUSUM of the exact log-likelihood ratio of "clicks halved" against
  "clicks as usual", told the true rates (no detector that must also learn the baseline and
  see other kinds of change can do better: the CUSUM is the fastest detector for a given
  false-alarm rate, Lorden 1971 / Moustakides 1986), at several thresholds;
- **the lab's run rule** (``SiteModel.decide`` with the defaults, the job's code; the
  forest's score left out, so only the run rule decides), which must learn the usual values
  itself and also watch rises, impressions and dark sites.

For each: false-alarm episodes per site-day on steady traffic (8,640 windows a day) and the
share of halvings flagged within 60 s (the halving starts on a window boundary, as in the
scenario suite; flagged within 60 s = on one of its first 6 windows). Two noise models:
the suite's (each count Binomial(4n, 1/4), variance 0.75 x mean) and Poisson.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labhelpers.analytics.forest import ForestParams, SiteModel  # noqa: E402

CLICKS, IMPRESSIONS = 10.0, 100.0  # per 10-s window on the busy site
WINDOWS_PER_DAY = 8_640
WITHIN = 6  # windows: 60 s
WARMUP = 200  # quiet windows before each halving (the rule learns its usual values)
MAX_COUNT = 400


def _log_pmf(model: str, mean: float) -> np.ndarray:
    """log P(count = k) for k in 0..MAX_COUNT-1."""
    k = np.arange(MAX_COUNT)
    lgam = np.array([math.lgamma(x + 1) for x in k])
    if model == "poisson":
        return k * math.log(mean) - mean - lgam
    n, p = round(4 * CLICKS), mean / (4 * CLICKS)  # Binomial(4n, mean/4n) thinned as the suite
    out = np.full(MAX_COUNT, -np.inf)
    ok = k <= n
    out[ok] = (math.lgamma(n + 1) - lgam[ok] - np.array([math.lgamma(n - x + 1) for x in k[ok]])
               + k[ok] * math.log(p) + (n - k[ok]) * math.log(1 - p))
    return out


def _counts(rng, model: str, clicks_mean: float, size) -> tuple[np.ndarray, np.ndarray]:
    if model == "poisson":
        return rng.poisson(clicks_mean, size), rng.poisson(IMPRESSIONS, size)
    clicks = rng.binomial(round(4 * CLICKS), clicks_mean / (4 * CLICKS), size)
    return clicks, rng.binomial(round(4 * IMPRESSIONS), 0.25, size)


def oracle(rng, model: str, quiet_windows: int, events: int, thresholds) -> list[dict]:
    """The exact-LLR CUSUM told both rates: per threshold, false alarms and catch share."""
    with np.errstate(invalid="ignore"):  # counts no model can give: never drawn
        llr = _log_pmf(model, CLICKS / 2) - _log_pmf(model, CLICKS)
    quiet = llr[_counts(rng, model, CLICKS, quiet_windows)[0]]
    halved = llr[_counts(rng, model, CLICKS / 2, (events, WITHIN))[0]]
    rows = []
    for h in thresholds:
        s, alarms = 0.0, 0
        for v in quiet:
            s = max(0.0, s + v)
            if s > h:
                alarms, s = alarms + 1, 0.0
        s = np.zeros(events)
        caught = np.zeros(events, bool)
        for k in range(WITHIN):
            s = np.maximum(0.0, s + halved[:, k])
            caught |= s > h
        rows.append({"detector": f"bound (exact CUSUM, h={h})",
                     "fa_per_site_day": alarms / quiet_windows * WINDOWS_PER_DAY,
                     "within_60s": float(caught.mean())})
    return rows


def run_rule(rng, model: str, quiet_windows: int, events: int,
             params: ForestParams) -> dict:
    """The lab's run rule (the job's SiteModel.decide), forest score out of the way."""
    def flags(clicks, imps, model_: SiteModel) -> list[bool]:
        return [model_.decide({"clicks": int(c), "impressions": int(i), "ctr": None},
                              0.0, True)[0] for c, i in zip(clicks, imps, strict=True)]

    c, i = _counts(rng, model, CLICKS, quiet_windows)
    quiet_flags = flags(c, i, SiteModel(params))[WARMUP:]
    alarms = sum(quiet_flags)  # a flag resets the sums: each flag starts an episode here
    caught = 0
    for _ in range(events):
        m = SiteModel(params)
        c, i = _counts(rng, model, CLICKS, WARMUP)
        flags(c, i, m)
        m.rule.up = [0.0] * len(m.rule.up)  # start the halving from clean sums, as the bound
        m.rule.down = [0.0] * len(m.rule.down)
        c, i = _counts(rng, model, CLICKS / 2, WITHIN)
        i = _counts(rng, model, CLICKS, WITHIN)[1]  # impressions go on as usual
        caught += any(flags(c, i, m))
    return {"detector": f"lab's run rule (slack {params.run_slack}, "
                        f"threshold {params.run_threshold})",
            "fa_per_site_day": alarms / len(quiet_flags) * WINDOWS_PER_DAY,
            "within_60s": caught / events}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiet-windows", type=int, default=400_000)
    ap.add_argument("--events", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the tables as markdown here (docs/ctr_halving_limit.md)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    lines = ["# How fast can a CTR halving be seen? (generated by "
             "bench/ctr_halving_limit.py; do not edit)", "",
             "A busy site, about 10 clicks and 100 impressions per 10-s window; the clicks "
             "halve on a window boundary. *within 60 s*: flagged on one of the halving's "
             "first 6 windows. *false alarms*: flags per site-day (8,640 windows) on steady "
             f"traffic. {args.quiet_windows:,} steady windows, {args.events:,} halvings "
             "(a quarter of them for the lab's rule, which runs the job's Python code). The lab's "
             "defaults are slack 0.75, threshold 5.", ""]
    for model in ("suite", "poisson"):
        rows = oracle(rng, model, args.quiet_windows, args.events, (6, 7, 8, 9, 10, 11))
        for p in (ForestParams(run_threshold=4.0), ForestParams(), ForestParams(run_threshold=6.0),
                  ForestParams(run_slack=0.5, run_threshold=4.0)):
            rows.append(run_rule(rng, model, args.quiet_windows, args.events // 4, p))
        noise = ("the scenario suite's (Binomial(4n, 1/4): variance 0.75 x mean)"
                 if model == "suite" else "Poisson (variance = mean)")
        lines += [f"## Noise: {noise}", "", "| detector | false alarms per site-day | "
                  "halvings flagged within 60 s |", "|---|---|---|"]
        lines += [f"| {r['detector']} | {r['fa_per_site_day']:.2f} | {r['within_60s']:.0%} |"
                  for r in rows]
        lines.append("")
    lines.append(f"Generated in {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
