"""`RunView`'s step lines, fed the way smolagents feeds its step callbacks."""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace

from rich.console import Console

from agentloop import TaskRegistry
from agentloop.cli.view import RunView, shorten


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


async def test_a_long_step_line_ends_at_a_word_boundary_with_a_marker() -> None:
    code = "merged = " + " + ".join(f"get_task_result(task_ids[{i}])" for i in range(12))
    error = "Code execution failed at line 'merged = ...' due to: " + "a long reason " * 20
    view = RunView(Console(file=io.StringIO(), width=300), live=False)
    async with TaskRegistry() as registry, view.showing(registry):
        await asyncio.to_thread(view.on_step, step(1, code_action=f"{code}\nprint(merged)"))
        await asyncio.to_thread(view.on_step, step(2, code_action="x = 1", error=error))
    first, second = view.steps

    kept, more = first.summary.rsplit("  ", 1)
    assert more == "(+1 lines)"
    assert kept.endswith("…") and len(first.summary) <= 90
    kept = kept.removesuffix("…")
    assert code.startswith(kept) and code[len(kept)] == " "  # cut between words
    assert second.error is not None and second.error.endswith("…") and len(second.error) <= 120
    reason = second.error.removesuffix("…")
    assert error.startswith(reason) and error[len(reason)] == " "
    assert second.summary == "x = 1"  # short lines are left alone


def test_shorten_marks_a_cut_inside_one_long_word() -> None:
    assert shorten("abc def", 7) == "abc def"
    assert shorten("abc defghijk", 8) == "abc…"
    assert shorten("x" * 20, 8) == "xxxxxxx…"
