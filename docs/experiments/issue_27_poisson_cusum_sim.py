"""EXPERIMENT (issue 27, part 1; not part of the lab): can CUSUMs of the counts' log-likelihood
ratios, with learned baselines, reach 90 % of the bound for both changes at the quiet-day
false-alarm rate? A stand-alone rule (not the lab's), on bench/detection_limits.py's busy site.

    .venv/bin/python docs/experiments/issue_27_poisson_cusum_sim.py [QUIET_WINDOWS] [EVENTS]

The rule, per 10-s window, with exponential means learned on the windows it did not flag
(clicks and impressions over SPAN windows; impressions also over RECENT windows):
- CTR low: the Poisson log-likelihood ratio of the clicks halved against the clicks to
  expect, the usual clicks x recent / usual impressions (traffic that got quieter lately is
  not a lower CTR);
- clicks high: the same for the clicks doubled, never expecting fewer than the usual clicks;
- impressions up and down: the Poisson ratio of x1.5 and x0.5 against their usual count.
Each is a one-sided CUSUM with its own threshold (nats); a flag resets all four. Prints, per
setting: false alarms per site-day on steady Poisson traffic (and per sum), the share of x2
rises in 40 s and CTR halvings in 60 s caught against the exact CUSUM's (the bound) at the
same false-alarm rate, and how often the click sums alone flag within 30 windows after the
traffic (clicks and impressions together) halves or doubles, the CTR unchanged.
Results: docs/experiments/README.md.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import detection_limits as D  # noqa: E402

C0, I0 = D.CLICKS, D.IMPRESSIONS


@dataclass
class Rule:
    h_low: float
    h_high: float
    h_imp: float = 13.0
    span: int = 360
    recent_span: int = 6
    c: float | None = None
    i: float | None = None
    r: float | None = None
    n: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * 4)
    flagged_by: list[int] = field(default_factory=lambda: [0] * 4)

    def _learn(self, c: int, i: int) -> None:
        self.n += 1
        a = max(1.0 / self.n, 2.0 / (self.span + 1))
        self.c = c if self.c is None else self.c + a * (c - self.c)
        self.i = i if self.i is None else self.i + a * (i - self.i)

    def step(self, c: int, i: int) -> bool:
        a = 2.0 / (self.recent_span + 1)
        self.r = i if self.r is None else self.r + a * (i - self.r)
        if self.n < 20:
            self._learn(c, i)
            return False
        ratio = self.r / max(self.i, 1.0)
        low_e, high_e, imp_e = self.c * ratio, self.c * max(1.0, ratio), max(self.i, 1.0)
        evidence = (c * math.log(0.5) + 0.5 * low_e, c * math.log(2.0) - high_e,
                    i * math.log(1.5) - 0.5 * imp_e, i * math.log(0.5) + 0.5 * imp_e)
        limits = (self.h_low, self.h_high, self.h_imp, self.h_imp)
        self.sums = [max(0.0, s + e) for s, e in zip(self.sums, evidence, strict=True)]
        hits = [s > h for s, h in zip(self.sums, limits, strict=True)]
        if any(hits):
            self.flagged_by = [f + h for f, h in zip(self.flagged_by, hits, strict=True)]
            self.sums = [0.0] * 4
            return True
        self._learn(c, i)
        return False


def warmed(rng, rule: Rule) -> Rule:
    for c, i in zip(*(x.tolist() for x in D._counts(rng, "poisson", C0, D.CHANGE_WARMUP)),
                    strict=True):
        rule.step(c, i)
    rule.sums = [0.0] * 4  # the change starts from clean sums, as the bound's
    return rule


def measure(setting: dict, quiet: int, events: int, fine: dict) -> None:
    rng = np.random.default_rng(5)
    rule = Rule(**setting)
    clicks, imps = D._counts(rng, "poisson", C0, quiet)
    flags = sum(rule.step(c, i) and k >= D.WARMUP
                for k, (c, i) in enumerate(zip(clicks.tolist(), imps.tolist(), strict=True)))
    per_day = D.WINDOWS_PER_DAY / (quiet - D.WARMUP)
    fa = flags * per_day
    by = ", ".join(f"{name} {n * per_day:.2f}" for name, n in
                   zip(("CTR low", "clicks high", "imp. up", "imp. down"), rule.flagged_by,
                       strict=True))
    out = [f"{setting}: {fa:.2f} false alarms per site-day ({by})"]
    for name, (changed, within, _) in D.CHANGES.items():
        caught = 0
        for _ in range(events):
            r = warmed(rng, Rule(**setting))
            cs, im = D._counts(rng, "poisson", changed, within)
            caught += any([r.step(c, i) for c, i in zip(cs.tolist(), im.tolist(), strict=True)])
        share, b = caught / events, D.bound_at(fine[name], fa)
        out.append(f"  {name}: caught {share:.0%}, bound {b:.0%}, {share / b:.0%} of it")
    for factor in (0.5, 2.0):
        hits = 0
        for _ in range(300):
            r = warmed(rng, Rule(**{**setting, "h_imp": 1e9}))  # the click sums alone
            cs, im = rng.poisson(C0 * factor, 30), rng.poisson(I0 * factor, 30)
            hits += any([r.step(c, i) for c, i in zip(cs.tolist(), im.tolist(), strict=True)])
        out.append(f"  traffic x{factor:g}, CTR unchanged: the click sums flag {hits / 300:.0%}")
    print("\n".join(out), flush=True)


def main() -> None:
    quiet = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 800
    rng = np.random.default_rng(11)
    fine = D.fine_bounds(rng, "poisson", 1_000_000, 4_000)
    for setting in ({"h_low": 8.75, "h_high": 9.5, "recent_span": 6},
                    {"h_low": 8.5, "h_high": 9.5, "recent_span": 10},
                    {"h_low": 8.5, "h_high": 9.5, "recent_span": 1}):
        measure(setting, quiet, events, fine)


if __name__ == "__main__":
    main()
