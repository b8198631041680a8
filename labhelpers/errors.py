"""One exception family for the lab: every message says what failed and ends with the fix."""

from __future__ import annotations

from .job.errors import ConfigError, LabError

__all__ = ["AlertError", "AppError", "ConfigError", "EmulatorError", "GeneratorError",
           "JavaError", "LabError", "StackError"]


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
