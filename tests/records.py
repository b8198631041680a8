"""Test helpers for records (only tests use them, so they live here, not in the package)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labhelpers.contracts import format_event_time


def click_record(action: str, site: str, ts: datetime | float, **extra: Any) -> dict[str, Any]:
    """A click-stream record as the generator sends it."""
    return {"browseraction": action, "site": site, "event_time": format_event_time(ts), **extra}
