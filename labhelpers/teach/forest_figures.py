"""Teaching figures of the Random Cut Forest: one tree's cuts on a small 2-D example, a
normal point deep in the tree and an outlier isolated near the root, the forest's score over
the plane, and the forest learning during notebook 04's warm-up."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .figure_style import ACCENT_C, CLICK_C, IMPRESSION_C, LATE_C, NEUTRAL_C, _pyplot

# ---------------------------------------------------------------------------------------------
# Random Cut Forest on a small 2-D example
# ---------------------------------------------------------------------------------------------


@dataclass
class CutNode:
    """A node of a random cut tree: a leaf holds one point; an inner node one cut."""

    depth: int
    box: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax of its points
    point: int | None = None                # index of the point (leaf)
    dim: int | None = None                  # cut dimension (inner)
    value: float | None = None              # cut value (inner)
    children: list[CutNode] = field(default_factory=list)


def random_cut_tree(points: Sequence[tuple[float, float]], seed: int = 0) -> CutNode:
    """Build one random cut tree: pick a dimension with probability proportional to the
    bounding box's extent in it, cut uniformly inside the box, recurse until each point is
    alone. (The algorithm of Guha et al. 2016, the one krcf implements.)"""
    rng = random.Random(seed)

    def build(idx: list[int], depth: int) -> CutNode:
        xs = [points[i][0] for i in idx]
        ys = [points[i][1] for i in idx]
        box = (min(xs), max(xs), min(ys), max(ys))
        if len(idx) == 1:
            return CutNode(depth, box, point=idx[0])
        ext = (box[1] - box[0], box[3] - box[2])
        dim = 0 if rng.uniform(0, sum(ext)) < ext[0] else 1
        lo, hi = (box[0], box[1]) if dim == 0 else (box[2], box[3])
        value = rng.uniform(lo, hi)
        left = [i for i in idx if points[i][dim] <= value]
        right = [i for i in idx if points[i][dim] > value]
        if not left or not right:  # a cut exactly on the edge: try again
            return build(idx, depth)
        node = CutNode(depth, box, dim=dim, value=value)
        node.children = [build(left, depth + 1), build(right, depth + 1)]
        return node

    return build(list(range(len(points))), 0)


def leaf_depths(tree: CutNode) -> dict[int, int]:
    """Point index -> depth of its leaf (the number of cuts that isolate it)."""
    out: dict[int, int] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.point is not None:
            out[node.point] = node.depth
        stack.extend(node.children)
    return out


def example_points(n: int = 40, seed: int = 0) -> tuple[list[tuple[float, float]], int, int]:
    """A 2-D cloud of normal points (clicks, impressions per window, ~10 each) plus one
    outlier (the spike: 40 clicks, 10 impressions). Returns points, a central normal point's
    index and the outlier's index."""
    rng = random.Random(seed)
    pts = [(rng.gauss(10, 1.6), rng.gauss(10, 1.6)) for _ in range(n)]
    centre = min(range(n), key=lambda i: (pts[i][0] - 10) ** 2 + (pts[i][1] - 10) ** 2)
    pts.append((40.0, 10.5))
    return pts, centre, n


def _draw_cuts(ax, node: CutNode, region: tuple[float, float, float, float], max_depth: int):
    if node.point is not None or node.depth >= max_depth:
        return
    x0, x1, y0, y1 = region
    alpha = max(0.25, 1 - node.depth * 0.12)
    lw = max(0.6, 2.4 - node.depth * 0.3)
    if node.dim == 0:
        ax.plot([node.value, node.value], [y0, y1], color=ACCENT_C, lw=lw, alpha=alpha)
        regions = [(x0, node.value, y0, y1), (node.value, x1, y0, y1)]
    else:
        ax.plot([x0, x1], [node.value, node.value], color=ACCENT_C, lw=lw, alpha=alpha)
        regions = [(x0, x1, y0, node.value), (x0, x1, node.value, y1)]
    if node.depth == 0:
        ax.text(node.value if node.dim == 0 else x0 + 0.3,
                y1 - 0.6 if node.dim == 0 else node.value + 0.3, " cut 1", color=ACCENT_C,
                fontsize=8.5, weight="bold")
    for child, reg in zip(node.children, regions, strict=True):
        _draw_cuts(ax, child, reg, max_depth)


def _layout(tree: CutNode) -> dict[int, tuple[float, float]]:
    """x, y positions of each node (by id) for a tree drawing: leaves left to right."""
    pos: dict[int, tuple[float, float]] = {}
    counter = [0]

    def walk(node: CutNode) -> float:
        if node.point is not None:
            x = counter[0]
            counter[0] += 1
        else:
            x = sum(walk(c) for c in node.children) / 2
        pos[id(node)] = (x, -node.depth)
        return x

    walk(tree)
    return pos


def forest_scores(points: Sequence[tuple[float, float]], queries: Sequence[tuple[float, float]],
                  num_trees: int = 50, seed: int = 7) -> list[float]:
    """krcf's anomaly score of each query point for a forest that learned ``points``."""
    import krcf

    forest = krcf.RandomCutForest({"dimensions": 2, "shingle_size": 1, "num_trees": num_trees,
                                   "sample_size": 64, "output_after": 1, "random_seed": seed})
    for p in points:
        forest.update(list(p))
    return [float(forest.score(list(q))) for q in queries]


def random_cut_forest(seed: int = 1):
    """One tree's cuts on a 2-D example, the tree with a normal point deep and the outlier
    near the root, and the forest's score over the plane."""
    plt = _pyplot()
    pts, normal, outlier = example_points()
    tree = random_cut_tree(pts, seed=seed)
    depths = leaf_depths(tree)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4.2),
                                        gridspec_kw={"width_ratios": [1.15, 1.25, 1.15]})
    # 1. the cuts
    xs, ys = zip(*pts, strict=True)
    region = (min(xs) - 1, max(xs) + 1, min(ys) - 1, max(ys) + 1)
    _draw_cuts(ax1, tree, region, max_depth=5)
    ax1.scatter(xs, ys, s=14, color=NEUTRAL_C, zorder=3)
    ax1.scatter(*pts[normal], s=60, color=IMPRESSION_C, zorder=4, edgecolor="black",
                label=f"normal point: isolated after {depths[normal]} cuts")
    ax1.scatter(*pts[outlier], s=80, color=LATE_C, marker="X", zorder=4,
                label=f"outlier (the spike): after {depths[outlier]} cut(s)")
    ax1.set_xlim(region[0], region[1])
    ax1.set_ylim(region[2], region[3])
    ax1.set_xlabel("clicks per window")
    ax1.set_ylabel("impressions per window")
    ax1.set_title("One random cut tree: its first cuts (thick = early)", loc="left",
                  fontsize=10)
    ax1.legend(fontsize=7.5, loc="lower right")
    # 2. the tree
    pos = _layout(tree)
    stack = [tree]
    while stack:
        node = stack.pop()
        for c in node.children:
            (x0, y0), (x1, y1) = pos[id(node)], pos[id(c)]
            ax2.plot([x0, x1], [y0, y1], color="#bdc3c7", lw=0.8, zorder=1)
            stack.append(c)
    ax2.scatter([x for x, _ in pos.values()], [y for _, y in pos.values()], s=6,
                color="#95a5a6", zorder=2)
    for idx, colour, marker in ((normal, IMPRESSION_C, "o"), (outlier, LATE_C, "X")):
        leaf = _find_leaf(tree, idx)
        x, y = pos[id(leaf)]
        ax2.scatter(x, y, s=90, color=colour, marker=marker, zorder=3, edgecolor="black")
        ax2.annotate(f"depth {depths[idx]}", xy=(x, y), xytext=(x + 2, y - 0.2), fontsize=8.5,
                     color=colour, weight="bold")
    ax2.set_yticks(range(0, -max(depths.values()) - 1, -2),
                   [str(d) for d in range(0, max(depths.values()) + 1, 2)])
    ax2.set_ylabel("depth (cuts from the root)")
    ax2.set_xticks([])
    ax2.set_title("The same tree: the outlier sits next to the root", loc="left", fontsize=10)
    for s in ("top", "right", "bottom"):
        ax2.spines[s].set_visible(False)
    # 3. the forest's score over the plane
    gx = [region[0] + (region[1] - region[0]) * i / 44 for i in range(45)]
    gy = [region[2] + (region[3] - region[2]) * j / 19 for j in range(20)]
    normal_pts = [p for i, p in enumerate(pts) if i != outlier]
    grid = forest_scores(normal_pts, [(x, y) for y in gy for x in gx])
    z = [grid[j * len(gx):(j + 1) * len(gx)] for j in range(len(gy))]
    mesh = ax3.pcolormesh(gx, gy, z, cmap="magma_r", shading="auto")
    fig.colorbar(mesh, ax=ax3, label="anomaly score")
    ax3.scatter([p[0] for p in normal_pts], [p[1] for p in normal_pts], s=8, color="white",
                edgecolor="black", linewidth=0.3)
    s_normal, s_out = forest_scores(normal_pts, [pts[normal], pts[outlier]])
    ax3.scatter(*pts[outlier], s=80, color=LATE_C, marker="X", edgecolor="white")
    ax3.annotate(f"spike: score {s_out:.1f}", xy=pts[outlier], xytext=(24, region[3] - 1.5),
                 fontsize=8.5, color="white", arrowprops={"arrowstyle": "->", "color": "white"})
    ax3.text(region[0] + 0.5, region[2] + 0.5, f"normal point: {s_normal:.2f}", fontsize=8.5,
             color="black", backgroundcolor="white")
    ax3.set_xlabel("clicks per window")
    ax3.set_title("The forest (50 trees): few cuts = high score", loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def _find_leaf(tree: CutNode, idx: int) -> CutNode:
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.point == idx:
            return node
        stack.extend(node.children)
    raise KeyError(idx)


# ---------------------------------------------------------------------------------------------
# The forest learning (notebook 04's warm-up)
# ---------------------------------------------------------------------------------------------


def learning_curve(max_windows: int = 80, spike: tuple[int, int] = (40, 10),
                   steady: tuple[int, int] = (10, 10), first: tuple[int, int] | None = (3, 4),
                   params: Any = None) -> dict[str, list]:
    """Feed one site's forest (the job's parameters and inputs) the lab's steady windows and,
    before each new window, score two windows without learning them: the lab's spike and a
    point far from everything (the highest score the forest can give just then).

    ``first``: the first window's counts; in the app it is partial (the traffic started in
    its middle), and that one odd point lowers every later score (None: all identical).
    Returns lists indexed by windows learned (1..max_windows): ``learned``, ``sample``
    (points each tree keeps: every one until the subsample is full), ``spike_score`` and
    ``max_score``. The warm-up is ignored here (the app reports 0 until ``warmup_windows``).
    """
    import krcf

    from ..job.forest import FOREST_POINTS, ForestParams

    params = params or ForestParams()
    forest = krcf.RandomCutForest(dict(params.krcf_options(), output_after=1))
    to_point = FOREST_POINTS[params.inputs]

    def point(counts: tuple[int, int]) -> list[float]:
        return to_point(counts[0], counts[1], 100.0 * counts[0] / counts[1])

    far = point((spike[0] * 25, spike[1]))
    out: dict[str, list] = {"learned": [], "sample": [], "spike_score": [], "max_score": []}
    for n in range(1, max_windows + 1):
        forest.update(point(first if (first and n == 1) else steady))
        out["learned"].append(n)
        out["sample"].append(min(n, params.subsample_size))
        out["spike_score"].append(float(forest.score(point(spike))))
        out["max_score"].append(float(forest.score(far)))
    return out


def forest_learning(max_windows: int = 80, learned_now: int | None = None,
                    show_spike: bool = False, spike_at: int = 20, params: Any = None):
    """Notebook 04's warm-up: each tree's sample filling up, and the highest score the
    forest can give rising with the windows it has learned. ``show_spike=False`` leaves the
    spike's score for the student to predict; ``show_spike=True`` draws it, marked at
    ``spike_at`` learned windows (notebook 04's LEARNED_WINDOWS)."""
    plt = _pyplot()
    from ..job.forest import ForestParams

    params = params or ForestParams()
    curve = learning_curve(max_windows, params=params)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    n = curve["learned"]
    full = params.subsample_size
    ax1.plot(n, curve["sample"], color=ACCENT_C, lw=2)
    ax1.axhline(full, color=NEUTRAL_C, ls=":", lw=1)
    ax1.text(max_windows - 1, full + 2, f"full: subsample size {full}; from then on each "
             "new point replaces an old one", fontsize=8, color=NEUTRAL_C, ha="right")
    ax1.set_ylim(0, full * 1.2)
    ax1.set_xlabel("windows learned (one every 10 s)")
    ax1.set_ylabel("points in each tree's sample")
    ax1.set_title("Each tree's sample fills up, one window at a time", loc="left", fontsize=10)
    top = max(curve["max_score"]) + 1
    for ax, y in ((ax1, full * 0.55), (ax2, top * 0.55)):
        ax.axvspan(0, params.warmup_windows, color="#dddddd", alpha=0.6, lw=0)
        ax.text(params.warmup_windows / 2, y, "warm-up:\nthe app\nreports 0", ha="center",
                fontsize=8, color="#555555")
        ax.set_xlim(0, max_windows)
        ax.grid(alpha=0.25)
    ax2.plot(n, curve["max_score"], color=CLICK_C, lw=2,
             label="highest possible score (a point far from all learned ones)")
    ax2.axhline(params.threshold, color=LATE_C, ls="--", lw=1,
                label=f"threshold {params.threshold:g}")
    if learned_now is not None:
        ax2.axvline(learned_now, color="black", lw=1)
        ax2.text(learned_now + 0.5, 0.3, f"now: {learned_now} learned", fontsize=8.5)
    if show_spike:
        ax2.plot(n, curve["spike_score"], color=LATE_C, lw=1.5, ls="-.",
                 label="the lab's spike (40 clicks, 10 impressions)")
        for k in sorted({params.warmup_windows, spike_at}):
            if k <= max_windows:
                s = curve["spike_score"][k - 1]
                ax2.scatter([k], [s], color=LATE_C, zorder=4)
                ax2.annotate(f"{s:.1f} after {k}", xy=(k, s), xytext=(k + 3, s - 1.1),
                             fontsize=8, arrowprops={"arrowstyle": "->"})
    else:
        ax2.axvline(spike_at, color=LATE_C, lw=1, ls=":")
        ax2.text(spike_at + 0.8, top * 0.85, f"the spike comes after {spike_at}: its score?",
                 fontsize=8.5, color=LATE_C)
    ax2.set_ylim(0, top)
    ax2.set_xlabel("windows learned (one every 10 s)")
    ax2.set_ylabel("anomaly score")
    ax2.set_title("The highest score it can give grows with what it learned", loc="left",
                  fontsize=10)
    ax2.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    return fig


