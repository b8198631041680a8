"""The Flink JVM's start-up cache (labhelpers.analytics.jvm_cache): used only when it matches,
and the archive that `make install` builds really maps into a JVM started the way PyFlink
starts it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labhelpers import flinkenv
from labhelpers.analytics import jvm_cache
from labhelpers.flinkenv import flink_env


def test_lib_has_the_planner_unpacked_and_the_other_jars_linked(tmp_path):
    lib = tmp_path / "lib"
    jvm_cache._build_lib(lib)
    names = {p.name for p in lib.iterdir()}
    assert jvm_cache.PLANNER_IN_LOADER in names
    assert not any(n.startswith(jvm_cache.PLANNER_LOADER) for n in names)
    linked = [p for p in lib.iterdir() if p.is_symlink()]
    assert linked and all(p.resolve().exists() for p in linked)


@pytest.mark.integration
def test_the_installed_archive_maps_with_the_gateway_class_path(tmp_path):
    env = flink_env(tmp_path)
    if "-XX:SharedArchiveFile=" not in env["JVM_ARGS"]:
        message = "no JVM start-up cache here: `make install` builds it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI installs with make: a missing cache is a failure there
        pytest.skip(message)
    java = Path(env["JAVA_HOME"]) / "bin" / "java"
    archive = env["JVM_ARGS"].split("-XX:SharedArchiveFile=")[1].split()[0]
    cp = jvm_cache._gateway_classpath(env)
    # -Xshare:on turns "archive unusable" from a warning into an error
    ok = subprocess.run([str(java), "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
                         "-cp", cp, "-version"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "sharing" in ok.stderr
    wrong = subprocess.run([str(java), "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
                            "-cp", f"{tmp_path}:{cp}", "-version"], capture_output=True,
                           text=True)
    assert wrong.returncode != 0, "a changed class path must not use the archive"


@pytest.mark.integration
def test_the_archive_maps_where_it_was_built_so_students_share_it(tmp_path):
    """With flinkenv.SHARE_ARCHIVE the archive maps at the address it was built for (Java 21
    otherwise always moves it, which rewrites every page: no JVM could share them)."""
    env = flink_env(tmp_path)
    if "-XX:SharedArchiveFile=" not in env["JVM_ARGS"]:
        pytest.skip("no JVM start-up cache here: `make install` builds it")
    assert flinkenv.SHARE_ARCHIVE in env["JVM_ARGS"]
    java = Path(env["JAVA_HOME"]) / "bin" / "java"
    archive = env["JVM_ARGS"].split("-XX:SharedArchiveFile=")[1].split()[0]

    def log(*flags: str) -> str:
        return subprocess.run([str(java), *flags, "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
                               "-Xlog:cds", "-cp", jvm_cache._gateway_classpath(env), "-version"],
                              capture_output=True, text=True, check=True).stdout

    shared = log(*flinkenv.SHARE_ARCHIVE.split())
    assert "(ReadOnly)" in shared and "alternative address" not in shared, shared
    if flinkenv.java_version(Path(env["JAVA_HOME"])) >= 21:  # Java 17's default did not move it
        assert "always map archive(s) at an alternative address" in log(), "Java 21 moves it"
