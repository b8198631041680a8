"""The errors the job itself raises: the base of the lab's one exception family.

Every message says what failed and ends with the fix. The control code's errors
(``labhelpers.errors``) derive from ``LabError`` here, so the job needs none of them.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class. ``str(err)`` is one sentence on what failed followed by what to do."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what.rstrip('.')}. Fix: {fix}")


class ConfigError(LabError):
    """A parameter or setting is invalid."""
