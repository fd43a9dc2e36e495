"""The system-prompt section that teaches the controller to drive its parallel work.

It is generated from what is actually registered (real target names and signatures, the real
limits), so the examples the model copies are always runnable.
"""

from __future__ import annotations

from ..core._targets import Target
from ..limits import Limits
from ..tasks import TaskType
from .tools import ToolSettings

__all__ = ["TASK_HINT", "render_guidance"]

TASK_HINT = (
    "\n\nPlan for parallelism: find the independent subtasks, start all of them with "
    "submit_task, then wait_for_tasks and get_task_results, and merge the results. Chain "
    'dependent steps with {"$result_of": task_id} instead of waiting between them.'
)


def _target_line(target: Target) -> str:
    kind = target.task_type.value
    description = " ".join(target.description.split())
    if len(description) > 200:
        description = description[:197] + "..."
    return f"- {kind} `{target.signature()}`: {description or '(no description)'}"


def _samples(target: Target) -> list[tuple[str, str]]:
    """(input name, sample value) for each required input, as the examples write them."""
    samples = []
    for spec in target.inputs.values():
        if spec.required:
            sample = {"integer": "1", "number": "1.0", "boolean": "True"}.get(spec.types[0], "...")
            if sample == "...":
                sample = '"..."' if spec.types[0] == "string" else "..."
            samples.append((spec.name, sample))
    return samples


def _example_call(target: Target) -> str:
    arguments = "{" + ", ".join(f'"{name}": {value}' for name, value in _samples(target)) + "}"
    return f'submit_task("{target.task_type.value}", "{target.name}", {arguments})'


def _example_direct_call(target: Target) -> str:
    arguments = ", ".join(f"{name}={value}" for name, value in _samples(target))
    return f"{target.name}({arguments})"


def render_guidance(
    targets: list[Target],
    limits: Limits,
    settings: ToolSettings,
    instructions: str | None = None,
) -> str:
    """The guidance section, followed by the caller's own instructions if any."""
    if targets:
        listing = "\n".join(_target_line(t) for t in targets)
        example = targets[0]
    else:
        listing = "- (none registered yet)"
        example = None
    per_run = (
        f"at most {limits.max_tasks_per_scope} tasks per run"
        if limits.max_tasks_per_scope is not None
        else "no bound on tasks per run"
    )
    lines = [
        "## Running work in parallel",
        "Each target below can be used in two ways:",
        "- call it directly, like a function, with its inputs as arguments: it runs now and "
        "returns its result (or raises an error that says why). Do this for one quick result "
        "you need before you can go on.",
        "- submit it: submit_task(task_type, target_name, arguments) returns a task id at once "
        "and runs the work in the background. Do this for everything that can run in parallel: "
        "start every independent subtask first, then wait_for_tasks(ids) and "
        "get_task_results(ids).",
        "",
        "Targets:",
        listing,
        "",
        f"Limits: {limits.max_workers} sync tool calls and {limits.max_async_tasks} async ones run "
        f"at once (the rest queue); {per_run}; wait_for_tasks waits at most "
        f"{settings.max_wait:g}s per call (default {settings.default_wait:g}s); sleep at most "
        f"{settings.max_sleep:g}s.",
        "",
        "Example:",
        "```py",
    ]
    call = _example_call(example) if example else 'submit_task("tool", "<name>", {...})'
    direct = _example_direct_call(example) if example else "<name>(...)"
    lines += [
        f"first = {direct}  # one result, needed now: call directly",
        f"ids = [{call} for _ in range(3)]  # parallel work: submit",
        "outcome = wait_for_tasks(ids, max_wait_time=60)",
        "print(outcome)  # completed / failed / still pending",
        "results = get_task_results(ids)  # {task_id: result}",
        "for task_id, value in results.items():",
        "    if not value:  # a TaskFailure that says why; retry or report it",
        '        print("failed:", value)',
        "```",
        'Chain steps without waiting: pass {"$result_of": earlier_id} as an argument value; '
        "the new task starts when `earlier_id` completes and receives its result. "
        "Pass retries=2 for flaky work, timeout=<seconds> for slow work. "
        "Use check_task(id), list_tasks() and cancel_task(id) to inspect and stop tasks.",
    ]
    if any(t.task_type is TaskType.MANAGED_AGENT for t in targets):
        lines.append(
            "Managed agents take a `task` string describing the job in full; they do not see "
            "this conversation."
        )
    if instructions:
        lines += ["", instructions.strip()]
    return "\n".join(lines)
