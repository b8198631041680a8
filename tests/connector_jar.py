"""The Kinesis connector jar for the connector tests: built, or skipped locally, or a failure
in CI (``CI=true``), like the browser test without Chromium. ``.ci/run`` (and
``make connector-jar``) builds it with cloud/install-connector-jar."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labhelpers.analytics import packaging


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_connector_jar() -> Path:
    """cloud/target/pyflink-dependencies.jar; skip without it, fail under CI=true."""
    jar = packaging.BUILT_JAR
    if jar.is_file():
        return jar
    reason = (f"the Kinesis connector jar {jar} is not built: run `make connector-jar` "
              "(cloud/install-connector-jar)")
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the connector tests must run; .ci/run builds it)")
    pytest.skip(reason)
