"""One palette and a few drawing helpers shared by the teaching figures."""

from __future__ import annotations

from pathlib import Path

CLICK_C = "#d95f02"       # clicks: orange
IMPRESSION_C = "#1b9e77"  # impressions: green
LATE_C = "#c0392b"        # late / anomalous: red
NEUTRAL_C = "#7f8c8d"
ACCENT_C = "#2c7fb8"      # the app / the forest: blue


def _pyplot():
    from ..pyplot import pyplot

    return pyplot()


def save(fig, path: Path | str, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _box(ax, x, y, w, h, text, colour, fontsize=8.5, alpha=0.15, weight="normal",
         ha="center"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, alpha=alpha, edgecolor=colour, lw=1.2))
    tx = x + w / 2 if ha == "center" else x + 0.12
    ax.text(tx, y + h / 2, text, ha=ha, va="center", fontsize=fontsize, weight=weight)


def _arrow(ax, x0, y0, x1, y1, colour="black", text: str = ""):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})
    if text:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, text, ha="center", fontsize=8,
                color=colour)


