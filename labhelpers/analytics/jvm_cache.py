"""A faster start for the Flink JVM: class-data sharing (CDS) of the classes a lab job loads.

Each job start loads ~19,000 classes, and finding, reading and verifying them is a large part
of the start-up (bench/bench_replay.py). ``prepare()`` (run by ``make install``, or
``python -m labhelpers jvm-cache``) builds, inside the virtual environment:

- ``lib/``: PyFlink's jars, except that the table planner is unpacked from its loader jar.
  The loader copies the planner into a temporary jar on every start and loads it with its
  own class loader, which an archive cannot cover; from the class path, it can.
- ``flink.jsa``: a CDS archive of the classes one real replay of the lab's job loaded.

``startup_env`` points a job's environment at both when they match this Python, PyFlink and
Java; otherwise the job starts the ordinary way. A JVM that finds the archive unusable
warns and runs without it, so a stale cache costs time, never a result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..errors import AppError
from ..flinkenv import CACHE, cache_ready, cache_stamp, flink_env, java_env, pyflink_home
from ..generate.plan import Plan, Sender
from ..generate.timeline import timeline, write_jsonl
from .replay import replay

PLANNER_LOADER = "flink-table-planner-loader"
PLANNER_IN_LOADER = "flink-table-planner.jar"


def _build_lib(lib: Path) -> None:
    source = pyflink_home() / "lib"
    lib.mkdir(parents=True)
    for jar in source.glob("*.jar"):
        if jar.name.startswith(PLANNER_LOADER):
            with zipfile.ZipFile(jar) as zf, zf.open(PLANNER_IN_LOADER) as src, open(
                lib / PLANNER_IN_LOADER, "wb"
            ) as dst:
                shutil.copyfileobj(src, dst)
        else:
            (lib / jar.name).symlink_to(jar)


def _gateway_classpath(env: dict[str, str]) -> str:
    """The class path PyFlink gives the JVM in ``env`` (the archive must be dumped with it)."""
    code = (
        "import os; from pyflink import pyflink_gateway_server as g; e = dict(os.environ); "
        "g.prepare_environment_variables(e); "
        "print(os.pathsep.join([g.construct_flink_classpath(e), g.construct_hadoop_classpath(e)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def _training_input(path: Path) -> None:
    """Two minutes of two sites' traffic and a few bad lines: every code path of the job."""
    plan = Plan((Sender("Impression", 2.0), Sender("Click", 1.0)),
                sites=("site0.example", "site1.example"))
    bad = ["not json", '{"browseraction": "Hover", "site": "a"}', '{"site": 7}']
    write_jsonl([*timeline(plan, 1_795_000_000, 120), *bad], path)


def _build_archive(work: Path, java: Path) -> None:
    """Run the real job once, listing the classes it loads, then dump them into flink.jsa."""
    _training_input(work / "input.jsonl")
    class_list = work / "classes.lst"
    replay(work / "input.jsonl", work / "out", progress=False,
           jvm_args=f"-XX:DumpLoadedClassList={class_list}")
    # classes from class loaders of their own (Flink's RPC system) cannot be archived
    wanted = work / "classes-builtin.lst"
    wanted.write_text("".join(line for line in class_list.read_text().splitlines(True)
                              if " source: " not in line))
    dump = subprocess.run(
        [str(java), "-Xshare:dump", f"-XX:SharedClassListFile={wanted}",
         f"-XX:SharedArchiveFile={CACHE / 'flink.jsa'}", "-cp",
         _gateway_classpath(flink_env(work))],
        capture_output=True, text=True, timeout=600,
    )
    if dump.returncode != 0 or not (CACHE / "flink.jsa").exists():
        tail = "\n".join((dump.stdout + dump.stderr).splitlines()[-10:])
        raise AppError(f"Building the JVM start-up archive failed:\n{tail}",
                       "jobs still run without it, only slower to start; report the output.")


def prepare(force: bool = False) -> dict[str, Any]:
    """Build the start-up cache (about 40 s, once per installation); returns a summary.
    If anything fails, no cache is left behind and jobs start the ordinary way."""
    java_home = java_env()["JAVA_HOME"]
    if cache_ready(java_home) and (CACHE / "flink.jsa").exists() and not force:
        return {"cache": str(CACHE), "built": False}
    shutil.rmtree(CACHE, ignore_errors=True)
    try:
        _build_lib(CACHE / "lib")
        # from now on jobs use lib/, the training run first of all (its class list must
        # name the planner's classes as class-path classes)
        (CACHE / "stamp.json").write_text(json.dumps(cache_stamp(java_home)))
        with tempfile.TemporaryDirectory(prefix="lab-jvm-cache-") as tmp:
            _build_archive(Path(tmp), Path(java_home) / "bin" / "java")
    except BaseException:
        shutil.rmtree(CACHE, ignore_errors=True)  # half a cache must never be used
        raise
    return {"cache": str(CACHE), "built": True,
            "archive_mb": round((CACHE / "flink.jsa").stat().st_size / 2**20, 1)}


def remove() -> bool:
    """Delete the JVM start-up cache (``make distclean``); True if there was one."""
    existed = CACHE.exists()
    shutil.rmtree(CACHE, ignore_errors=True)
    return existed
