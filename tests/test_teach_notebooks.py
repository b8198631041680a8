"""The notebooks' teaching text (issue 15): a story paragraph, an honest time, self-checks
with folded answers, the concept figures next to their concepts, and code cells that call
labhelpers.teach with names that exist."""

import ast
import json
import re

import pytest

from labhelpers.infra.config import REPO_ROOT
from labhelpers.teach import (
    checkpoints,
    concepts,
    instructor_solutions,
    original,
    run_rule,
    sql_exercises,
    tasks,
)

BOOKS = sorted((REPO_ROOT / "notebooks").glob("0[0-6]_*.ipynb"))


def _cells(book):
    return json.loads(book.read_text())["cells"]


def _text(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name[:2])
def test_story_time_and_self_check(book):
    md = "\n".join(_text(c) for c in _cells(book) if c["cell_type"] == "markdown")
    assert "Where we are in the story" in md, f"{book.name}: no story paragraph"
    # the minutes are the timed walk-through's (bench/walkthrough_times.py), and say how made
    walk = json.loads((REPO_ROOT / "docs" / "walkthrough.json").read_text())["notebooks"]
    time = re.search(r"\*\*Time:\*\* about (\d+) minutes", md)
    assert time, f"{book.name}: no time"
    assert int(time.group(1)) == walk[book.name]["core_min"], f"{book.name}: not the timed figure"
    assert "timed in a browser" in md and "estimated" in md, f"{book.name}: say how it was made"
    check = next(_text(c) for c in _cells(book) if "## Self-check" in _text(c))
    questions = re.findall(r"^\*\*\d+\. ", check, flags=re.M)
    assert 3 <= len(questions) <= 5, f"{book.name}: {len(questions)} self-check questions"
    assert check.count("<details>") == len(questions), f"{book.name}: every answer folded"


def test_notebook_04_says_few_cuts_and_06_is_optional():
    nb04 = "\n".join(_text(c) for c in _cells(REPO_ROOT / "notebooks/04_monitor_alerts.ipynb"))
    assert "many cuts to isolate" not in nb04
    assert "**few** cuts" in nb04
    nb06 = _text(_cells(REPO_ROOT / "notebooks/06_optional_evaluate.ipynb")[0])
    assert "Optional" in nb06 and "not a step after cleanup" in nb06
    defs = "\n".join(_text(c) for c in _cells(REPO_ROOT / "notebooks/06_optional_evaluate.ipynb"))
    for column in ("**anom**", "**found**", "**quiet**", "**window recall**", "anomaly recall"):
        assert column in defs, f"06 does not define {column}"


def test_teach_calls_in_the_notebooks_exist():
    """Every labhelpers.teach attribute a code cell uses exists (a rename breaks this test,
    not a student's notebook)."""
    modules = {"concepts": concepts, "original": original, "sx": sql_exercises, "tasks": tasks,
               "run_rule": run_rule, "checkpoints": checkpoints,
               "instructor_solutions": instructor_solutions}
    used = 0
    for book in BOOKS:
        for cell in _cells(book):
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse(_text(cell))):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id in modules):
                    assert hasattr(modules[node.value.id], node.attr), (
                        f"{book.name}: {node.value.id}.{node.attr} does not exist")
                    used += 1
    assert used >= 10, f"only {used} calls into labhelpers.teach found"
    names = {k for book in BOOKS for cell in _cells(book)
             for k in re.findall(r'EXERCISES\["(\w+)"\]', _text(cell))}
    # tumble_ctr is notebook 03's checked task (tasks.check_tumble_ctr runs it)
    assert names | {"tumble_ctr"} == set(sql_exercises.EXERCISES), names


@pytest.mark.parametrize("book", [b for b in BOOKS if b.name[:2] in ("01", "02", "03", "04",
                                                                     "05")],
                         ids=lambda b: b.name[:2])
def test_each_notebook_has_a_checked_task(book):
    """01-05: a task the student writes, a checker's verdict recorded in the run record, the
    instructor's solution only behind SOLVE_TASKS (headless runs), hints folded and no full
    solution in the notebook."""
    cells = _cells(book)
    params = next(_text(c) for c in cells if "parameters" in c["metadata"].get("tags", []))
    assert "SOLVE_TASKS = False" in params, f"{book.name}: no SOLVE_TASKS parameter"
    code = "\n".join(_text(c) for c in cells if c["cell_type"] == "code")
    assert re.search(r"tasks\.record\(RUN_DIR, tasks\.(check_\w+|as_verdict)\(", code), \
        f"{book.name}: no checked task recorded"
    assert "if SOLVE_TASKS:" in code and "instructor_solutions." in code
    md = "\n".join(_text(c) for c in cells if c["cell_type"] == "markdown")
    assert "Your turn (checked)" in md and "<details><summary>Hint" in md
    assert "<summary>Solution</summary>" not in md, f"{book.name}: a full solution is shown"


def test_instructor_folder_has_the_solutions():
    text = (REPO_ROOT / "instructor" / "solutions.md").read_text()
    for nb in ("00", "01", "02", "03", "04", "05", "06"):
        assert f"## Notebook {nb}" in text
    assert "HOP(TABLE clicks" in text and "ROW_NUMBER()" in text
    assert "01_shards" in instructor_solutions.as_markdown()
