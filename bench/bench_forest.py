"""Scoring cost per window of the forest, and what its state costs.

    .venv/bin/python bench/bench_forest.py [WINDOWS]     (default 20,000)

Scores WINDOWS windows of one site's steady, noisy traffic with the lab's defaults through
``SiteModel.score`` (what the Flink job calls per window: score, attribution, learn, episode
bookkeeping) and, as the baseline in the same process, through the bare krcf forest
(``score`` + ``update`` of the same points). Prints ms per window for both and their ratio,
then the size of a forest snapshot and the time to write and restore one (the job writes
one every SNAPSHOT_EVERY learned windows).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labhelpers.job.contracts import ctr_percent  # noqa: E402
from labhelpers.job.forest import FOREST_POINTS, ForestParams, SiteModel  # noqa: E402
from labhelpers.job.pipeline import SNAPSHOT_EVERY  # noqa: E402


def windows(n: int, seed: int = 0) -> list[dict]:
    """n windows of one site: Poisson counts around 10 impressions and 10 clicks."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        clicks, impressions = int(rng.poisson(10)), int(rng.poisson(10))
        rows.append({"window_start": f"w{i}", "window_end": f"w{i + 1}", "site": "a.example",
                     "clicks": clicks, "impressions": impressions,
                     "ctr": ctr_percent(clicks, impressions)})
    return rows


def main(n: int) -> None:
    params = ForestParams()
    rows = windows(n)
    model = SiteModel(params)
    t = time.perf_counter()
    for i, row in enumerate(rows):
        model.score(row, i * 10_000)
    lab_s = time.perf_counter() - t

    bare = SiteModel(params).forest
    points = [FOREST_POINTS[params.inputs](r["clicks"], r["impressions"], r["ctr"])
              for r in rows]
    t = time.perf_counter()
    for p in points:
        bare.score(p)
        bare.update(p)
    bare_s = time.perf_counter() - t

    print(f"forest: {params.num_trees} trees, subsample {params.subsample_size}, "
          f"inputs {params.inputs}, {n:,} windows")
    print(f"SiteModel.score (the job's per-window work): {1000 * lab_s / n:7.3f} ms/window")
    print(f"bare krcf score + update (baseline)        : {1000 * bare_s / n:7.3f} ms/window")
    print(f"ratio lab/bare                             : {lab_s / bare_s:7.2f}")

    t = time.perf_counter()
    blob = model.forest_bytes()
    write_ms = 1000 * (time.perf_counter() - t)
    meta = model.meta()
    t = time.perf_counter()
    SiteModel.restore(params, meta, blob, points[-SNAPSHOT_EVERY:])
    restore_ms = 1000 * (time.perf_counter() - t)
    print(f"forest snapshot: {len(blob) / 1024:,.0f} KiB, written in {write_ms:.1f} ms, "
          f"restored + {SNAPSHOT_EVERY} points replayed in {restore_ms:.1f} ms "
          f"(once per {SNAPSHOT_EVERY} windows: {write_ms / SNAPSHOT_EVERY:.3f} ms/window)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
