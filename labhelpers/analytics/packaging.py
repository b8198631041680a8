"""The analytics application's package for Managed Service for Apache Flink, and its upload.

The service expects one zip (see managed_config.application_properties for the run options)::

    main.py                       the entry point (cloud/main.py)       -> "python"
    lib/pyflink-dependencies.jar  the Kinesis connector, one jar        -> "jarfile"
    dep/labhelpers/job/...        the job package, whole                -> "pyFiles" = dep/
    dep/sql/anomaly_detection.sql the lab's SQL (found next to labhelpers, as in the repo)
    dep/krcf/...                  Python dependencies, built for the service's Python and
                                  platform (CPython 3.12, Linux x86-64), unpacked from wheels

``build_jar`` runs Maven on cloud/pom.xml; ``fetch_wheels`` asks pip for the service's wheels;
``build_zip`` assembles and checks the layout; ``upload`` puts it in the artifacts bucket under
a content-hash key; ``package`` does the first three.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import LabError
from ..infra.config import REPO_ROOT, LabConfig
from ..job.sqlfile import SQL_FILE

CLOUD_DIR = REPO_ROOT / "cloud"
POM_FILE = CLOUD_DIR / "pom.xml"
MAIN_SOURCE = CLOUD_DIR / "main.py"
BUILT_JAR = CLOUD_DIR / "target" / "pyflink-dependencies.jar"
WHEEL_DIR = CLOUD_DIR / "target" / "wheels"
DIST_DIR = CLOUD_DIR / "dist"
ZIP_NAME = "clickstream-app.zip"

MAIN_FILE = "main.py"
LIB_DIR = "lib"
JAR_NAME = "pyflink-dependencies.jar"
DEP_DIR = "dep"
CODE_PREFIX = "flink-app/"  # the app role may read only this part of the artifacts bucket

PACKAGE_DIR = Path(__file__).resolve().parents[1]
JOB_PACKAGE = PACKAGE_DIR / "job"


def job_modules() -> list[str]:
    """The files the zip carries of labhelpers, relative to the package: the job package
    (labhelpers/job/, what runs inside Flink) whole, and the package's light ``__init__``."""
    return ["__init__.py", *sorted(p.relative_to(PACKAGE_DIR).as_posix()
                                   for p in JOB_PACKAGE.rglob("*.py"))]


# Python packages the job needs beyond PyFlink (which the service provides). Same pin as in
# pyproject.toml; tests/test_packaging.py checks that they agree.
PY_REQUIREMENTS = ("krcf==0.4.0",)
# Flink 2.2+ on the managed service runs CPython 3.12 on Linux x86-64.
TARGET_PYTHON = (3, 12)
TARGET_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class PackagingError(LabError):
    """Building or checking the application's package failed."""


# ---------------------------------------------------------------- the connector jar
def build_jar(pom: Path = POM_FILE, timeout: float = 900) -> Path:
    """Run ``mvn package`` on cloud/pom.xml; the shaded jar's path.

    Needs a JDK and Maven (the first build downloads from Maven Central). A jar that is newer
    than the pom is reused.
    """
    jar = pom.parent / "target" / JAR_NAME
    if jar.exists() and jar.stat().st_mtime >= pom.stat().st_mtime:
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PackagingError("Maven (mvn) is not installed",
                             "install a JDK 11+ and Maven (e.g. `apt-get install maven`), or pass "
                             "jar=PATH to a pyflink-dependencies.jar built elsewhere.")
    # -U: retry artifacts an earlier run could not download (Maven caches the failure).
    proc = subprocess.run([mvn, "-B", "-q", "-U", "-f", str(pom), "package"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not jar.exists():
        noise = ("To see the full", "Re-run Maven", "For more information", "[Help")
        lines = [re.sub(r"\x1b\[[0-9;]*m|\[ERROR\] ?", "", ln).strip()
                 for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        lines = [ln for ln in lines if ln and not ln.startswith(noise)][:4]
        raise PackagingError(
            "Maven could not build the connector jar:\n    " + "\n    ".join(lines),
            "check that Maven Central is reachable and that the connector version in "
            "cloud/pom.xml exists, then run `python -m labhelpers package` again.",
        )
    return jar


# ---------------------------------------------------------------- Python dependencies
def wheel_tags(path: Path) -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) from a wheel's file name."""
    parts = path.name[:-4].split("-")
    if not path.name.endswith(".whl") or len(parts) < 5:
        raise PackagingError(f"{path.name} is not a wheel file name", "pass .whl files.")
    return parts[-3], parts[-2], parts[-1]


def wheel_fits_service(path: Path) -> bool:
    """Whether the wheel runs on the service's CPython 3.12 on Linux x86-64."""
    py, abi, plat = wheel_tags(path)
    platforms = plat.split(".")
    if not any(p == "any" or (p.startswith("manylinux") and p.endswith("_x86_64"))
               for p in platforms):
        return False
    for tag in py.split("."):
        m = re.fullmatch(r"cp3(\d+)", tag)
        if tag in ("py3", "py2.py3"):
            return True
        if m and (int(m.group(1)) == TARGET_PYTHON[1]
                  or (abi == "abi3" and int(m.group(1)) <= TARGET_PYTHON[1])):
            return True
    return False


def fetch_wheels(dest: Path = WHEEL_DIR, requirements: Sequence[str] = PY_REQUIREMENTS,
                 timeout: float = 300) -> list[Path]:
    """Download the wheels of ``requirements`` for the service's Python and platform."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--implementation", "cp",
           "--python-version", f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}", "-d", str(dest)]
    for plat in TARGET_PLATFORMS:
        cmd += ["--platform", plat]
    proc = subprocess.run([*cmd, *requirements], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise PackagingError(
            f"pip could not download {', '.join(requirements)} for CPython "
            f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]} on Linux x86-64: "
            + (proc.stderr.strip().splitlines() or ["no output"])[-1],
            "check that PyPI is reachable and that the package has a Linux x86-64 wheel for "
            "that Python, then run `python -m labhelpers package` again.",
        )
    names = {re.split(r"[=<>!~ ]", r, maxsplit=1)[0].lower().replace("-", "_")
             for r in requirements}
    wheels = sorted(p for p in dest.glob("*.whl")
                    if p.name.split("-")[0].lower() in names and wheel_fits_service(p))
    if len(wheels) < len(names):
        raise PackagingError(f"No wheel for the service's platform among {sorted(names)}",
                             "pick versions that publish manylinux x86-64 wheels.")
    return wheels


# ---------------------------------------------------------------- the zip
def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _wheel_members(wheel: Path) -> Iterable[tuple[str, bytes]]:
    """The files a wheel installs into site-packages (purelib/platlib), as (path, bytes)."""
    with zipfile.ZipFile(wheel) as wz:
        for name in wz.namelist():
            if name.endswith("/"):
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):
                # name-version.data/{purelib,platlib}/... installs at the root; scripts and
                # headers are not needed by the job.
                if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                    yield "/".join(parts[2:]), wz.read(name)
                continue
            yield name, wz.read(name)


def build_zip(jar: Path, wheels: Sequence[Path], out: Path | None = None) -> Path:
    """Assemble the application zip (layout in the module docstring); its path.

    Byte-for-byte reproducible for the same inputs, so an unchanged package keeps its S3 key.
    """
    if not jar.is_file():
        raise PackagingError(f"The connector jar {jar} does not exist",
                             "build it with `mvn -f cloud/pom.xml package` or "
                             "`python -m labhelpers package`.")
    for wheel in wheels:
        if not wheel_fits_service(wheel):
            raise PackagingError(
                f"{wheel.name} does not run on the service (CPython "
                f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}, Linux x86-64)",
                "use fetch_wheels(), which asks pip for that platform.")
    out = out or DIST_DIR / ZIP_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        _add(zf, MAIN_FILE, MAIN_SOURCE.read_bytes())
        _add(zf, f"{LIB_DIR}/{JAR_NAME}", jar.read_bytes())
        for module in job_modules():
            _add(zf, f"{DEP_DIR}/labhelpers/{module}", (PACKAGE_DIR / module).read_bytes())
        # labhelpers.job.sqlfile finds sql/ next to the package, so it goes next to it in dep/.
        _add(zf, f"{DEP_DIR}/sql/{SQL_FILE.name}", SQL_FILE.read_bytes())
        seen: set[str] = set()
        for wheel in sorted(wheels):
            for name, data in _wheel_members(wheel):
                if name not in seen:
                    seen.add(name)
                    _add(zf, f"{DEP_DIR}/{name}", data)
    tmp.replace(out)
    check_zip(out)
    return out


def check_zip(path: Path) -> list[str]:
    """PackagingError unless the zip has the layout the service and the job need; its names."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        problems = []
        for required in (MAIN_FILE, f"{LIB_DIR}/{JAR_NAME}", f"{DEP_DIR}/sql/{SQL_FILE.name}",
                         *(f"{DEP_DIR}/labhelpers/{m}" for m in job_modules())):
            if required not in names:
                problems.append(f"{required} is missing")
        jars = [n for n in names if n.endswith(".jar")]
        if len(jars) != 1:
            problems.append(f"expected exactly one jar, found {jars}")
        for req in PY_REQUIREMENTS:
            top = re.split(r"[=<>!~ ]", req, maxsplit=1)[0].lower().replace("-", "_")
            if f"{DEP_DIR}/{top}/__init__.py" not in names:
                problems.append(f"the Python package {top} is missing from {DEP_DIR}/")
        for name in names:
            if name.endswith(".so"):
                head = zf.read(name)[:20]
                # ELF, 64-bit, machine x86-64 (0x3E): what the service's workers run.
                if head[:4] != b"\x7fELF" or head[4] != 2 or head[18] != 0x3E:
                    problems.append(f"{name} is not a Linux x86-64 library")
    if problems:
        raise PackagingError(f"The package {path.name} is not usable: " + "; ".join(problems),
                             "rebuild it with `python -m labhelpers package`.")
    return names


def package(jar: Path | None = None, wheels: Sequence[Path] | None = None,
            out: Path | None = None) -> Path:
    """Build the jar (Maven) and fetch the wheels (pip) unless given, then the zip."""
    jar = jar or build_jar()
    wheels = list(wheels) if wheels is not None else fetch_wheels()
    return build_zip(jar, wheels, out)


# ---------------------------------------------------------------- upload
def code_key(path: Path) -> str:
    """The S3 key for a package: under flink-app/, named by its content hash."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"{CODE_PREFIX}clickstream-app-{digest}.zip"


def upload(cfg: LabConfig, path: Path) -> tuple[str, str]:
    """Put the package in the lab's artifacts bucket (made if needed); (bucket, key)."""
    from ..infra import stack

    path = Path(path)
    check_zip(path)
    s3 = cfg.client("s3")
    bucket = stack.ensure_artifacts_bucket(cfg, s3)
    key = code_key(path)
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/zip"})
    return bucket, key
