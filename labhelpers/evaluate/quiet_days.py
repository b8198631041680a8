"""Long quiet days: the scenario suite's quiet traffic, simulated for many site-days.

A suite seed holds about 1.4 quiet site-days, where a rule gives 0-2 alert episodes: too few
to tell whether one rule alerts more often than another on quiet days (the issue's bar). The
same traffic here comes straight from the quiet scenarios' own definitions (scenarios.py:
each builder is run against a recorder that notes its senders), as per-window counts: a
sender of ``rate``/s with a profile p(t) sends Poisson(rate x 10 s x p(t)) records a window,
the suite's noise. A profile defined over one scenario (a day compressed into 3 h, a drift
from 100 % to 50 %) is followed forwards then backwards, so days go on without a jump.

``quiet_windows`` makes the windows (the job's columns); ``evaluation.rescore`` scores them
with the job's own code (SiteModel), as the job would, without Flink; ``episode_rate``
counts alert episodes per site-day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..job.contracts import CLICK, IMPRESSION, ctr_percent, format_event_time
from .evaluation import episodes
from .scenarios import SCENARIOS, SIZES, SUITE_START, WINDOW_S

DAY_S = 86_400


@dataclass
class _Sender:
    site: str
    payload: str
    rate: float
    profile: Callable[[float], float] | None


@dataclass
class _Recorder:
    """Stands in for scenarios._Builder: notes each sender a quiet scenario starts."""

    duration_s: int
    senders: list[_Sender] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)

    def site(self, short: str) -> str:
        if short not in self.sites:
            self.sites.append(short)
        return short

    def traffic(self, site: str, payload: str, rate: float, t0: float = 0,
                t1: float | None = None, count: int = 1, noise: bool = True,
                profile: Callable[[float], float] | None = None) -> None:
        if t0 != 0 or t1 is not None or not noise:
            raise ConfigError("A quiet scenario with a timed or noiseless sender",
                              "quiet_days simulates steady noisy senders only.")
        self.senders.append(_Sender(site, payload, rate * count, profile))


QUIET = tuple(name for name in SCENARIOS if name.startswith("quiet-"))


def _folded(t: np.ndarray, period: float) -> np.ndarray:
    """Time within one scenario's length, forwards then backwards (no jump at its end)."""
    u = np.mod(t, 2 * period)
    return np.where(u < period, u, 2 * period - u)


def quiet_windows(name: str, site_days: float, seed: int) -> pd.DataFrame:
    """``site_days`` of the quiet scenario ``name``'s traffic (shared among its sites) as
    the job's windows: window_start, window_end, site, clicks, impressions, ctr, complete,
    window_start_ms, scenario; sites are named "<name>/<site>" as in the suite."""
    if name not in QUIET:
        raise ConfigError(f"Unknown quiet scenario {name!r}", f"use one of {', '.join(QUIET)}.")
    rec = _Recorder(SIZES["full"])
    SCENARIOS[name][0](rec)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    n = int(site_days * DAY_S / len(rec.sites) / WINDOW_S)
    mid = (np.arange(n) + 0.5) * WINDOW_S
    t = _folded(mid, rec.duration_s)
    start = SUITE_START
    frames = []
    for short in rec.sites:
        counts = {IMPRESSION: np.zeros(n, int), CLICK: np.zeros(n, int)}
        for s in rec.senders:
            if s.site == short:
                shape = np.ones(n) if s.profile is None else np.array([s.profile(x) for x in t])
                counts[s.payload] += rng.poisson(s.rate * WINDOW_S * shape)
        clicks, imps = counts[CLICK], counts[IMPRESSION]
        starts = [start + timedelta(seconds=k * WINDOW_S) for k in range(n)]
        frames.append(pd.DataFrame({
            "window_start": [format_event_time(x) for x in starts],
            "window_end": [format_event_time(x + timedelta(seconds=WINDOW_S)) for x in starts],
            "site": f"{name}/{short}", "clicks": clicks, "impressions": imps,
            "ctr": [ctr_percent(int(c), int(i)) for c, i in zip(clicks, imps, strict=True)],
            "complete": True,
            "window_start_ms": [int(x.timestamp() * 1000) for x in starts],
            "scenario": name}))
    return pd.concat(frames, ignore_index=True)


def long_quiet_days(site_days_each: float, seed: int,
                    names: Sequence[str] = QUIET) -> pd.DataFrame:
    """``quiet_windows`` of every quiet scenario, ``site_days_each`` site-days each."""
    return pd.concat([quiet_windows(n, site_days_each, seed + i) for i, n in enumerate(names)],
                     ignore_index=True)


def episode_rate(windows: pd.DataFrame, flags: Sequence[bool], cooldown_s: int) -> dict:
    """Alert episodes per site-day, in all and per scenario, of ``flags`` (one per row of
    ``windows``, e.g. its ``is_anomaly``); per scenario also the flagged windows to expect
    in one run of the suite's scenario (``windows_per_suite_run``: its sites x 3 h)."""
    w = windows.assign(flag=list(flags))
    out: dict = {"per_scenario": {}}
    total_eps = total_days = 0.0
    for name, g in w.groupby("scenario", sort=False):
        eps = sum(len(episodes(s["window_start_ms"] + WINDOW_S * 1000, cooldown_s))
                  for _, s in g[g["flag"]].groupby("site"))
        days = len(g) * WINDOW_S / DAY_S
        suite_days = g["site"].nunique() * SIZES["full"] / DAY_S
        out["per_scenario"][name] = {"episodes": eps, "site_days": round(days, 2),
                                     "per_site_day": eps / days,
                                     "windows_per_suite_run": g["flag"].sum() / days * suite_days}
        total_eps += eps
        total_days += days
    out.update(episodes=int(total_eps), site_days=round(total_days, 2),
               per_site_day=total_eps / total_days,
               max_windows_per_suite_run=max(v["windows_per_suite_run"]
                                             for v in out["per_scenario"].values()))
    return out
