"""No credentials, e-mail addresses or phone numbers in notebook outputs or the lab's logs.

Runs the setup, deploy and cleanup notebooks headless with an alert e-mail and phone number
set (they go into the stack as parameters), and the deploy notebook once more with a phone
number in the wrong format (the error must not repeat it); then scans every output of the
executed notebooks, the values they record, and every log under LAB_HOME.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from labhelpers.run.headless import NOTEBOOKS_DIR, lab_notebooks, run_lab

pytestmark = pytest.mark.notebooks

EMAIL = "student.alerts@example.org"
PHONE = "+14155550123"
BAD_PHONE = "0415 555 0123"
PATTERNS = {
    "e-mail address": re.compile(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "phone number": re.compile(r"(?<![\w.])\+[1-9]\d{7,14}\b"),
    "access key id": re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    "secret key": re.compile(r"(?i)(aws_secret_access_key|secretkey|SecretAccessKey)\W{1,6}\w"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outputs(notebook: Path) -> str:
    """Every output text of an executed notebook (streams, results, errors), not its source."""
    nb = json.loads(notebook.read_text())
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            for value in out.get("data", {}).values():
                texts.append(value if isinstance(value, str) else "".join(value)
                             if isinstance(value, list) else json.dumps(value))
            texts += [out.get("ename", ""), out.get("evalue", ""), *out.get("traceback", [])]
    return "\n".join(texts)


# The documented examples in the lab's fix texts (reserved example domain, fictional number).
EXAMPLES = {"you@example.com", "+14155550100"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def find_secrets(text: str, literals: tuple[str, ...]) -> list[str]:
    """What in ``text`` looks like a contact or a credential, one line per finding."""
    text = _ANSI.sub("", text)  # tracebacks are coloured
    found = [f"literal {lit!r}" for lit in literals if lit and lit in text]
    for what, pattern in PATTERNS.items():
        found += [f"{what}: {m.group(0)!r}" for m in pattern.finditer(text)
                  if m.group(0) not in EXAMPLES]
    return found


def test_the_scanner_finds_what_it_must():
    leaky = (f"sent to {EMAIL} and {PHONE}; key AKIAABCDEFGHIJKLMNOP; "
             "{'aws_secret_access_key': 'abc'}")
    kinds = " ".join(find_secrets(leaky, ()))
    for what in PATTERNS:
        assert what in kinds, f"the scanner misses a {what}: {kinds}"
    assert find_secrets("window 2026-11-27T10:00:00+00:00, score 3.2, +5 %", ()) == []
    assert find_secrets("\x1b[33mpass email='you@example.com'\x1b[0m", ()) == [], (
        "the documented example in a fix text is not a leak")


def test_notebooks_and_logs_hold_no_contacts_or_credentials(tmp_path, monkeypatch):
    import papermill as pm

    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("LAB_EMULATOR_PORT", str(_free_port()))
    books = {b.name[:2]: b for b in lab_notebooks()}
    run = run_lab(tmp_path / "run", notebooks=[books["00"], books["01"], books["05"]],
                  parameters={"PREFIX": "secretlab", "ALERT_EMAIL": EMAIL,
                              "ALERT_PHONE": PHONE})
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ok"], f"a notebook failed: {summary['failed']}"
    assert "E-mail and SMS are not delivered" in _outputs(run / books["01"].name), (
        "the contacts must have reached stack.deploy for this test to mean anything")

    # A phone number in the wrong format: the deploy fails with a clear sentence, without it.
    bad = tmp_path / "bad" / books["01"].name
    bad.parent.mkdir()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(books["01"]), str(bad), cwd=str(NOTEBOOKS_DIR),
                            parameters={"PREFIX": "secretlab", "ALERT_PHONE": BAD_PHONE},
                            progress_bar=False)
    assert "E.164" in str(err.value) and BAD_PHONE not in str(err.value)

    literals = (EMAIL, PHONE, BAD_PHONE)
    scanned = 0
    findings: list[str] = []
    for notebook in [*run.glob("*.ipynb"), bad]:
        findings += [f"{notebook.name}: {f}" for f in find_secrets(_outputs(notebook),
                                                                    literals)]
        scanned += 1
    for path in [*run.glob("*.json"), *home.rglob("*.log"), *home.rglob("*.jsonl")]:
        text = path.read_text(errors="replace")
        findings += [f"{path.name}: {f}" for f in find_secrets(text, literals)]
        scanned += 1
    assert scanned >= 6, f"too little was scanned ({scanned} files): is the run complete?"
    assert not findings, "\n".join(findings)
