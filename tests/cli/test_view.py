"""`RunView`'s step lines, fed the way smolagents feeds its step callbacks."""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace

from rich.console import Console

from agentloop import TaskRegistry
from agentloop.cli.view import RunView


def step(number: int, **fields: object) -> SimpleNamespace:
    base: dict[str, object] = {"code_action": None, "model_output": None, "error": None}
    return SimpleNamespace(step_number=number, timing=None, **{**base, **fields})


async def test_each_kind_of_step_gets_a_line_that_says_what_happened() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with TaskRegistry() as registry, view.showing(registry):
        for finished in (
            step(1, code_action="ids = [submit_task('tool', 'x')]\nwait_for_tasks(ids)"),
            step(2, model_output="Thought: no code here", error="no code block found"),
            step(3),  # what a step whose model call raised looks like to the callback
        ):
            # from a thread, as smolagents does: the thread hands the line to the loop before
            # it hands back its own return, so the line is in by the time this resumes
            await asyncio.to_thread(view.on_step, finished)
        assert len(view.steps) == 3
    lines = [line.split("): ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "ids = [submit_task('tool', 'x')]  (+1 lines)",
        "(no code)  error: no code block found",
        "(no model output: the model call failed)",
    ]
