"""`RunView`, fed the run's `RunEvent`s: step lines, task lines, the interrupted marking, and
the same events from a real run through `follow(agent.astream(...))`."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import pytest
from rich.console import Console

from agentloop import (
    RunEvent,
    RunEventKind,
    StepInfo,
    TaskEventInfo,
    TaskStatus,
    create_async_agent,
)
from agentloop.cli.feed import follow
from agentloop.cli.view import RunView, shorten
from agentloop.testing import FunctionModel, ScriptedModel

from .stub_tools import hang, slow_double

pytestmark = pytest.mark.timeout(30)


def step_event(number: int, **fields: Any) -> RunEvent:
    base: dict[str, Any] = {"code": None, "observation": None, "error": None, "duration": 0.25}
    info = StepInfo(number=number, **{**base, **fields})
    return RunEvent(kind=RunEventKind.STEP, run_id="run_1", seq=number, at=time.time(), step=info)


def task_event(kind: RunEventKind, status: TaskStatus, attempt: int = 1, **fields: Any) -> RunEvent:
    info = TaskEventInfo(task_id="tool_1", target="tool", status=status, attempt=attempt, **fields)
    return RunEvent(kind=kind, run_id="run_1", seq=1, at=time.time(), task_event=info)


def plain_lines(out: io.StringIO) -> list[str]:
    return [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]


async def test_each_kind_of_step_gets_a_line_that_says_what_happened() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with view.showing():
        for event in (
            step_event(1, code="ids = [submit_task('tool', 'x')]\nwait_for_tasks(ids)"),
            step_event(2, error="no code block found\nMake sure to provide correct code"),
            step_event(3),  # what a step whose model call raised carries: nothing
        ):
            view.on_event(event)
    assert len(view.steps) == 3
    assert [line.split("): ", 1)[1] for line in plain_lines(out)] == [
        "ids = [submit_task('tool', 'x')]  (+1 lines)",
        "(no code)  error: no code block found",
        "(no model output: the model call failed)",
    ]


async def test_a_long_step_line_ends_at_a_word_boundary_with_a_marker() -> None:
    code = "merged = " + " + ".join(f"get_task_result(task_ids[{i}])" for i in range(12))
    error = "Code execution failed at line 'merged = ...' due to: " + "a long reason " * 20
    view = RunView(Console(file=io.StringIO(), width=300), live=False)
    async with view.showing():
        view.on_event(step_event(1, code=f"{code}\nprint(merged)"))
        view.on_event(step_event(2, code="x = 1", error=error))
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


async def test_task_events_fill_the_table_and_print_one_line_each_but_submitted() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with view.showing():
        view.on_event(task_event(RunEventKind.TASK_SUBMITTED, TaskStatus.PENDING, attempt=0))
        view.on_event(task_event(RunEventKind.TASK_STARTED, TaskStatus.RUNNING))
        view.on_event(task_event(RunEventKind.TASK_RETRIED, TaskStatus.PENDING, error="flaky"))
        view.on_event(task_event(RunEventKind.TASK_STARTED, TaskStatus.RUNNING, attempt=2))
        view.on_event(task_event(RunEventKind.TASK_COMPLETED, TaskStatus.COMPLETED, attempt=2))
    assert plain_lines(out) == [
        "  started tool_1",
        "  retried tool_1 (flaky)",
        "  started tool_1 attempt 2",
        "completed tool_1 attempt 2",
    ]
    row = view.rows["tool_1"]
    assert (row.status, row.attempt) == (TaskStatus.COMPLETED, 2)
    assert row.started is not None and row.ended is not None and row.ended >= row.started


async def test_a_step_that_ends_while_the_run_is_cancelled_is_shown_as_interrupted() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    entered = asyncio.Event()

    async def watch() -> None:
        async with view.showing():
            view.on_event(step_event(1, code="x = 1"))  # before Ctrl-C: shown as it was
            entered.set()
            try:
                await asyncio.Event().wait()
            finally:  # what `follow` hands over after Ctrl-C
                view.on_event(step_event(2, code="wait_for_tasks(ids)", error="registry closed"))
                view.on_event(step_event(3))

    watcher = asyncio.create_task(watch())
    await entered.wait()
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    assert [(s.interrupted, s.mark) for s in view.steps] == [
        (False, ""),
        (True, "  interrupted"),
        (True, "  interrupted"),
    ]
    assert view.steps[2].summary == "(no model output)"
    assert "registry closed" not in out.getvalue()


async def test_a_real_run_feeds_the_view_through_its_event_stream() -> None:
    plan = [
        "ids = [submit_task('tool', 'slow_double', {'n': i}) for i in range(3)]\n"
        "wait_for_tasks(ids)",
        "final_answer(sorted(get_task_results(ids).values()))",
    ]
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    seen: list[RunEvent] = []
    agent = create_async_agent([slow_double], model=ScriptedModel(plan))
    async with agent, view.showing():
        answer = await follow(agent.astream("double"), [seen.append, view.on_event])

    assert answer == [0, 2, 4]
    assert seen[0].kind is RunEventKind.RUN_STARTED and seen[-1].kind is RunEventKind.FINAL_ANSWER
    assert {r.status for r in view.rows.values()} == {TaskStatus.COMPLETED}
    assert len(view.rows) == 3
    assert [s.number for s in view.steps] == [1, 2]
    assert view.steps[0].summary.startswith("ids = [submit_task(")
    assert "completed slow_double_3" in out.getvalue()


async def test_a_failed_model_call_reads_as_no_model_output() -> None:
    def broken(messages: Any) -> str:
        raise RuntimeError("the provider is down")

    view = RunView(Console(file=io.StringIO(), width=200), live=False)
    agent = create_async_agent([], model=FunctionModel(broken))
    async with agent, view.showing():
        with pytest.raises(Exception, match="the provider is down"):
            await follow(agent.astream("x"), [view.on_event])
    assert [s.summary for s in view.steps] == ["(no model output: the model call failed)"]


async def test_a_cancelled_follow_still_hands_over_how_the_run_ended() -> None:
    """Ctrl-C cancels the task iterating the stream: the cancelled task and `run_failed` still
    reach the sinks."""
    plan = ["ids = [submit_task('tool', 'hang', {'reason': 'x'})]\nwait_for_tasks(ids)"]
    view = RunView(Console(file=io.StringIO(), width=200), live=False)
    seen: list[RunEvent] = []
    agent = create_async_agent([hang], model=ScriptedModel(plan))

    async def main() -> None:
        async with view.showing():
            await follow(agent.astream("hang"), [seen.append, view.on_event, interrupt])

    def interrupt(event: RunEvent) -> None:
        if event.kind is RunEventKind.TASK_STARTED:
            runner.cancel()  # as asyncio.run's SIGINT handler does

    async with agent:
        runner = asyncio.create_task(main())
        with pytest.raises(asyncio.CancelledError):
            await runner
    kinds = [e.kind for e in seen]
    assert kinds[0] is RunEventKind.RUN_STARTED and kinds[-1] is RunEventKind.RUN_FAILED
    assert RunEventKind.TASK_CANCELLED in kinds
    assert view.rows["hang_1"].status is TaskStatus.CANCELLED
    # The interrupted step's own event may come too late: a cancelled run ends (and its stream
    # with it) without waiting for the controller thread to finish the step, and the stream
    # drops events pushed after its end. If it did come, it says `interrupted`.
    assert all(s.interrupted for s in view.steps)


def approval_event() -> RunEvent:
    info = TaskEventInfo(
        task_id="deploy_1", target="deploy", status=TaskStatus.AWAITING_APPROVAL, attempt=0
    )
    extra = {"approval_id": "deploy_1", "arguments": {"env": "prod"}, "asked_by": ["planner"]}
    return RunEvent(
        kind=RunEventKind.APPROVAL_REQUESTED,
        run_id="run_1",
        seq=2,
        at=time.time(),
        task_event=info,
        extra=extra,
    )


async def test_an_approval_request_and_its_decision_get_a_line_and_a_distinct_row() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with view.showing():
        view.on_event(approval_event())
        rendered = io.StringIO()
        Console(file=rendered, width=200).print(view.render())
        view.note_decision("deploy_1", approved=True, reason="auto-approved by the demo")
    assert plain_lines(out) == [
        ' approval deploy_1: deploy(env="prod") awaits a decision',
        " approved deploy_1 (auto-approved by the demo)",
    ]
    assert "awaiting approval" in rendered.getvalue()
    assert view.rows["deploy_1"].status is TaskStatus.PENDING  # until it starts


async def test_a_rejection_is_shown_and_the_row_fails_with_the_reason() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with view.showing():
        view.on_event(approval_event())
        view.note_decision("deploy_1", approved=False, reason="rejected on the terminal")
    assert plain_lines(out)[-1] == " rejected deploy_1 (rejected on the terminal)"


async def test_the_live_view_renders_a_row_awaiting_approval_and_can_pause() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200, force_terminal=True), live=True)
    async with view.showing():
        view.on_event(approval_event())
        async with view.paused():
            view.console.print("approve? [y/N]", markup=False)
        view.note_decision("deploy_1", approved=True, reason="yes")
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())  # no ANSI codes
    assert "│ deploy_1 │ deploy │ awaiting approval │" in text
    assert "approve? [y/N]" in text
    assert "│ deploy_1 │ deploy │ pending │" in text.split("approve? [y/N]")[1]


def delta_event(step: int, text: str) -> RunEvent:
    from agentloop import ModelDelta

    return RunEvent(
        kind=RunEventKind.MODEL_DELTA,
        run_id="run_1",
        seq=1,
        at=time.time(),
        delta=ModelDelta(step=step, text=text),
    )


async def test_the_live_view_shows_the_words_of_the_step_being_written_until_it_ends() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200, force_terminal=True), live=True)
    async with view.showing():
        view.on_event(delta_event(1, "Thought: I will fetch\n"))
        view.on_event(delta_event(1, "the three reports."))
        writing = view.render()
        view.on_event(step_event(1, code="ids = fetch()"))
        done = view.render()
    console = Console(file=io.StringIO(), width=200)
    console.print(writing)
    console.print(done)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    first, second = text.split("controller steps")[1], text.split("controller steps")[2]
    assert "step 1 writing: Thought: I will fetch the three reports." in first
    assert "writing" not in second and "ids = fetch()" in second


async def test_plain_output_prints_a_step_once_not_word_by_word() -> None:
    out = io.StringIO()
    view = RunView(Console(file=out, width=200), live=False)
    async with view.showing():
        view.on_event(delta_event(1, "Thought: "))
        view.on_event(step_event(1, code="x = 1"))
    assert [line.split("): ", 1)[1] for line in plain_lines(out)] == ["x = 1"]
