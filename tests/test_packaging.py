"""The managed Flink application's zip: layout, platform checks, the job importable from it,
upload under a content-hash key. Most tests use a small stand-in jar and a wheel rebuilt from
the installed krcf (the service's platform: its tag is cp310-abi3-manylinux_2_28_x86_64, which
CPython 3.12 takes); the real connector jar's test fails in CI without it (.ci/run builds it)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from labhelpers.analytics import managed as cloud_app
from labhelpers.analytics import packaging
from labhelpers.analytics.packaging import PackagingError
from labhelpers.infra.config import REPO_ROOT, LabConfig
from tests.connector_jar import require_connector_jar

FACTORY_SERVICE = "META-INF/services/org.apache.flink.table.factories.Factory"


def standin_jar(path: Path) -> Path:
    """A tiny jar shaped like the connector jar (a table factory service entry)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        zf.writestr(FACTORY_SERVICE, "org.example.StandInFactory\n")
    return path


def installed_krcf_wheel(dest: Path) -> Path:
    """Rebuild the installed krcf distribution as a wheel file (no network)."""
    dist = md.distribution("krcf")
    tag = next(line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines()
               if line.startswith("Tag: "))
    path = dest / f"krcf-{dist.version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for f in dist.files or []:
            if "__pycache__" in str(f) or str(f).startswith(".."):
                continue
            zf.write(dist.locate_file(f), str(f))
    return path


def fake_wheel(dest: Path, name: str, so_machine: int | None = None) -> Path:
    path = dest / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("krcf/__init__.py", "")
        if so_machine is not None:
            header = bytearray(b"\x7fELF\x02\x01\x01" + bytes(13))
            header[18] = so_machine
            zf.writestr("krcf/krcf.abi3.so", bytes(header))
    return path


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pkg")
    return packaging.build_zip(standin_jar(tmp / "connector.jar"),
                               [installed_krcf_wheel(tmp)], out=tmp / "app.zip")


def test_zip_layout_matches_the_run_options(built_zip):
    names = packaging.check_zip(built_zip)
    run = cloud_app.application_properties(cloud_app.cloud_settings(
        LabConfig(), {"InputStreamArn": "a", "ScoresStreamArn": "b",
                      "DeadLetterStreamArn": "c"}))[0]["PropertyMap"]
    assert run["python"] in names, "the service's 'python' file must be at that path"
    assert run["jarfile"] in names, "the service's 'jarfile' must be at that path"
    assert any(n.startswith(run["pyFiles"]) for n in names), "pyFiles folder must exist"
    assert [n for n in names if n.endswith(".jar")] == ["lib/pyflink-dependencies.jar"]
    assert "dep/sql/anomaly_detection.sql" in names, "the SQL goes next to labhelpers"
    for module in packaging.job_modules():
        assert f"dep/labhelpers/{module}" in names, module
    assert "dep/labhelpers/analytics/runner.py" not in names, "notebook-side modules stay out"
    assert "dep/krcf/__init__.py" in names and any(
        n.startswith("dep/krcf") and n.endswith(".so") for n in names), "krcf with its library"


def test_zip_is_reproducible(built_zip, tmp_path):
    jar = built_zip.parent / "connector.jar"  # the same input jar (a new one has new times)
    again = packaging.build_zip(jar, [installed_krcf_wheel(tmp_path)], out=tmp_path / "b.zip")
    assert again.read_bytes() == built_zip.read_bytes(), "same inputs, same bytes, same S3 key"
    assert packaging.code_key(again).startswith("flink-app/clickstream-app-")


def test_job_imports_and_finds_its_sql_from_the_zip(built_zip, tmp_path):
    """Unpacked as the service does, dep/ on the path: the job and the real krcf load."""
    with zipfile.ZipFile(built_zip) as zf:
        zf.extractall(tmp_path / "app")
    code = (
        "import sys; sys.path.insert(0, 'dep')\n"
        "from labhelpers.job import pipeline as job, sqlfile\n"
        "from labhelpers.job.forest import ForestParams, SiteModel\n"
        "assert sqlfile.SQL_FILE.resolve().parent.parent == __import__('pathlib').Path("
        "'dep').resolve(), sqlfile.SQL_FILE\n"
        "import krcf; assert 'dep' in krcf.__file__, krcf.__file__\n"
        "m = SiteModel(ForestParams()); print('ok', job.GROUP_INPUT)\n"
        "import labhelpers; mods = [m for m in sys.modules if m.startswith('labhelpers')]\n"
        "outside = [m for m in mods if 'dep' not in (sys.modules[m].__file__ or '')]\n"
        "assert not outside, outside\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path / "app",
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "ok lab.connector.input" in proc.stdout, proc.stderr


# Runs in the unpacked zip with no site (no .pth, so not the editable install): the job's
# own code from dep/, PyFlink and krcf from site-packages only because dep/ has no copy.
_RUN_FROM_ZIP = """
import runpy, sys
try:  # the pipeline runs as __main__; it imports the rest of the job package
    runpy.run_module("labhelpers.job.pipeline", run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert not done.code, f"the job failed: exit {done.code}"
import labhelpers
mods = {m: getattr(sys.modules[m], "__file__", "") or "" for m in sys.modules
        if m.startswith("labhelpers")}
outside = {m: f for m, f in mods.items() if "/dep/" not in f}
assert not outside, outside
assert {"labhelpers.job.forest", "labhelpers.job.sqlfile"} <= set(mods), sorted(mods)
print("ran from the zip:", len(mods), "modules")
"""


@pytest.mark.integration
def test_the_job_runs_from_the_zip_alone(built_zip, tmp_path):
    """The zip's job scores a small file on the local mini-cluster with only the zip's dep/
    and PyFlink's site-packages on the path: every window of the input is scored."""
    import site
    from datetime import UTC, datetime, timedelta

    from labhelpers.flinkenv import PACKAGE_PARENT, flink_env, local_runtime
    from labhelpers.generate.timeline import to_line
    from labhelpers.job.contracts import CLICK, IMPRESSION, SCORE_COLUMNS, format_event_time
    from labhelpers.job.params import JobParams
    from labhelpers.job.pipeline import JobSettings, filesystem_sink, filesystem_source
    from labhelpers.stream.log import read_all_lines

    with zipfile.ZipFile(built_zip) as zf:
        zf.extractall(tmp_path / "app")
    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    records = [{"browseraction": CLICK if i % 4 == 0 else IMPRESSION,
                "site": ("a.example", "b.example")[i % 2],
                "event_time": format_event_time(start + timedelta(seconds=i * 0.75))}
               for i in range(240)]
    (tmp_path / "in.jsonl").write_text("".join(to_line(r) + "\n" for r in records))
    work = tmp_path / "work"
    (work / "log").mkdir(parents=True)
    params = JobParams()
    settings = JobSettings(filesystem_source(tmp_path / "in.jsonl", continuous=False),
                           filesystem_sink(work / "scores"), filesystem_sink(work / "dead"),
                           params=params, runtime=local_runtime(work, checkpoint_interval=None))
    props = work / "properties.json"
    props.write_text(json.dumps(settings.to_properties()))
    env = flink_env(work)
    dep = str(tmp_path / "app" / "dep")
    env["PYTHONPATH"] = os.pathsep.join([dep, *site.getsitepackages()])
    assert str(PACKAGE_PARENT) not in env["PYTHONPATH"].split(os.pathsep)
    proc = subprocess.run([sys.executable, "-S", "-c", _RUN_FROM_ZIP, "--properties",
                           str(props)], cwd=tmp_path / "app", env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and "ran from the zip" in proc.stdout, (
        proc.stdout[-2000:] + proc.stderr[-3000:])
    rows = [json.loads(line) for line in read_all_lines(work / "scores")]
    size = params.window_seconds
    windows = {(r["site"], int(datetime.fromisoformat(r["event_time"].replace("Z", "+00:00"))
                                .timestamp()) // size * size) for r in records}
    assert len(rows) == len(windows), f"{len(rows)} rows for {len(windows)} windows"
    assert sum(r["clicks"] for r in rows) == sum(r["browseraction"] == CLICK for r in records)
    assert sum(r["impressions"] for r in rows) == sum(
        r["browseraction"] == IMPRESSION for r in records)
    assert all(set(SCORE_COLUMNS) <= set(r) for r in rows), rows[0]


def test_main_py_reads_the_properties_file(built_zip, tmp_path):
    with zipfile.ZipFile(built_zip) as zf:
        main = zf.read("main.py").decode()
    assert "job.CLOUD_PROPERTIES" in main and "from labhelpers.job import pipeline as job" in main
    assert "job.run(settings, wait=False)" in main and "if args.wait:" in main, (
        "on the service main must return after submitting")


@pytest.mark.parametrize("name, fits", [
    ("krcf-0.4.0-cp310-abi3-manylinux_2_28_x86_64.whl", True),
    ("krcf-0.4.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    ("six-1.16.0-py2.py3-none-any.whl", True),
    ("krcf-0.4.0-cp310-abi3-macosx_11_0_arm64.whl", False),
    ("krcf-0.4.0-cp310-abi3-manylinux_2_28_aarch64.whl", False),
    ("krcf-0.4.0-cp313-cp313-manylinux_2_28_x86_64.whl", False),
    ("krcf-0.4.0-cp313-abi3-manylinux_2_28_x86_64.whl", False),
])
def test_wheel_platform_check(name, fits):
    assert packaging.wheel_fits_service(Path(name)) is fits, name


def test_wrong_platform_is_refused_with_the_fix(tmp_path):
    jar = standin_jar(tmp_path / "c.jar")
    mac = fake_wheel(tmp_path, "krcf-0.4.0-cp310-abi3-macosx_11_0_arm64.whl")
    with pytest.raises(PackagingError, match="does not run on the service") as err:
        packaging.build_zip(jar, [mac], out=tmp_path / "x.zip")
    assert "fetch_wheels" in str(err.value)
    # A wheel named for Linux x86-64 whose library is built for ARM (machine 0xB7) is caught.
    arm = fake_wheel(tmp_path, "krcf-0.4.0-cp310-abi3-manylinux_2_28_x86_64.whl",
                     so_machine=0xB7)
    with pytest.raises(PackagingError, match="not a Linux x86-64 library"):
        packaging.build_zip(jar, [arm], out=tmp_path / "y.zip")
    with pytest.raises(PackagingError, match="does not exist") as err:
        packaging.build_zip(tmp_path / "none.jar", [], out=tmp_path / "z.zip")
    assert "mvn" in str(err.value)


def test_missing_dependency_is_named(tmp_path):
    with pytest.raises(PackagingError, match="krcf is missing"):
        packaging.build_zip(standin_jar(tmp_path / "c.jar"), [], out=tmp_path / "x.zip")


def test_requirements_agree_with_pyproject():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for req in packaging.PY_REQUIREMENTS:
        assert req in deps, f"{req} must be pinned the same in pyproject.toml: {deps}"


def test_pom_builds_one_shaded_jar_with_the_sql_connector():
    import xml.etree.ElementTree as ET

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(packaging.POM_FILE).getroot()
    deps = [(d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns))
            for d in pom.findall("m:dependencies/m:dependency", ns)]
    assert deps == [("org.apache.flink", "flink-sql-connector-aws-kinesis-streams")], (
        "only the SQL fat jar: with the plain connector too, two 'kinesis' factories clash")
    version = pom.findtext("m:properties/m:kinesis.connector.version", namespaces=ns)
    assert version.endswith("-2.0"), f"the connector line for Flink 2.x, not {version}"
    assert pom.findtext("m:build/m:finalName", namespaces=ns) == "${jar.name}"
    assert pom.findtext("m:properties/m:jar.name", namespaces=ns) + ".jar" == packaging.JAR_NAME
    assert "ServicesResourceTransformer" in packaging.POM_FILE.read_text(), (
        "the factories' META-INF/services entries must be merged")


def test_built_jar_has_the_kinesis_table_factory(tmp_path):
    """The real connector jar (CI builds it; see tests/connector_jar.py) has the 'kinesis'
    table factory, and the real zip built from it carries it as its one jar."""
    jar = require_connector_jar()
    with zipfile.ZipFile(jar) as zf:
        factories = zf.read(FACTORY_SERVICE).decode()
        names = set(zf.namelist())
    assert "org.apache.flink.connector.kinesis.table.KinesisDynamicTableFactory" in factories, (
        factories)
    assert not any(n.startswith("org/apache/flink/api/") for n in names), (
        "Flink itself must not be inside: the runtime provides it")
    out = packaging.build_zip(jar, [installed_krcf_wheel(tmp_path)], out=tmp_path / "real.zip")
    with zipfile.ZipFile(out) as zf:
        assert zf.read("lib/pyflink-dependencies.jar") == jar.read_bytes()
    assert out.stat().st_size < 50 * 1024 * 1024, "the service takes zips up to 50 MB from S3"


def test_main_says_in_one_line_when_krcf_cannot_load(built_zip, tmp_path):
    """A krcf that fails to load (as on a glibc older than 2.28) gives ONE clear log line."""
    with zipfile.ZipFile(built_zip) as zf:
        zf.extractall(tmp_path / "app")
    broken = tmp_path / "app" / "dep" / "krcf" / "__init__.py"
    broken.write_text("raise ImportError('/lib64/libc.so.6: version `GLIBC_2.28\\' not found')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", "main.py", "--properties", "none.json"],
                          cwd=tmp_path / "app", capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "glibc 2.28" in lines[0] and "GLIBC_2.28" in lines[0] and "Fix:" in lines[0], lines


@pytest.mark.integration
def test_upload_puts_the_zip_under_flink_app(emulator_cfg, built_zip):
    cfg = emulator_cfg.with_(prefix="testpkg")
    try:
        bucket, key = packaging.upload(cfg, built_zip)
        assert bucket == cfg.artifacts_bucket and key == packaging.code_key(built_zip)
        assert key.startswith(packaging.CODE_PREFIX), "the app role may read only flink-app/"
        body = cfg.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == built_zip.read_bytes()
        tags = cfg.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
        assert {"Key": "lab-prefix", "Value": cfg.prefix} in tags, tags
    finally:
        from labhelpers.infra import inventory, stack

        stack.delete(cfg, progress=False)
    assert json.dumps(inventory.leftovers(cfg)) == "[]"


def test_build_jar_reuses_a_fresh_jar_and_says_when_maven_is_missing(tmp_path, monkeypatch):
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    monkeypatch.setattr(packaging.shutil, "which", lambda name: None)
    with pytest.raises(PackagingError, match="Maven \\(mvn\\) is not installed") as err:
        packaging.build_jar(pom)
    assert "jar=PATH" in str(err.value), "say how to go on without Maven"
    jar = tmp_path / "target" / packaging.JAR_NAME
    jar.parent.mkdir()
    standin_jar(jar)
    assert packaging.build_jar(pom) == jar, "a jar newer than the pom is reused, no Maven run"
