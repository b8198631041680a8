"""One exception family for the lab: every message says what failed and ends with the fix."""

from __future__ import annotations

from .job.errors import ConfigError, LabError

__all__ = ["AlertError", "AppError", "ConfigError", "EmulatorError", "GeneratorError",
           "JavaError", "LabError", "StackError", "aws_error_code", "aws_error_text"]


def aws_error_code(err: Exception) -> str:
    """The error code of an AWS ``ClientError`` ("" for any other error)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def aws_error_text(err: Exception) -> str:
    """An AWS error as a student reads it: ``Code: Message`` for a ``ClientError``, else the
    error's own text."""
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        e = response["Error"]
        return f"{e.get('Code', 'Error')}: {e.get('Message', err)}"
    return str(err)


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
