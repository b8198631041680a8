"""A restart, seen: what the app's checkpoint restored, read from its own score rows.

Notebook 04 stops the app while the traffic goes on, starts it again with the same settings,
and compares the score rows from before the stop with those after: the windows continue
where they stopped (none missing, none twice), the forest is still warmed up and keeps
scoring, and the windows of the time it was down were counted once it came back (it resumed
at its checkpoint's position in the input).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def restored(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per site: what the checkpoint restored. ``before``: the score rows when the
    app was stopped; ``after``: all score rows once the restarted app has reported a few
    windows (the stream keeps both runs' rows)."""
    rows: list[dict[str, Any]] = []
    for site, g in after.groupby("site"):
        old = before[before["site"] == site]
        last_old = old["window_start"].max() if len(old) else None
        new = g[g["window_start"] > last_old] if last_old is not None else g
        starts = g["window_start"].sort_values()
        step = (g["window_end"] - g["window_start"]).median()
        twice = int(g.duplicated(["window_start"]).sum())
        gaps = int(((starts.diff().dropna() > step) if len(starts) > 1 else pd.Series(
            dtype=bool)).sum())
        first = new.iloc[0] if len(new) else None
        rows.append({
            "site": site,
            "windows before the stop": len(old),
            "last window before": last_old,
            "windows after the restart": len(new),
            "first window after": None if first is None else first["window_start"],
            "windows missing in between": gaps,
            "windows counted twice": twice,
            "forest ready at once": None if first is None else bool(first["forest_ready"]),
            "first score after": None if first is None else first["anomaly_score"],
            "clicks / impressions of the first": None if first is None else
            f"{first['clicks']} / {first['impressions']}",
        })
    return pd.DataFrame(rows).set_index("site")
