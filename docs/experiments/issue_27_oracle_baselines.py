"""EXPERIMENT (issue 27, part 1; not part of the lab): how much of the run rule's gap to the
bound comes from its learned baselines?

    .venv/bin/python docs/experiments/issue_27_oracle_baselines.py [QUIET_WINDOWS] [EVENTS]

On bench/detection_limits.py's busy site (Poisson; 10 clicks and 100 impressions per 10-s
window), the rule as it is, then the same rule given the true rates as every baseline (usual,
recent and slow means: an oracle no detector has) at a few settings. For each: false alarms
per site-day on steady traffic, and the share of x2 rises (40 s) and CTR halvings (60 s)
caught, against the exact-rate CUSUM (the bound) at the same false-alarm rate. Results and
what they mean: docs/experiments/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import detection_limits as D  # noqa: E402

from labhelpers.job.deviations import window_deviations  # noqa: E402
from labhelpers.job.forest import ForestParams, SiteModel  # noqa: E402


class OracleModel(SiteModel):
    """The lab's rule with the true rates as its baselines."""

    def decide(self, row, score, ready):
        c, i = D.CLICKS, D.IMPRESSIONS
        deviations = window_deviations(row["clicks"], row["impressions"], c, i, i, c, i)
        return self.rule.decide(score, ready, deviations)[:2]


def measure(label: str, model_cls, params: ForestParams, quiet: int, events: int,
            fine: dict) -> None:
    rng = np.random.default_rng(5)
    clicks, imps = D._counts(rng, "poisson", D.CLICKS, quiet)
    decisions = D._decide_each(model_cls(params), clicks, imps)
    flags = sum(f for k, f in enumerate(decisions) if k >= D.WARMUP)
    fa = flags / (quiet - D.WARMUP) * D.WINDOWS_PER_DAY
    print(f"{label}: {fa:.2f} false alarms per site-day")
    for name, (changed, within, _) in D.CHANGES.items():
        share = D.rule_caught(rng, "poisson", events, params, changed, within, model_cls)
        b = D.bound_at(fine[name], fa)
        print(f"  {name}: caught {share:.0%}, bound at that rate {b:.0%}, {share / b:.0%} of it")


def main() -> None:
    quiet = int(sys.argv[1]) if len(sys.argv) > 1 else 400_000
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    rng = np.random.default_rng(11)
    fine = D.fine_bounds(rng, "poisson", 1_000_000, 4_000)
    measure("the rule as it is (slack 0.75, threshold 5)", SiteModel, ForestParams(), quiet,
            events, fine)
    for slack, threshold in ((0.75, 5.0), (0.75, 5.5), (0.75, 6.0), (0.5, 7.0)):
        measure(f"oracle baselines, slack {slack}, threshold {threshold}", OracleModel,
                ForestParams(run_slack=slack, run_threshold=threshold), quiet, events, fine)


if __name__ == "__main__":
    main()
