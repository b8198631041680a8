"""The lab's backends behind one interface (``Backend``), one per world: ``local``
(``LocalBackend``), aws rehearsed on the emulator (``EmulatedAwsBackend``) and aws
(``AwsBackend``). ``for_config(cfg)`` picks one.

This is the one place that maps a world to its implementation.
"""

from __future__ import annotations

from ..infra.config import LOCAL_WORLD, REHEARSAL_WORLD, LabConfig
from .base import Backend


def for_config(cfg: LabConfig) -> Backend:
    """The backend of the world ``cfg`` selects (``cfg.world``); each is imported on first
    use (aws pulls in the managed service's client)."""
    if cfg.world == LOCAL_WORLD:
        from .local import LocalBackend

        return LocalBackend(cfg)
    if cfg.world == REHEARSAL_WORLD:
        from .aws import EmulatedAwsBackend

        return EmulatedAwsBackend(cfg)
    from .aws import AwsBackend

    return AwsBackend(cfg)


__all__ = ["Backend", "for_config"]
