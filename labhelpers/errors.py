"""One exception family for the lab: every message says what failed and ends with the fix."""

from __future__ import annotations


class LabError(Exception):
    """Base class. ``str(err)`` is one sentence on what failed followed by what to do."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what.rstrip('.')}. Fix: {fix}")


class ConfigError(LabError):
    """A parameter or setting is invalid."""


class JavaError(LabError):
    """No usable Java runtime for Flink."""


class EmulatorError(LabError):
    """The local AWS emulator (moto server) is not usable."""


class StackError(LabError):
    """Deploying or deleting the CloudFormation stack failed."""


class AppError(LabError):
    """The analytics application (Flink job) failed or is not in the expected state."""


class GeneratorError(LabError):
    """The traffic generator got bad input or could not deliver."""


class AlertError(LabError):
    """The alert path (handler, SNS, inbox) failed."""
