"""Checked tasks of notebooks 01-05: the student changes or writes something, a function checks
it on the running lab and answers in one sentence: "done: ..." or "not yet: ...".

The pattern of apache/flink-training's exercise / solution / test: the task is in the notebook,
the check is here, the full solutions are in ``instructor_solutions`` (not in the notebook).
A check never raises on an unsolved or half-solved task: whatever is wrong is its verdict.

    from labhelpers.teach import tasks
    v = tasks.check("01_shards", cfg, answer=2)
    v                    # done: ... | not yet: ...
    tasks.record(RUN_DIR, v)   # into the run record (values.json), for the class report
"""

from __future__ import annotations

import html
import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..infra.config import LabConfig
from ..run.class_report import PREDICTION_KEY, VERDICT_KEY
from ..run.headless import record_values


@dataclass(frozen=True)
class Verdict:
    """A task's verdict: ``ok`` and one sentence."""

    task: str
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'done' if self.ok else 'not yet'}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#b35900"
        word = "done" if self.ok else "not yet"
        return (f"<p class='lab-verdict lab-verdict-{'ok' if self.ok else 'no'}' "
                f"style='color:{colour};font-weight:bold'>{word}: <span "
                f"style='font-weight:normal'>{html.escape(self.message)}</span></p>")


def record(run_dir: str | Path | None, verdict: Verdict) -> Verdict:
    """Save ``verdict`` in the run record (``exercise_<task>``); returns it for display."""
    record_values(run_dir, **{f"{VERDICT_KEY}{verdict.task}": {"ok": verdict.ok,
                                                               "message": verdict.message}})
    return verdict


def record_prediction(run_dir: str | Path | None, name: str, value: Any) -> str:
    """Save a prediction the student typed (``prediction_<name>``); says what was saved."""
    record_values(run_dir, **{f"{PREDICTION_KEY}{name}": value})
    if value is None or value == "":
        return "No prediction typed yet: write your guess in the cell and run it again."
    return f"Your prediction is saved in the run record: {value!r}."


# ---------------------------------------------------------------------------------------------
# 01: a setting of the template changed and deployed again, seen in the stack
# ---------------------------------------------------------------------------------------------


def stack_shards(cfg: LabConfig) -> tuple[int | None, int | None]:
    """(the stack's InputShardCount parameter, the input stream's open shards) on the API."""
    cf = cfg.client("cloudformation")
    stack = cf.describe_stacks(StackName=cfg.stack_name)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    summary = cfg.client("kinesis").describe_stream_summary(StreamName=cfg.input_stream)
    shards = summary["StreamDescriptionSummary"].get("OpenShardCount")
    declared = params.get("InputShardCount")
    return (int(declared) if declared else None), (int(shards) if shards is not None else None)


def check_shards(cfg: LabConfig, answer: Any = 2) -> Verdict:
    """The input stream has ``answer`` shards, in the stack's parameter and in Kinesis."""
    name = "01_shards"
    try:
        declared, shards = stack_shards(cfg)
    except Exception as err:  # noqa: BLE001 - any API failure is the verdict, not a trace
        return Verdict(name, False, f"the stack could not be read ({err}): run the deploy "
                                    "cell first.")
    if declared != answer:
        return Verdict(name, False, f"the stack's InputShardCount is still {declared}: deploy "
                                    f"again with stack.deploy(cfg, shard_count={answer}).")
    if shards != answer:
        return Verdict(name, False, f"the stack says {declared} shards but the stream has "
                                    f"{shards}: wait a few seconds and check again.")
    return Verdict(name, True, f"the template's InputShardCount is {declared} and the input "
                               f"stream {cfg.input_stream} has {shards} open shards: one "
                               "parameter changed, one update, the stack did the rest.")


def reset_shards(cfg: LabConfig) -> tuple[int | None, int | None]:
    """Back to one input shard (deploys only when needed); returns ``stack_shards``."""
    from ..infra import stack

    if stack_shards(cfg)[0] != 1:
        stack.deploy(cfg, shard_count=1, progress=False)
    return stack_shards(cfg)


# ---------------------------------------------------------------------------------------------
# 02: a template of one's own
# ---------------------------------------------------------------------------------------------


def check_template(text: str, n: int = 20) -> Verdict:
    """The ``Purchase`` template: a Click with a UUID ``user``, a ``price`` from 5 to 500 and a
    ``device`` mostly mobile; checked on ``n`` rendered records."""
    from ..generate import templates

    name = "02_template"
    if not text or not text.strip():
        return Verdict(name, False, "the template text is empty: write a '### Purchase' line "
                                    "and the JSON under it.")
    try:
        parsed = templates.parse_templates(text)
    except LabError as err:
        return Verdict(name, False, f"{err.args[0] if err.args else err}")
    if "Purchase" not in parsed:
        return Verdict(name, False, f"there is no template named Purchase (found "
                                    f"{', '.join(parsed) or 'none'}): start it with "
                                    "'### Purchase'.")
    try:
        records = templates.preview(parsed["Purchase"], n=n, site="example.com", seed=None)
    except LabError as err:
        return Verdict(name, False, f"{err.args[0] if err.args else err}")
    first = records[0]
    if first.get("browseraction") != "Click":
        return Verdict(name, False, f"browseraction is {first.get('browseraction')!r}: a "
                                    "purchase is a Click, or the app will not count it.")
    for field in ("user", "price", "device"):
        if field not in first:
            return Verdict(name, False, f"the records have no field {field!r}: add it.")
    try:
        [uuid.UUID(str(r["user"])) for r in records]
    except ValueError:
        return Verdict(name, False, f"user is {first['user']!r}, not a UUID: use "
                                    "{{uuid}}.")
    prices = [r["price"] for r in records]
    if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in prices):
        return Verdict(name, False, f"price is {prices[0]!r}, not a number: no quotes around "
                                    "{{float(5, 500, 2)}}.")
    if min(prices) < 5 or max(prices) > 500 or len(set(prices)) < 2:
        return Verdict(name, False, f"prices run from {min(prices)} to {max(prices)}: make "
                                    "them random between 5 and 500.")
    devices = [r["device"] for r in records]
    if not set(devices) <= {"mobile", "desktop"} or len(set(devices)) < 2:
        return Verdict(name, False, f"devices are {sorted(set(devices))}: use "
                                    "{{weighted({'mobile': 6, 'desktop': 4})}}.")
    return Verdict(name, True, f"{n} records rendered: Clicks with a UUID user, prices "
                               f"{min(prices)}-{max(prices)}, {devices.count('mobile')} of "
                               f"{n} on mobile.")


# ---------------------------------------------------------------------------------------------
# 03: the windowed CTR query, on the student's own traffic
# ---------------------------------------------------------------------------------------------


def live_records(cfg: LabConfig, n: int = 600, window_s: int = 10) -> list[dict[str, Any]]:
    """The newest ``n`` valid records of the input stream (Click/Impression with a site and a
    readable event time), in event-time order: the student's own traffic, cut to whole
    ``window_s`` windows (a window cut in two would be counted by halves)."""
    from ..backends import for_config
    from ..job.contracts import CLICK, IMPRESSION, parse_event_time

    out = []
    for line in for_config(cfg).input_lines(n):
        try:
            rec = json.loads(line)
            if rec.get("browseraction") in (CLICK, IMPRESSION) and rec.get("site"):
                parse_event_time(rec["event_time"])
                out.append(rec)
        except Exception:  # noqa: BLE001 - bad records are the app's dead letters, not ours
            continue
    times = [parse_event_time(r["event_time"]).timestamp() for r in out]
    if not times:
        return []
    first = math.ceil(min(times) / window_s) * window_s
    last = math.floor(max(times) / window_s) * window_s
    keep = sorted((t, i) for i, t in enumerate(times) if first <= t < last)
    return [out[i] for _, i in keep]


def check_tumble_ctr(cfg: LabConfig, query: str, n: int = 600, wait_s: float = 45.0):
    """Run the student's windowed CTR query on Flink over their newest ``n`` records and check
    every window's counts and CTR (``sql_exercises.check_ctr``). Returns the sql_exercises
    Check (verdict, rows in ``.result``). Right after 02 the stream may not yet hold one whole
    10-s window: it waits up to ``wait_s`` for one while traffic flows."""
    from ..backends import for_config
    from . import sql_exercises as sx

    deadline = time.monotonic() + wait_s
    while not (records := live_records(cfg, n)) and time.monotonic() < deadline:
        time.sleep(2.0)
    if not records:
        if not for_config(cfg).input_lines(1):
            return sx.Check(False, "no records in your input stream yet: is the traffic (02) "
                                   "running?")
        return sx.Check(False, f"your input stream does not hold one whole 10-s window yet "
                               f"(waited {wait_s:.0f} s): is the traffic (02) still running? "
                               f"Run this cell again in a minute.")
    return sx.run("tumble_ctr", query, records=records)


def as_verdict(task: str, check: Any) -> Verdict:
    """A sql_exercises Check as this module's Verdict (for ``record``)."""
    return Verdict(task, bool(check.ok), str(check.message))


# ---------------------------------------------------------------------------------------------
# 04: the threshold re-scored on the student's own windows, the run rule off
# ---------------------------------------------------------------------------------------------


def forest_alone(df, params, threshold: float, learned_before=None):
    """The student's windows re-scored by the job's code with the run rule off and
    ``threshold``, after the windows a warm start learned (``learned_before``:
    ``lab.warm_up_rows()``): (flag per window, score per window) in ``df``'s order."""
    from dataclasses import replace

    from .run_rule import sums_frame

    p = replace(params, threshold=float(threshold), run_threshold=0.0)
    again = sums_frame(df, p, learned_before)
    flags = again["score"].fillna(0) > p.threshold
    return flags.to_numpy(), again


def check_forest_threshold(df, params, spike_start: float, answer: Any,
                           learned_before=None) -> Verdict:
    """``answer``: a threshold with which the forest ALONE (run rule off) flags the spike (a
    window ending after ``spike_start``, epoch s) and no window before it (``learned_before``:
    as in ``forest_alone``)."""
    name = "04_threshold"
    if answer is None or isinstance(answer, bool) or not isinstance(answer, int | float) or \
            not math.isfinite(answer) or answer <= 0:
        return Verdict(name, False, f"MY_THRESHOLD is {answer!r}: write a number above 0.")
    flags, again = forest_alone(df, params, answer, learned_before)
    ends = again["window_end"].map(lambda t: t.timestamp()).to_numpy()
    before = int((flags & (ends <= spike_start)).sum())
    during = int((flags & (ends > spike_start)).sum())
    top_before = float(again.loc[ends <= spike_start, "score"].fillna(0).max() or 0)
    top_spike = float(again.loc[ends > spike_start, "score"].fillna(0).max() or 0)
    if before:
        return Verdict(name, False, f"with {answer:g} the forest alone flags {before} window(s) "
                                    f"before the spike (normal ones score up to "
                                    f"{top_before:.2f}): raise it.")
    if not during:
        return Verdict(name, False, f"with {answer:g} the forest alone misses the spike (its "
                                    f"highest score is {top_spike:.2f}): lower it.")
    return Verdict(name, True, f"with {answer:g} and the run rule off, the forest flags "
                               f"{during} spike window(s) and none of the normal ones (they "
                               f"score up to {top_before:.2f}, the spike {top_spike:.2f}).")


# ---------------------------------------------------------------------------------------------
# 05: what the stack does not own
# ---------------------------------------------------------------------------------------------


def outside_stack(cfg: LabConfig) -> list[str]:
    """Names of what exists with the lab's prefix but is not a resource of its stack: what a
    plain stack deletion would leave behind."""
    from ..infra.inventory import leftovers

    # each line is "<kind> <name>" (a kind may be two words, a name has no space)
    names = [line.rsplit(" ", 1)[-1] for line in leftovers(cfg)
             if " " in line and "could not be checked" not in line]
    cf = cfg.client("cloudformation")
    owned: set[str] = {cfg.stack_name}
    try:
        for res in cf.describe_stack_resources(StackName=cfg.stack_name)["StackResources"]:
            phys = str(res.get("PhysicalResourceId") or "")
            # queues are URLs, topics ARNs: the name is the last part
            owned.update({phys, phys.rsplit("/", 1)[-1], phys.rsplit(":", 1)[-1]})
    except Exception:  # noqa: BLE001 - no stack: nothing is owned by it
        pass
    return sorted(n for n in names if n not in owned)


def check_outside_stack(cfg: LabConfig, answer: Sequence[str] | None) -> Verdict:
    """``answer``: the names of everything the lab made outside its stack."""
    name = "05_outside_stack"
    if not answer:
        return Verdict(name, False, "OUTSIDE_STACK is empty: list the names you found.")
    want = set(outside_stack(cfg))
    got = {str(a).strip() for a in answer}
    missing, extra = sorted(want - got), sorted(got - want)
    if extra:
        return Verdict(name, False, f"{extra[0]} is not outside the stack (or does not exist): "
                                    "compare leftovers(cfg) with the stack's resources.")
    if missing:
        return Verdict(name, False, f"{len(missing)} more to find: one is a "
                                    f"{_kind(missing[0])}.")
    return Verdict(name, True, f"found: {', '.join(sorted(want))}; deleting the stack alone "
                               "would leave it, so cleanup deletes it on its own.")


def _kind(name: str) -> str:
    for word in ("queue", "bucket", "topic", "stream", "function", "role"):
        if word in name or (word == "bucket" and "artifact" in name):
            return word
    return "resource whose name starts with your prefix"


CHECKS: dict[str, Callable[..., Verdict]] = {
    "01_shards": check_shards,
    "02_template": check_template,
    "04_threshold": check_forest_threshold,
    "05_outside_stack": check_outside_stack,
}


def check(task: str, *args: Any, **kwargs: Any) -> Verdict:
    """Run the checker of ``task`` (CHECKS)."""
    if task not in CHECKS:
        from ..errors import ConfigError

        raise ConfigError(f"No checked task {task!r}", f"use one of {', '.join(CHECKS)}.")
    return CHECKS[task](*args, **kwargs)
