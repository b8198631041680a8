"""The package's shape (issue 11): stages as subpackages, small modules, no import cycles,
one place that maps a backend's name to its implementation, a Flink set-up that imports no
other lab module. These keep the tree readable as it grows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labhelpers"
MAX_LINES = 600
STAGES = {"job", "generate", "stream", "analytics", "alerts", "monitor", "infra", "evaluate",
          "backends", "run"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports() -> dict[str, set[str]]:
    """Every lab module each module imports, at module or function level."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                graph[name].add(full if full in mods else target)
    return {m: {t for t in ts if t in mods and t not in (m, "labhelpers")}
            for m, ts in graph.items()}


def test_the_tree_has_one_subpackage_per_stage():
    found = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert STAGES <= found, f"missing stage packages: {STAGES - found}"


def test_no_module_is_longer_than_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules along their sections: {long}"


def test_there_is_no_import_cycle():
    graph = _imports()
    seen: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in seen and (cycle := visit(nxt, [*path, node])):
                return cycle
        seen[node] = 2
        return None

    for start in sorted(graph):
        if start not in seen:
            cycle = visit(start, [])
            assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_flink_setup_imports_no_other_lab_module():
    assert _imports()["labhelpers.flinkenv"] <= {"labhelpers.errors"}


def test_the_job_imports_nothing_of_the_control_code():
    """What runs inside Flink (labhelpers/job) is shipped whole in the managed application's
    zip, so it may import only its own modules (and the package's lazy __init__)."""
    graph = _imports()
    outside = {m: sorted(t for t in ts if not t.startswith("labhelpers.job"))
               for m, ts in graph.items() if m.startswith("labhelpers.job")}
    assert not any(outside.values()), f"the job imports control code: {outside}"
    init = (PACKAGE / "__init__.py").read_text()
    assert not re.search(r"^from \\.|^import ", init, re.M), "labhelpers/__init__ imports lazily"


# The stages the backends are built from (below the seam) and what is built on the seam.
BELOW_THE_SEAM = ("job", "infra", "generate", "stream", "analytics", "alerts", "evaluate")
ABOVE_THE_SEAM = ("monitor", "run", "teach", "cli")


def test_no_stage_imports_the_backends():
    """The backends use the stages; a stage that needs one is handed it, or its module lives
    above the seam (monitor/, run/). No import arrow runs up into backends/."""
    graph = _imports()
    upward = {m: sorted(t for t in ts if t.startswith("labhelpers.backends"))
              for m, ts in graph.items()
              if m.split(".")[1:2] and m.split(".")[1] in BELOW_THE_SEAM}
    upward = {m: ts for m, ts in upward.items() if ts}
    assert not upward, f"stages import the seam (hand it in, or move the module up): {upward}"
    users = {m.split(".")[1] for m, ts in graph.items()
             if any(t.startswith("labhelpers.backends") for t in ts)}
    assert users - {"backends"} <= set(ABOVE_THE_SEAM), f"place these above or below: {users}"


def test_no_emulated_branch_outside_the_backends():
    """Three worlds (local, aws on the emulator, aws), one backend each: only the config
    (which picks the world) and backends/ read ``emulated`` or ask which world it is; the
    stages ask the world's named facts (``cfg.world.emulator``, ``.cloud_runs_code``...)."""
    allowed = {"infra/config.py"}
    which = re.compile(r"\.emulated\b|\bworld\.name\b|\bworld\s*[!=]=|[!=]=\s*\w*_WORLD\b")
    found = sorted(rel for p in PACKAGE.rglob("*.py")
                   if not (rel := str(p.relative_to(PACKAGE))).startswith("backends/")
                   and rel not in allowed and which.search(p.read_text()))
    assert found == [], f"branch on the world's facts, or move it into backends/: {found}"


def test_each_world_has_its_backend(tmp_path):
    from labhelpers.backends import for_config
    from labhelpers.infra.config import LabConfig

    picked = {type(for_config(LabConfig(home=tmp_path, **kw))).__name__: kw for kw in (
        {"backend": "local"}, {"backend": "aws", "emulated": True}, {"backend": "aws"})}
    assert list(picked) == ["LocalBackend", "EmulatedAwsBackend", "AwsBackend"], picked
    for name in ("aws.py", "local.py", "base.py"):
        text = (PACKAGE / "backends" / name).read_text()
        assert not re.search(r"\.emulated\b", text), f"backends/{name}: a world inside a class"


def test_only_the_seam_and_the_config_name_a_backend():
    compare = re.compile(r"""backend\s*[!=]=\s*["']|["']\s*[!=]=\s*\S*backend\b""")
    files = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if compare.search(p.read_text()))
    assert files == [], f"compare cfg.backend with a literal only in the seam: {files}"


def test_notebook_03_starts_from_the_one_set_of_defaults():
    """The parameters cell shows the app's defaults, not a second copy that can drift."""
    import json

    from labhelpers.job.params import JobParams

    book = json.loads((PACKAGE.parent / "notebooks" / "03_analytics_app.ipynb").read_text())
    cell = next(c for c in book["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values: dict = {}
    exec("".join(cell["source"]), {}, values)  # UPPER_CASE constants only
    defaults = JobParams().to_dict()
    shown = {k.lower(): v for k, v in values.items() if k.lower() in defaults}
    assert len(shown) >= 8, shown
    assert shown == {k: defaults[k] for k in shown}, "notebook 03's parameters drifted"


# ---- names (issue 22): every path a reader is pointed to exists -----------------------------
ROOT = PACKAGE.parent
_PATH = re.compile(r"(?<![\w/.-])((?:labhelpers|tests|bench|sql|cfn|cloud|notebooks|docs)/"
                   r"[\w./*-]*\w)")
_SUBPACKAGES = "|".join(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
_SHORT = re.compile(rf"(?<![\w/.-])((?:{_SUBPACKAGES})/\w+\.py)\b")
_DOTTED = re.compile(r"(?<![\w.])(labhelpers(?:\.\w+)+)")
_DOC = re.compile(r"\b([A-Z][A-Z_]+\.md|FINDINGS)\b")


def _texts() -> dict[str, str]:
    """Docstrings, string constants and comments of every module, README.md, CONTRIBUTING.md."""
    import io
    import tokenize

    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        src = path.read_text()
        parts = [n.value for n in ast.walk(ast.parse(src))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        parts += [t.string for t in tokenize.generate_tokens(io.StringIO(src).readline)
                  if t.type == tokenize.COMMENT]
        out[str(path.relative_to(ROOT))] = "\n".join(parts)
    for name in ("README.md", "CONTRIBUTING.md"):
        out[name] = (ROOT / name).read_text()
    return out


def _resolves(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            if i == len(parts):
                return True
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except (ImportError, AttributeError):
                return False
            return True
    return False


def test_every_module_path_named_exists():
    missing = []
    for source, text in _texts().items():
        for path in set(_PATH.findall(text)):
            if not list(ROOT.glob(path)):
                missing.append(f"{source}: {path}")
        for path in set(_SHORT.findall(text)):
            if not (PACKAGE / path).exists():
                missing.append(f"{source}: {path}")
        for dotted in set(_DOTTED.findall(text)):
            if not _resolves(dotted):
                missing.append(f"{source}: {dotted}")
        for doc in set(_DOC.findall(text)):
            if not list(ROOT.rglob(doc)) or doc == "FINDINGS":
                missing.append(f"{source}: {doc}")
    assert not missing, "names that point nowhere:\n" + "\n".join(sorted(missing))


def test_the_managed_application_has_one_spelling():
    """"managed" (analytics/managed*.py, `managed-app`); the CLI still takes its former
    name "cloud-app" (one line, said so)."""
    other = re.compile(r"cloud[_-]app")
    found = sorted(f"{source}: {line.strip()}" for source, text in _texts().items()
                   for line in text.splitlines() if other.search(line)
                   and "former name" not in line
                   and (source, line) != ("labhelpers/cli.py", "cloud-app"))
    assert not found, f"spell the managed application 'managed': {found}"


def test_the_layout_names_every_subpackage():
    stages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    init = (PACKAGE / "__init__.py").read_text()
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for stage in stages:
        assert f"  {stage}/" in layout, f"README's layout misses {stage}/"
        assert f"    {stage}/" in init, f"labhelpers/__init__'s map misses {stage}/"
        assert f"labhelpers/{stage}/" in contributing, f"CONTRIBUTING.md misses {stage}/"


def test_the_package_data_exists():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, patterns in data["tool"]["setuptools"].get("package-data", {}).items():
        for pattern in patterns:
            assert list((ROOT / package.replace(".", "/")).glob(pattern)), (package, pattern)


# Programs' own output, not the library reporting: the command line's results, the headless
# run's summary, what a background process prints as its result, the job's process (it may not
# import the control code), code in a string, a docstring's example.
# entry points of their own processes, whose stdout/stderr is the output
PRINTS_ALLOWED = {"cli.py", "run/headless.py", "alerts/esm_runner.py", "job/pipeline.py",
                  "infra/moto_rules.py"}


def test_the_library_reports_through_logging():
    printing = sorted(rel for p in PACKAGE.rglob("*.py")
                      if (rel := str(p.relative_to(PACKAGE))) not in PRINTS_ALLOWED
                      and any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"
                              for n in ast.walk(ast.parse(p.read_text()))))
    assert not printing, f"report through labhelpers.logs.logger(__name__): {printing}"
