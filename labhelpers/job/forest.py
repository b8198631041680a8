"""Random Cut Forest scoring of window rows, as the original lab's RANDOM_CUT_FOREST did.

Parameters keep the lab's names (number of trees, subsample size, time decay, shingle size)
and are validated here, because ``krcf`` silently ignores option keys it does not know.
The Flink job keeps one ``SiteModel`` per site in keyed state (see labhelpers/job/pipeline.py); this
module has no Flink in it so it can be unit-tested and reused by other tools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import krcf

from .contracts import FOREST_INPUTS
from .deviations import RECENT_SPAN, RUN_INPUTS, SLOW_SPAN, window_deviations
from .errors import ConfigError


def anscombe_point(clicks: int, impressions: int, ctr: float | None) -> list[float]:
    """Noise-stabilised counts: a Poisson count n has noise of sd ~1 as 2*sqrt(n + 3/8)."""
    zc, zi = 2.0 * math.sqrt(clicks + 0.375), 2.0 * math.sqrt(impressions + 0.375)
    return [zc, zi, zc - zi]


def raw_point(clicks: int, impressions: int, ctr: float | None) -> list[float] | None:
    """[clicks, impressions, CTR %]; None (not scored) without impressions."""
    return None if ctr is None else [float(clicks), float(impressions), float(ctr)]


def ctr_point(clicks: int, impressions: int, ctr: float | None) -> list[float] | None:
    """The original lab's point: CTR % alone; None (not scored) without impressions."""
    return None if ctr is None else [float(ctr)]


# The forest's inputs (contracts.FOREST_INPUTS names them: clicks, impressions, CTR or its
# stand-in, the clicks-minus-impressions difference of the stabilised counts).
FOREST_POINTS = {"anscombe": anscombe_point, "raw": raw_point, "ctr": ctr_point}
# The names of a point's coordinates (attribution is reported per name).
POINT_INPUTS = {"anscombe": FOREST_INPUTS, "raw": FOREST_INPUTS, "ctr": ("ctr",)}
# Named parameter sets. "original-lab": what the original lab's RANDOM_CUT_FOREST did (CTR
# alone, subsample 12, alert above 2), without this lab's additions (no hold, no run rule,
# no dark-site windows), to compare on the same scenarios (notebook 06).
PRESETS: dict[str, dict[str, Any]] = {
    "original-lab": {"inputs": "ctr", "subsample_size": 12, "threshold": 2.0,
                     "anomaly_hold_windows": 0, "run_threshold": 0.0, "dark_windows": 0},
}
# Span (in learned windows) of the running means reported as "usual" values.
USUAL_SPAN = 30
# The run rule's deviations are divided by their running root mean square over this many
# learned windows, but never by less than RUN_SCALE_FLOOR: the noise of a count of random
# arrivals on the stabilised scale (2*sqrt(n + 3/8) has a standard deviation of about 1).
RUN_SCALE_SPAN = 200
RUN_SCALE_FLOOR = 1.0


@dataclass(frozen=True)
class ForestParams:
    """Forest and alert-rule parameters (the lab's names; defaults chosen for 10-s windows).

    The defaults are chosen on the tuning part of the scenario suite (seeds 0-3) and
    measured on a held-out part (seed 6) (``bench/evaluate_defaults.py``; figures in
    docs/figures.md, not here).

    num_trees: trees in the forest (lab: 100).
    subsample_size: points each tree keeps (lab: 12; we keep more for steadier scores).
    time_decay: how many recent points dominate (lab: 100000); krcf's ``lambda`` = 1/time_decay.
    shingle_size: consecutive windows that form one point (lab: 1).
    warmup_windows: windows per site before scores are produced; the score is 0 and
      ``forest_ready`` false until then (lab: about the subsample size).
    random_seed: makes scores repeatable.
    threshold: a window whose score is above this is an anomaly (lab: 2).
    run_slack, run_threshold: the run rule, for shifts that are moderate but sustained (a
      x2 click rise, a CTR that halves, a site going quiet), which no single window shows
      clearly. It watches the driving inputs, not the forest's score: each window's
      deviations from what the site usually sends (deviations.py: RUN_INPUTS and
      ``window_deviations`` say which and how), each in units of its running noise (at
      least 1). Per input, two running sums that never go below 0 (a two-sided CUSUM) add
      (deviation - run_slack) and (-deviation - run_slack); when one exceeds run_threshold
      the window is an anomaly (``flagged_by`` names the sum) and all sums start again
      from 0. Noise (under run_slack on average) drains the sums; a run of windows each a
      little off adds up. run_threshold 0 turns the rule off.
    inputs: how a window becomes the forest's point.
      "anscombe" (default): 2*sqrt(n + 3/8) of clicks and of impressions, and their
      difference. Counts of random arrivals then have noise of about 1 at any traffic level,
      and windows without impressions (an outage) are scored too.
      "raw": [clicks, impressions, CTR %] in one point. CTR's range dwarfs the counts', so
      the forest looks mostly at CTR, the noisiest input.
      "ctr": CTR % alone, the original lab's input (preset "original-lab").
    cooldown_seconds: anomalous windows of one site closer than this share one alert episode.
    anomaly_hold_windows: anomalous windows are kept out of the forest for up to this many
      windows in a row, so that the first window of a spike does not teach the forest that
      the second is normal; from then on every window is learned until a normal one comes,
      so a lasting new level is learned within a bounded number of windows. 0 = learn all.
    dark_windows: a site that has sent traffic and then sends nothing gets windows with zero
      counts (scored like any window, so a site going dark is an anomaly), for at most this
      many windows in a row; after that it is considered gone and nothing is invented until
      it sends again. All flagged windows of one silence are one alert episode. 0 = off.
      The zero windows come on event-time timers: they need event time to move on (other
      sites still sending). When the whole input goes quiet the watermark stops and no
      window comes at all; that is for a watch on the input stream, not for this job.
    """

    num_trees: int = 100
    subsample_size: int = 64
    time_decay: float = 100_000.0
    shingle_size: int = 1
    warmup_windows: int = 12
    random_seed: int = 42
    threshold: float = 3.5
    run_slack: float = 0.75
    run_threshold: float = 5.0
    cooldown_seconds: int = 60
    anomaly_hold_windows: int = 6
    dark_windows: int = 30
    inputs: str = "anscombe"

    def __post_init__(self) -> None:
        limits = {
            "num_trees": (1, 1000),
            "subsample_size": (4, 4096),
            "time_decay": (1.0, 1e12),
            "shingle_size": (1, 64),
            "warmup_windows": (1, 100_000),
            "random_seed": (0, 2**63 - 1),
            "threshold": (0.0, 1e6),
            "run_slack": (0.0, 1e6),
            "run_threshold": (0.0, 1e6),
            "cooldown_seconds": (0, 86_400),
            "anomaly_hold_windows": (0, 10_000),
            "dark_windows": (0, 100_000),
        }
        if self.inputs not in FOREST_POINTS:
            raise ConfigError(f"Forest parameter inputs={self.inputs!r} is unknown",
                              f"use one of {', '.join(FOREST_POINTS)}.")
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                lo <= value <= hi
            ) or (isinstance(value, float) and math.isnan(value)):
                raise ConfigError(
                    f"Forest parameter {name}={value!r} is out of range",
                    f"use a number from {lo} to {hi}.",
                )
        for name in ("num_trees", "subsample_size", "shingle_size", "warmup_windows",
                     "anomaly_hold_windows", "dark_windows"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(
                    f"Forest parameter {name}={getattr(self, name)!r} must be a whole number",
                    "pass an int.",
                )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ForestParams:
        """Build from a dict; an unknown key is an error (krcf would ignore it silently)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"Unknown forest parameter(s) {', '.join(sorted(unknown))}",
                f"use only {', '.join(sorted(known))}.",
            )
        return cls(**values)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ForestParams:
        """A named parameter set (PRESETS), with ``overrides`` on top."""
        if name not in PRESETS:
            raise ConfigError(f"Unknown forest preset {name!r}",
                              f"use one of {', '.join(PRESETS)}.")
        return cls.from_dict({**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def krcf_options(self) -> dict[str, Any]:
        """The options krcf understands, mapped from the lab's names."""
        return {
            "dimensions": len(POINT_INPUTS[self.inputs]),
            "shingle_size": self.shingle_size,
            "num_trees": self.num_trees,
            "sample_size": self.subsample_size,
            "output_after": self.warmup_windows,
            "random_seed": self.random_seed,
            "lambda": 1.0 / self.time_decay,
        }


class AlertRule:
    """The alert rule on top of a forest's scores, one instance per site or series.

    The one implementation shared by the job's forest (SiteModel) and ``score-series``
    (series.SeriesModel): a score above ``threshold`` is an anomaly; a run of moderate
    deviations of a driving input (per input, a two-sided CUSUM of its deviation from the
    usual value in units of its running noise, minus run_slack, above run_threshold) is an
    anomaly; anomalous points are held out of the forest for up to ``anomaly_hold_windows``
    in a row, then learned.
    """

    def __init__(self, params: ForestParams) -> None:
        self.params = params
        self.held = 0  # consecutive anomalous points (held while below the hold limit)
        # per driving input: the CUSUMs above and below the usual value, and the running
        # mean square (and count) of its learned deviations
        self.up: list[float] = []
        self.down: list[float] = []
        self.dev_ms: list[float] = []
        self.dev_n: list[int] = []
        self.last_run = 0.0  # ``run`` at the last decision, before a flag reset it (run_score)
        # the sum that flagged the last decision by the run rule: (input index, "high"|"low")
        self.run_input: tuple[int, str] | None = None

    @property
    def run(self) -> float:
        """The largest running sum now (0 with no input yet)."""
        return max(self.up + self.down, default=0.0)

    def scaled(self, i: int, deviation: float) -> float:
        """Input ``i``'s deviation in units of its running noise (never below
        RUN_SCALE_FLOOR)."""
        return deviation / max(RUN_SCALE_FLOOR, math.sqrt(self.dev_ms[i]))

    def decide(self, score: float, ready: bool, deviations: Sequence[float | None] = ()
               ) -> tuple[bool, bool, str | None]:
        """(is_anomaly, learn the point, reason "threshold" | "run" | None) for one score.

        ``deviations``: each driving input's deviation from its usual value (None: not
        measurable in this window, that input's sums stay as they are); learned points
        also update each input's running noise."""
        while len(self.up) < len(deviations):
            for values, zero in ((self.up, 0.0), (self.down, 0.0), (self.dev_ms, 0.0),
                                 (self.dev_n, 0)):
                values.append(zero)
        learn, reason = True, None
        p = self.params
        if ready:
            if p.run_threshold > 0:
                for i, d in enumerate(deviations):
                    if d is not None:
                        z = self.scaled(i, d)
                        self.up[i] = max(0.0, self.up[i] + z - p.run_slack)
                        self.down[i] = max(0.0, self.down[i] - z - p.run_slack)
            self.last_run = self.run
            self.run_input = None
            if score > p.threshold:
                reason = "threshold"
            elif self.run > p.run_threshold > 0:
                reason = "run"
                self.run_input = max(
                    [(s, i, "high") for i, s in enumerate(self.up)]
                    + [(s, i, "low") for i, s in enumerate(self.down)])[1:]
            if reason is None:
                self.held = 0
            else:
                # a flag starts the next run afresh
                self.up = [0.0] * len(self.up)
                self.down = [0.0] * len(self.down)
                learn = self.held >= p.anomaly_hold_windows
                self.held += 1
        if learn:
            for i, d in enumerate(deviations):
                if d is not None:
                    self.dev_n[i] += 1
                    alpha = max(1.0 / self.dev_n[i], 2.0 / (RUN_SCALE_SPAN + 1))
                    self.dev_ms[i] += alpha * (d * d - self.dev_ms[i])
        return reason is not None, learn, reason

    def state(self) -> dict[str, Any]:
        return {"held": self.held, "run_up": list(self.up), "run_down": list(self.down),
                "dev_ms": list(self.dev_ms), "dev_n": list(self.dev_n)}

    def load(self, meta: dict[str, Any]) -> None:
        """Restore ``state()`` (keys missing in an older checkpoint start afresh)."""
        self.held = int(meta.get("held", 0))
        self.up = [float(x) for x in meta.get("run_up") or []]
        self.down = [float(x) for x in meta.get("run_down") or []]
        self.dev_ms = [float(x) for x in meta.get("dev_ms") or []]
        self.dev_n = [int(x) for x in meta.get("dev_n") or []]
        if not len(self.up) == len(self.down) == len(self.dev_ms) == len(self.dev_n):
            self.up, self.down, self.dev_ms, self.dev_n = [], [], [], []


class Usual:
    """Running means of what a site usually sends (learned windows only), for alert text."""

    def __init__(self, names: tuple[str, ...], span: int = USUAL_SPAN) -> None:
        self.names = names
        self.span = span
        self.values: dict[str, float | None] = dict.fromkeys(names)
        self.n = 0

    def learn(self, values: dict[str, float | None]) -> None:
        self.n += 1
        # a plain mean until ``span`` windows, then an exponential one over that span
        alpha = max(1.0 / self.n, 2.0 / (self.span + 1))
        for name in self.names:
            x = values.get(name)
            if x is None:
                continue
            old = self.values[name]
            self.values[name] = float(x) if old is None else old + alpha * (float(x) - old)

    def rounded(self) -> dict[str, float | None]:
        return {k: None if v is None else round(v, 3) for k, v in self.values.items()}


class SiteModel:
    """The forest and alert state of one site. Serializable to bytes for Flink state."""

    def __init__(self, params: ForestParams) -> None:
        self.params = params
        self.forest = krcf.RandomCutForest(params.krcf_options())
        self.rule = AlertRule(params)
        self.usual = Usual(("clicks", "impressions", "ctr"))
        # the run rule's baseline for impressions: what the site sent lately (RECENT_SPAN)
        self.recent = Usual(("impressions",), span=RECENT_SPAN)
        # the baseline of a rise in clicks, with the usual count: their slow mean (SLOW_SPAN)
        self.slow = Usual(("clicks", "impressions"), span=SLOW_SPAN)
        self.names = POINT_INPUTS[params.inputs]
        self.windows_seen = 0
        self.episode_id: str | None = None
        self.last_anomaly_end_ms: int | None = None
        self.silent = 0  # consecutive windows without any record (dark-site windows)
        self.silence_episode: str | None = None  # the episode of the current silence
        self.learned_point: list[float] | None = None  # what the last score() learned

    @property
    def held(self) -> int:
        return self.rule.held

    # ---- state ----
    # Flink keeps a model as three pieces: a forest snapshot (~0.5 MB, written rarely), the
    # points learned since that snapshot (a few bytes each), and the small ``meta``. Writing
    # the whole forest on every window cost ~1.5 ms per window (measured: 188 s for 86,400
    # windows); snapshot + replay restores the very same forest (krcf's snapshot includes its
    # random state, so replaying the same updates gives identical scores).
    def meta(self) -> dict[str, Any]:
        """The small part of the state: counters, the rule, usual values, the episode."""
        return {
            "windows_seen": self.windows_seen,
            "episode_id": self.episode_id,
            "last_anomaly_end_ms": self.last_anomaly_end_ms,
            **self.rule.state(),
            "usual": self.usual.values,
            "usual_n": self.usual.n,
            "recent": self.recent.values,
            "recent_n": self.recent.n,
            "slow": self.slow.values,
            "slow_n": self.slow.n,
            "silent": self.silent,
            "silence_episode": self.silence_episode,
        }

    def forest_bytes(self) -> bytes:
        """The forest alone (krcf msgpack)."""
        return bytes(self.forest.to_msgpack())

    @classmethod
    def restore(
        cls,
        params: ForestParams,
        meta: dict[str, Any],
        snapshot: bytes | None,
        points: list[list[float]],
    ) -> SiteModel:
        """Rebuild a model from a forest snapshot (None = empty forest) plus the points
        learned after it, in order, and the meta saved with the last window (keys added
        later default, so an older checkpoint still restores)."""
        model = cls(params)
        if snapshot is not None:
            model.forest = krcf.RandomCutForest.from_msgpack(snapshot)
        for point in points:
            model.forest.update(point)
        model.windows_seen = meta["windows_seen"]
        model.episode_id = meta["episode_id"]
        model.last_anomaly_end_ms = meta["last_anomaly_end_ms"]
        model.rule.load(meta)
        model.usual.values.update(meta.get("usual") or {})
        model.usual.n = int(meta.get("usual_n", 0))
        model.recent.values.update(meta.get("recent") or {})
        model.recent.n = int(meta.get("recent_n", 0))
        model.slow.values.update(meta.get("slow") or {})
        model.slow.n = int(meta.get("slow_n", 0))
        model.silent = int(meta.get("silent", 0))
        model.silence_episode = meta.get("silence_episode")
        return model

    def to_bytes(self) -> bytes:
        """Everything in one blob (meta + forest)."""
        meta = json.dumps(self.meta()).encode()
        return len(meta).to_bytes(4, "big") + meta + self.forest_bytes()

    @classmethod
    def from_bytes(cls, params: ForestParams, data: bytes) -> SiteModel:
        n = int.from_bytes(data[:4], "big")
        return cls.restore(params, json.loads(data[4 : 4 + n]), data[4 + n :], [])

    # ---- scoring ----
    def score(self, row: dict[str, Any], window_end_ms: int,
              complete: bool = True) -> dict[str, Any]:
        """Score one window row, then learn from it. Returns the score row (contracts).

        ``complete`` False: the input ended inside this window (a replay's last one). It is
        reported, with its counts, but neither scored, learned nor alerted on.
        """
        out = dict(row)
        self.learned_point = None
        usual = self.usual.rounded()
        out.update(complete=complete, run_score=round(self.rule.run, 6),
                   usual_clicks=usual["clicks"], usual_impressions=usual["impressions"],
                   usual_ctr=usual["ctr"], flagged_by=None)
        if not complete:
            out.update(anomaly_score=None, is_anomaly=False, forest_ready=self.ready,
                       attribution=None, episode_id=None)
            return out
        point = FOREST_POINTS[self.params.inputs](row["clicks"], row["impressions"],
                                                   row.get("ctr"))
        dark = row["clicks"] == 0 and row["impressions"] == 0
        self.silent = self.silent + 1 if dark else 0
        if not dark:
            self.silence_episode = None
        if point is None:
            # no impressions and inputs that need a CTR: reported, nothing to learn from
            out.update(anomaly_score=None, is_anomaly=False, forest_ready=self.ready,
                       attribution=None, episode_id=None)
            return out
        ready = self.ready
        attribution = None
        if ready:
            # the score is the sum of its attribution (krcf: equal within 1e-9), so a ready
            # forest walks its trees once instead of twice (bench/bench_forest.py)
            attr = self.forest.attribution(point)
            score = float(sum(attr["high"]) + sum(attr["low"]))
            if score > 0:
                attribution = json.dumps(
                    {
                        name: {"high": round(attr["high"][i], 4),
                               "low": round(attr["low"][i], 4)}
                        for i, name in enumerate(self.names)
                    }
                )
        else:
            score = float(self.forest.score(point))
        is_anomaly, learn = self.decide(row, score, ready)
        if learn:
            self.forest.update(point)
            self.learned_point = point
        self.windows_seen += 1
        episode = None
        if is_anomaly:
            cooldown_ms = self.params.cooldown_seconds * 1000
            if dark and self.silence_episode is not None:
                self.episode_id = self.silence_episode  # one silence, one alert
            elif (
                self.episode_id is None
                or self.last_anomaly_end_ms is None
                or window_end_ms - self.last_anomaly_end_ms > cooldown_ms + 1
            ):
                self.episode_id = f"{row['site']}@{row['window_start']}"
            if dark:
                self.silence_episode = self.episode_id
            self.last_anomaly_end_ms = window_end_ms
            episode = self.episode_id
        out.update(
            anomaly_score=round(score, 6),
            is_anomaly=is_anomaly,
            forest_ready=ready,
            attribution=attribution,
            episode_id=episode,
            run_score=round(self.rule.last_run, 6),
            flagged_by=self.flagged_by if is_anomaly else None,
        )
        return out

    @property
    def flagged_by(self) -> str:
        """What flagged the last decision: "score" or "run:<RUN_INPUTS name>:<high|low>"."""
        if self.rule.run_input is None:
            return "score"
        i, direction = self.rule.run_input
        return f"run:{RUN_INPUTS[i]}:{direction}"

    def decide(self, row: dict[str, Any], score: float, ready: bool) -> tuple[bool, bool]:
        """The alert rule for one scored window: (is_anomaly, learn it); a learned window
        also updates the usual values. (``score`` calls it; bench/evaluate_defaults.py's
        sweep calls it on the job's own scores.)"""
        values = self.usual.values
        deviations = window_deviations(row["clicks"], row["impressions"], values["clicks"],
                                       values["impressions"],
                                       self.recent.values["impressions"],
                                       self.slow.values["clicks"],
                                       self.slow.values["impressions"])
        is_anomaly, learn, _ = self.rule.decide(score, ready, deviations)
        if learn:
            self.usual.learn({"clicks": row["clicks"], "impressions": row["impressions"],
                              "ctr": row.get("ctr")})
            self.recent.learn({"impressions": row["impressions"]})
            self.slow.learn({"clicks": row["clicks"], "impressions": row["impressions"]})
        return is_anomaly, learn

    @property
    def ready(self) -> bool:
        # krcf scores from `output_after` points on, one point before is_output_ready() says so
        return int(self.forest.entries_seen()) >= self.params.warmup_windows
