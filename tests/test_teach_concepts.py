"""Concept figures (labhelpers.teach.concepts): each draws, fast, and the ideas they show hold
(the outlier is isolated near the root, the normal point deep; episodes group like the app)."""

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from labhelpers.job.forest import ForestParams, SiteModel  # noqa: E402
from labhelpers.teach import concepts  # noqa: E402


@pytest.mark.parametrize("name", sorted(concepts.FIGURES))
def test_each_figure_draws_and_saves(name, tmp_path):
    started = time.perf_counter()
    fig = concepts.FIGURES[name]()
    path = concepts.save(fig, tmp_path / f"{name}.png")
    seconds = time.perf_counter() - started
    plt.close(fig)
    assert path.stat().st_size > 10_000, f"{name}: the PNG is suspiciously small"
    # generous: 2 shared cores; alone each takes 0.3-2 s (render_all measures it)
    assert seconds < 30, f"{name} took {seconds:.1f} s"
    assert fig.axes, f"{name} has no axes"


def test_outlier_isolated_near_root_normal_point_deep():
    pts, normal, outlier = concepts.example_points()
    outlier_depths, normal_depths = [], []
    for seed in range(30):
        depths = concepts.leaf_depths(concepts.random_cut_tree(pts, seed=seed))
        assert sorted(depths) == list(range(len(pts))), "every point must be in one leaf"
        outlier_depths.append(depths[outlier])
        normal_depths.append(depths[normal])
    mean_out = sum(outlier_depths) / 30
    mean_norm = sum(normal_depths) / 30
    assert mean_out < 2, f"the outlier should be cut off near the root, mean depth {mean_out}"
    assert mean_norm > 4 * mean_out, f"normal point mean depth {mean_norm} vs {mean_out}"


def test_forest_scores_the_outlier_far_above_the_normal_point():
    pts, normal, outlier = concepts.example_points()
    normal_pts = [p for i, p in enumerate(pts) if i != outlier]
    s_normal, s_out = concepts.forest_scores(normal_pts, [pts[normal], pts[outlier]])
    assert s_normal < 1.5 < 3 < s_out, (s_normal, s_out)


def test_episodes_group_like_the_apps_site_model():
    flags = [False, True, True, False, False, False, True, False, False, False, False, False,
             False, False, True]
    eps = concepts.episodes(flags, window_s=10, cooldown_s=60)
    model = SiteModel(ForestParams(warmup_windows=1))
    got = []
    for i, flag in enumerate(flags):
        # what the model would call the episode, from its own rule
        if flag:
            end = (i + 1) * 10_000
            if (model.episode_id is None or model.last_anomaly_end_ms is None
                    or end - model.last_anomaly_end_ms > 60_000 + 1):
                model.episode_id = f"e{i}"
            model.last_anomaly_end_ms = end
            got.append(model.episode_id)
        else:
            got.append(None)
    mapping = {}
    for mine, theirs in zip(eps, got, strict=True):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mapping.setdefault(mine, theirs) == theirs, (eps, got)
    assert eps == [None, 0, 0, None, None, None, 0, None, None, None, None, None, None, None, 1]


def test_learning_curve_rises_and_the_sample_fills():
    curve = concepts.learning_curve(80)
    assert curve["sample"][:3] == [1, 2, 3] and curve["sample"][-1] == 64
    spike = curve["spike_score"]
    assert all(b >= a - 0.05 for a, b in zip(spike, spike[1:], strict=False)), "not rising"
    # the numbers notebook 04 states: about 3.1-3.2 after 12 windows, about 3.7 after 20
    assert 2.9 < spike[11] < 3.4 and 3.5 < spike[19] < 3.9, (spike[11], spike[19])
    assert all(m >= s for m, s in zip(curve["max_score"], spike, strict=True))


def test_render_all_reports_seconds(tmp_path):
    times = concepts.render_all(tmp_path)
    assert set(times) == set(concepts.FIGURES)
    assert all((tmp_path / f"{n}.png").exists() for n in times)


@pytest.mark.parametrize("lateness, window", [(0, 10), (5, 5), (60, 60), (1, 1)])
def test_watermark_figure_follows_the_notebook_parameters(lateness, window):
    """Notebook 03 draws it with its own WINDOW_SECONDS and LATENESS_SECONDS."""
    fig = concepts.watermark_lateness(lateness_s=lateness, window_s=window)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    plt.close(fig)
    assert any(f"− {lateness} s" in label for label in labels), labels
    assert any(label.startswith("late:") for label in labels)
    assert any(label.startswith("out of order") for label in labels) == (lateness >= 1)


def test_figures_show_in_a_notebook_even_after_one_was_saved_to_a_file(tmp_path):
    """In a real kernel every figure is shown, also after a plot was saved to a file (once,
    switching to the headless backend there hid every later figure of the notebook)."""
    import nbclient
    import nbformat

    cells = [
        "from labhelpers.teach import concepts\nfig = concepts.tumbling_windows()",
        "import pandas as pd\nfrom labhelpers.monitor.tables import plot_scores\n"
        "fig = plot_scores(pd.DataFrame(columns=['window_end', 'site', 'ctr', "
        f"'anomaly_score', 'is_anomaly']), 3.5, path={str(tmp_path / 'p.png')!r})",
        "fig = concepts.alert_episode()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    shown = [sum("image/png" in o.get("data", {}) for o in c.outputs) for c in nb.cells]
    assert shown == [1, 1, 1], shown
