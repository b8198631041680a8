"""The instructor's solutions of the checked tasks (notebooks 01-05), kept out of the notebooks.

Students see the task, a folded hint and the checker's verdict; the full solution is here.
Headless runs (``run-lab``, CI, the reference run) set the notebooks' ``SOLVE_TASKS`` to
True, and each checked task then takes its answer from ``answer`` or runs ``solve``, so the
checkers are exercised on every run. ``python -m labhelpers.teach.instructor_solutions``
prints every solution, with the explanations, for the instructor (INSTRUCTOR.md).
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any

from ..infra.config import LabConfig

# The Purchase template of notebook 02's task.
PURCHASE_TEMPLATE = """\
### Purchase
{"browseraction": "Click", "user": "{{uuid}}", "price": {{float(5, 500, 2)}},
 "device": "{{weighted({'mobile': 6, 'desktop': 4})}}"}
"""

# task -> (solution as code or text, why)
SOLUTIONS: dict[str, tuple[str, str]] = {
    "01_shards": (
        "stack.deploy(cfg, shard_count=2)",
        "InputShardCount is a parameter of cfn/clickstream.yaml; deploy() passes it and "
        "CloudFormation updates only the stream (an update, not a new stack). On AWS a second "
        "shard costs about USD 0.015 an hour: the next cell sets it back to 1."),
    "02_template": (
        f'MY_TEMPLATE = """\\\n{PURCHASE_TEMPLATE}"""',
        "{{uuid}} and {{float(5, 500, 2)}} are placeholders; a number is not quoted, a text "
        "is. weighted() picks mobile 6 times in 10. The app counts it as a Click and ignores "
        "the extra fields."),
    "03_tumble_ctr": (
        "SELECT window_start, window_end, site,\n"
        "  COUNT(*) FILTER (WHERE browseraction = 'Click') AS clicks,\n"
        "  COUNT(*) FILTER (WHERE browseraction = 'Impression') AS impressions,\n"
        "  100.0E0 * COUNT(*) FILTER (WHERE browseraction = 'Click')\n"
        "    / COUNT(*) FILTER (WHERE browseraction = 'Impression') AS ctr\n"
        "FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND))\n"
        "GROUP BY window_start, window_end, site",
        "One aggregate with FILTER keeps windows without clicks (a join would drop them); "
        "100.0E0 makes the division floating point (BIGINT / BIGINT truncates). The lab's "
        "SQL adds a CASE for windows without impressions (CTR NULL)."),
    "04_threshold": (
        "MY_THRESHOLD = a number between the highest score of a normal window and the "
        "spike's score with the run rule off (about 1.5 to 3.5 with the lab's steady "
        "traffic)",
        "With the run rule off only the forest decides; the steady traffic scores about 1 or "
        "less, the spike about 3.5-4.5 after 20 learned windows. On noisy traffic (notebook "
        "06) no threshold separates them so cleanly: that is why the run rule exists."),
    "05_outside_stack": (
        'OUTSIDE_STACK = ["<prefix>-artifacts-<account>-<region>"]   # tasks.outside_stack(cfg)',
        "inventory.leftovers(cfg) lists everything with the prefix; the stack's resources are "
        "in describe_stack_resources (queues as URLs, topics as ARNs: compare the last part). "
        "The artifacts bucket holds the alert function's code, which must exist before the "
        "stack that makes the function: deploy() creates it through the API, so the stack does "
        "not own it and cleanup deletes it on its own. (On AWS, a managed Flink application "
        "made by `managed-app deploy` is outside the stack too.)"),
}


def answer(task: str, **context: Any) -> Any:
    """The value a checked task expects (what ``SOLVE_TASKS`` fills in); ``context`` carries
    what the answer depends on (04: the scores ``df``, ``params``, ``spike_start``, optionally
    ``learned_before``; 05: ``cfg``)."""
    if task == "02_template":
        return PURCHASE_TEMPLATE
    if task == "03_tumble_ctr":
        return SOLUTIONS[task][0]
    if task == "04_threshold":
        from .tasks import forest_alone

        df, params, start = context["df"], context["params"], context["spike_start"]
        _, again = forest_alone(df, params, 1e6, context.get("learned_before"))
        ends = again["window_end"].map(lambda t: t.timestamp())
        normal = float(again.loc[ends <= start, "score"].fillna(0).max() or 0)
        spike = float(again.loc[ends > start, "score"].fillna(0).max() or 0)
        return round((normal + spike) / 2, 2)
    if task == "05_outside_stack":
        from .tasks import outside_stack

        return outside_stack(context["cfg"])
    raise KeyError(f"no answer for {task!r}")


def solve(task: str, cfg: LabConfig) -> None:
    """Do what a task asks (tasks that change the running lab: 01)."""
    if task == "01_shards":
        from ..infra import stack

        stack.deploy(cfg, shard_count=2, progress=False)
        return
    raise KeyError(f"no solve step for {task!r}")


def as_markdown() -> str:
    """Every solution with its explanation, for the instructor."""
    parts = ["# Solutions of the checked tasks\n"]
    for task, (code, why) in SOLUTIONS.items():
        parts.append(f"## {task}\n\n```\n{code}\n```\n\n{textwrap.fill(why, 96)}\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(as_markdown())
