"""The lab's backends behind one interface (``Backend``): ``for_config(cfg)`` picks one.

This is the one place that maps a backend's name to its implementation.
"""

from __future__ import annotations

from ..infra.config import AWS, LOCAL, LabConfig
from .base import Backend


def for_config(cfg: LabConfig) -> Backend:
    """The backend ``cfg`` selects (``local`` or ``aws``)."""
    if cfg.backend == LOCAL:
        from .local import LocalBackend

        return LocalBackend(cfg)
    if cfg.backend == AWS:
        from .aws import AwsBackend

        return AwsBackend(cfg)
    raise AssertionError(cfg.backend)  # LabConfig validates the name


__all__ = ["Backend", "for_config"]
