"""How fast can ANY detector see a x2 click rise or a CTR halving, at a given false-alarm rate?

    .venv/bin/python bench/detection_limits.py [--quiet-windows N] [--events M]
        [--out docs/detection_limits.md]

Issue 14 asks, on a busy noisy site (10 impressions/s, CTR ~10 %: about 10 clicks per 10-s
window), for a x2 click rise to be flagged within 40 s and a CTR halving within 60 s, and
for quiet days to stay as quiet as before. This measures how far apart those targets are,
on simulated windows (clicks and impressions of one site, the change on a window boundary,
as in the scenario suite):

- **the bound**: a CUSUM of the exact log-likelihood ratio of the changed clicks against the
  usual ones, told both true rates. No detector that must also learn the usual rate and
  watch for other kinds of change can do better: for a given false-alarm rate the CUSUM is
  the fastest (Lorden 1971, Moustakides 1986). Several thresholds.
- **the bound for a detector that takes the traffic from the window itself**: the same
  CUSUM told both rates, of the clicks given the window's clicks + impressions (a binomial
  count whose share is the CTR's): the best a detector can do that does not assume the
  impressions steady, so a daily cycle or a traffic step does not move it. It uses only the
  window's own impressions, so at the same false-alarm rate it is slower than the bound
  (the bound knows the traffic exactly); the lab's rule has the same limit in its CTR sums
  (``deviations.click_deviation``).
- **the lab's run rule** (``SiteModel.decide``, the job's code, the forest's score left
  out), at its defaults and two stricter settings.
- **today's rule** (the rule before issue 14: the forest's score above 3, nothing else;
  ``SiteModel.score`` with the forest), false alarms only.

For each: false alarms per site-day (8,640 windows) on steady traffic, and the share of
changes flagged within the target; for the rule also its share of the bound at its whole
false-alarm rate (issue 27's measure) and at the rate of the sums that can see the change
(``CHANGES``: the budget the rule spends on that change; the bound spends all of it on
one). Two noise models: Binomial (each sender's count Binomial(4n, 1/4): variance
0.75 x mean, the scenario suite's noise before 2026-12-02) and Poisson (variance = mean, the
suite's noise now; real traffic is at least this noisy).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labhelpers.job.forest import ForestParams, SiteModel  # noqa: E402

CLICKS, IMPRESSIONS = 10.0, 100.0  # per 10-s window on the busy site
WINDOWS_PER_DAY = 8_640
WARMUP = 200  # steady windows before counting false alarms (the rule learns its usual values)
# steady windows before each change: a site running for about 3 hours (the slow means span
# 360 windows; on the false-alarm side the rule has run for days)
CHANGE_WARMUP = 1000
MAX_COUNT = 400
# name -> (clicks per window during the change, windows within which it must be flagged,
# the run rule's sums that can see it: ``SiteModel.flagged_by`` names)
CHANGES = {"x2 click rise, within 40 s": (2 * CLICKS, 4, ("run:clicks_given_ctr:high",
                                                          "run:clicks_rise:high")),
           "CTR halving, within 60 s": (CLICKS / 2, 6, ("run:clicks_given_ctr:low",))}
RULES = ({}, {"run_threshold": 6.0}, {"run_slack": 1.0})
FINE_THRESHOLDS = np.arange(5.0, 14.01, 0.25)  # the ratio interpolates on this grid
BOUND_THRESHOLDS = (6, 8, 10, 12)  # the grid's rows printed
TODAY = {"threshold": 3.0, "run_threshold": 0.0, "dark_windows": 0}


def _suite_n(mean: float) -> tuple[int, float]:
    """The binomial noise's Binomial(n, p) for a click count of ``mean``: a rise adds
    senders (Binomial(4 x mean, 1/4)); a halving thins the usual senders' records."""
    if mean >= CLICKS:
        return round(4 * mean), 0.25
    return round(4 * CLICKS), mean / (4 * CLICKS)


def _log_pmf(model: str, mean: float) -> np.ndarray:
    """log P(count = k) for k in 0..MAX_COUNT-1."""
    k = np.arange(MAX_COUNT)
    lgam = np.array([math.lgamma(x + 1) for x in k])
    if model == "poisson":
        return k * math.log(mean) - mean - lgam
    n, p = _suite_n(mean)
    out = np.full(MAX_COUNT, -np.inf)
    ok = k <= n
    out[ok] = (math.lgamma(n + 1) - lgam[ok] - np.array([math.lgamma(n - x + 1) for x in k[ok]])
               + k[ok] * math.log(p) + (n - k[ok]) * math.log(1 - p))
    return out


def _counts(rng, model: str, clicks_mean: float, size) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and impressions of ``size`` windows (impressions always as usual)."""
    if model == "poisson":
        return rng.poisson(clicks_mean, size), rng.poisson(IMPRESSIONS, size)
    n, p = _suite_n(clicks_mean)
    return rng.binomial(n, p, size), rng.binomial(round(4 * IMPRESSIONS), 0.25, size)


def _conditional_llr(clicks: np.ndarray, imps: np.ndarray, changed: float) -> np.ndarray:
    """The log-likelihood ratio of the clicks given the window's clicks + impressions:
    a binomial count whose share is clicks / (clicks + impressions), ``changed`` against
    CLICKS (exact for Poisson counts)."""
    p0, p1 = CLICKS / (CLICKS + IMPRESSIONS), changed / (changed + IMPRESSIONS)
    return clicks * math.log(p1 / p0) + imps * math.log((1 - p1) / (1 - p0))


def bound(rng, model: str, quiet_windows: int, events: int, changed: float, within: int,
          thresholds=BOUND_THRESHOLDS, conditional: bool = False) -> list[dict]:
    """The exact-LLR CUSUM told both rates: per threshold, false alarms and catch share.
    ``conditional``: of the clicks given the window's own clicks + impressions instead
    (``_conditional_llr``: a detector that does not assume the impressions steady)."""
    if conditional:
        quiet = _conditional_llr(*_counts(rng, model, CLICKS, quiet_windows), changed)
        during = _conditional_llr(*_counts(rng, model, changed, (events, within)), changed)
    else:
        with np.errstate(invalid="ignore"):  # counts no model can give: never drawn
            llr = _log_pmf(model, changed) - _log_pmf(model, CLICKS)
        quiet = llr[_counts(rng, model, CLICKS, quiet_windows)[0]]
        during = llr[_counts(rng, model, changed, (events, within))[0]]
    hs = np.asarray(thresholds, float)
    s, alarms = np.zeros(len(hs)), np.zeros(len(hs))
    for v in quiet:  # all thresholds at once
        s = np.maximum(0.0, s + v)
        hit = s > hs
        alarms += hit
        s[hit] = 0.0
    rows = []
    for j, h in enumerate(hs):
        s1 = np.zeros(events)
        caught = np.zeros(events, bool)
        for k in range(within):
            s1 = np.maximum(0.0, s1 + during[:, k])
            caught |= s1 > h
        kind = "traffic from the window" if conditional else "exact CUSUM"
        rows.append({"detector": f"bound: {kind}, h={h:g}", "h": h,
                     "fa": alarms[j] / quiet_windows * WINDOWS_PER_DAY,
                     "caught": float(caught.mean())})
    return rows


def fine_bounds(rng, model: str, quiet_windows: int, events: int) -> dict[str, list[dict]]:
    """The bound on FINE_THRESHOLDS for each of CHANGES (for ``bound_at``)."""
    return {name: bound(rng, model, quiet_windows, events, changed, within, FINE_THRESHOLDS)
            for name, (changed, within, _) in CHANGES.items()}


def bound_at(fine: list[dict], fa: float) -> float:
    """The bound's catch share at ``fa`` false alarms per site-day: interpolated on log(fa)
    between the fine grid's thresholds (the nearest end above it); NaN below the grid's
    smallest false-alarm rate that was measured (not 0), where it would be a guess."""
    measured = [r["fa"] for r in fine if r["fa"] > 0]
    if not measured or fa < min(measured):
        return float("nan")
    pts = sorted((r["fa"], r["caught"]) for r in fine if r["fa"] > 0)
    xs = np.log([p[0] for p in pts])
    return float(np.interp(np.log(fa), xs, [p[1] for p in pts]))


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0%}"


def _share(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _decide(model: SiteModel, clicks, imps) -> list[bool]:
    return list(_decide_each(model, clicks, imps))


def rule_fa(rng, model: str, quiet_windows: int, params: ForestParams) -> dict[str, float]:
    """The run rule's flags per site-day on steady traffic (a flag restarts the sums): in
    all ("all") and per sum that flagged (``flagged_by``)."""
    m = SiteModel(params)
    clicks, imps = _counts(rng, model, CLICKS, quiet_windows)
    by: dict[str, int] = {"all": 0}
    for k, flag in enumerate(_decide_each(m, clicks, imps)):
        if flag and k >= WARMUP:
            by["all"] += 1
            by[m.flagged_by] = by.get(m.flagged_by, 0) + 1
    return {name: n / (quiet_windows - WARMUP) * WINDOWS_PER_DAY for name, n in by.items()}


def _decide_each(model: SiteModel, clicks, imps):
    for c, i in zip(clicks, imps, strict=True):
        yield model.decide({"clicks": int(c), "impressions": int(i), "ctr": None}, 0.0, True)[0]


def rule_caught(rng, model: str, events: int, params: ForestParams, changed: float,
                within: int, model_cls: type[SiteModel] = SiteModel) -> float:
    """The share of changes the run rule flags within ``within`` windows (``model_cls``: the
    rule's model, another one for an experiment)."""
    caught = 0
    for _ in range(events):
        m = model_cls(params)
        _decide(m, *_counts(rng, model, CLICKS, CHANGE_WARMUP))
        m.rule.up = [0.0] * len(m.rule.up)  # the change starts from clean sums, as the bound's
        m.rule.down = [0.0] * len(m.rule.down)
        caught += any(_decide(m, *_counts(rng, model, changed, within)))
    return caught / events


def today_fa(rng, model: str, windows: int) -> float:
    """Today's rule (the forest's score above 3) on steady traffic: episodes per site-day."""
    m = SiteModel(ForestParams(**TODAY))
    clicks, imps = _counts(rng, model, CLICKS, windows)
    ends = []
    for k, (c, i) in enumerate(zip(clicks, imps, strict=True)):
        row = {"window_start": f"w{k}", "window_end": f"w{k + 1}", "site": "s",
               "clicks": int(c), "impressions": int(i), "ctr": 100.0 * c / i if i else None}
        if m.score(row, (k + 1) * 10_000)["is_anomaly"] and k >= WARMUP:
            ends.append(k)
    episodes = sum(1 for j, k in enumerate(ends) if j == 0 or k - ends[j - 1] > 6)
    return episodes / (windows - WARMUP) * WINDOWS_PER_DAY


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiet-windows", type=int, default=1_200_000)
    ap.add_argument("--events", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", nargs="+", default=["binomial", "poisson"],
                    choices=("binomial", "poisson"))
    ap.add_argument("--out", type=Path, default=None,
                    help="also write the tables as markdown here (docs/detection_limits.md)")
    args = ap.parse_args()
    def rng(*part: int) -> np.random.Generator:
        # one random stream per part of the run, so that adding a part leaves the others' draws
        return np.random.default_rng([args.seed, *part])

    t0 = time.perf_counter()
    lines = ["# How fast can a change be seen? (generated by bench/detection_limits.py; "
             "do not edit)", "",
             f"A busy site, about {CLICKS:.0f} clicks and {IMPRESSIONS:.0f} impressions per "
             "10-s window; the clicks change on a window boundary, impressions go on as usual. "
             "*false alarms*: flags per site-day (8,640 windows) on steady traffic "
             f"({args.quiet_windows:,} windows; today's rule, which runs the forest: a tenth "
             f"of them). *caught*: the share of {args.events:,} changes flagged within the "
             "target (the lab's rule: half of them). *lab's run rule*: the run rule alone "
             "(the job's code, the forest's score left out: its threshold, 3.5, adds at most "
             "about the flags of today's rule, whose threshold is 3). The lab's defaults are "
             f"run_slack {ForestParams().run_slack:g}, run_threshold "
             f"{ForestParams().run_threshold:g}; the bound is the best any detector can do at "
             "its false-alarm rate; *bound at that rate*: the bound's catch share at the "
             "rule's false-alarm rate (interpolated between thresholds 5 to 14 in steps of "
             "0.25; \"-\" below the smallest false-alarm rate measured there), *of the "
             "bound*: the rule's share of it. Before each change the rule has "
             f"run on {CHANGE_WARMUP:,} steady windows.", "",
             "The rule watches for both changes (and for impressions moving), so its false "
             "alarms are spent on several sums, while the bound spends them all on the one "
             "change it is told of. *false alarms of the sums that see it*: the flags of the "
             "sums that can flag this change (a halving: the CTR's low sum; a rise: the CTR's "
             "high sum and the clicks' rise), the budget the rule spends on it; *bound at "
             "their rate*, *of that bound*: the bound and the rule's share at that budget. "
             "The ratio against the rule's whole false-alarm rate (the issue's measure) can "
             "reach 90 % only if the other sums are almost never wrong.", "",
             "*bound: traffic from the window*: the same CUSUM told both rates, of the clicks "
             "given the window's own clicks + impressions (a binomial count): the best a "
             "detector can do that does not assume the impressions steady (a daily cycle, a "
             "traffic step; the lab's CTR sums do not assume it either) under Poisson noise "
             "(under the Binomial noise it is the same detector, not the best one). It knows "
             "the traffic only from the window itself, so it is slower than the bound, which "
             "knows the traffic exactly; the last two columns give it at the rule's whole "
             "false-alarm rate (in brackets: its share of the bound) and the rule's share of "
             "it.", ""]
    for mi, model in enumerate(args.noise):
        noise = ("Binomial(4n, 1/4) per sender: variance 0.75 x mean (the scenario suite's "
                 "before 2026-12-02)" if model == "binomial"
                 else "Poisson: variance = mean (the scenario suite's now)")
        fas = {}
        for ri, extra in enumerate(RULES):
            fas[tuple(extra.items())] = rule_fa(rng(mi, 0, ri), model, args.quiet_windows,
                                                ForestParams(**extra))
        today = today_fa(rng(mi, 1), model, args.quiet_windows // 10)
        lines += [f"## Noise: {noise}", "",
                  f"Today's rule (the forest's score above 3, nothing else): {today:.2f} false "
                  "alarms per site-day.", ""]
        for ci, (name, (changed, within, sums)) in enumerate(CHANGES.items()):
            q, n = args.quiet_windows, args.events
            fine = bound(rng(mi, 3, ci), model, q, n, changed, within, FINE_THRESHOLDS)
            cfine = bound(rng(mi, 5, ci), model, q, n, changed, within, FINE_THRESHOLDS,
                          conditional=True)
            rows = [r for r in fine + cfine if r["h"] in BOUND_THRESHOLDS]
            for ri, extra in enumerate(RULES):
                p = ForestParams(**extra)
                fa = fas[tuple(extra.items())]
                caught = rule_caught(rng(mi, 6, ci, ri), model, n // 2, p, changed, within)
                best = bound_at(fine, fa["all"])
                own = sum(fa.get(k, 0.0) for k in sums)
                own_best = bound_at(fine, own)
                robust = bound_at(cfine, fa["all"])
                rows.append({"detector": f"lab's run rule, slack {p.run_slack}, threshold "
                                         f"{p.run_threshold:g}",
                             "fa": fa["all"], "caught": caught, "bound": best,
                             "ratio": _share(caught, best), "own": own,
                             "own_bound": own_best, "own_ratio": _share(caught, own_best),
                             "robust": robust, "robust_of_bound": _share(robust, best),
                             "robust_ratio": _share(caught, robust)})
            lines += [f"### {name}", "", "| detector | false alarms per site-day | caught | "
                      "bound at that rate | of the bound | false alarms of the sums that see "
                      "it | bound at their rate | of that bound | traffic from the window: "
                      "bound at the whole rate (of the bound) | of it |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['detector']} | {r['fa']:.2f} | {r['caught']:.0%} | "
                      + (f"{_pct(r['bound'])} | {_pct(r['ratio'])} | {r['own']:.2f} | "
                         f"{_pct(r['own_bound'])} | {_pct(r['own_ratio'])} | "
                         f"{_pct(r['robust'])} ({_pct(r['robust_of_bound'])}) | "
                         f"{_pct(r['robust_ratio'])} |"
                         if "bound" in r else "| | | | | | |") for r in rows]
            lines.append("")
        print("\n".join(lines[-30:]), flush=True)
    lines.append(f"Generated in {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
