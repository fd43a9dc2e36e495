"""Direct calls: every registered target is callable by name from the controller's code, as a
foreground task of the run (issue 13)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from smolagents import CodeAgent

from agentloop import InvalidArgumentsError, TaskEventKind, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel, turn


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


def analyze_dataset(name: str, depth: int = 1) -> dict[str, object]:
    """Summary statistics of one dataset."""
    return {"name": name, "depth": depth}


def broken(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


async def test_a_direct_call_returns_the_result_and_is_a_task_of_the_run() -> None:
    code = """
by_keyword = analyze_dataset(name="sales")
by_position = analyze_dataset("costs", 2)
final_answer([by_keyword, by_position, list_tasks()])
"""
    agent = create_async_agent(tools=[analyze_dataset], model=ScriptedModel([code]))
    async with agent:
        by_keyword, by_position, listing = await within(20, agent.arun("go"))
        stats = agent.task_manager.get_statistics()
    assert by_keyword == {"name": "sales", "depth": 1}
    assert by_position == {"name": "costs", "depth": 2}
    assert "analyze_dataset_1: analyze_dataset completed" in listing
    assert (stats["total_submitted"], stats["total_completed"]) == (2, 2)


def last_observation(messages: list[Any]) -> str:
    return str(messages[-1].content)


async def test_bad_arguments_and_failures_are_observations_and_the_model_corrects_itself() -> None:
    seen: list[str] = []

    def model(messages: list[Any]) -> str:
        step = turn(messages)
        if step == 0:
            return 'analyze_dataset(nme="sales")'
        seen.append(last_observation(messages))
        if step == 1:
            return "broken(3)"
        return 'final_answer(analyze_dataset(name="sales"))'

    agent = create_async_agent(tools=[analyze_dataset, broken], model=FunctionModel(model))
    async with agent:
        answer = await within(20, agent.arun("go"))
    assert answer == {"name": "sales", "depth": 1}
    assert "has no input `nme`" in seen[0] and "Did you mean `name`?" in seen[0]
    assert "analyze_dataset(name: string, depth: integer = 1)" in seen[0]
    assert "`broken` failed" in seen[1] and "ValueError: cannot handle 3" in seen[1]


async def test_a_managed_agent_called_directly_runs_on_a_fresh_copy() -> None:
    expert = CodeAgent(
        tools=[],
        model=ScriptedModel(["final_answer('model trained')"]),
        name="ml_expert",
        description="Trains models.",
        verbosity_level=-1,
    )
    code = 'final_answer(ml_expert(task="train a model"))'
    agent = create_async_agent(managed_agents=[expert], model=ScriptedModel([code]))
    async with agent:
        assert "model trained" in await within(20, agent.arun("go"))
    assert expert.memory.steps == []  # the original never ran


async def test_direct_calls_share_max_workers_across_concurrent_runs() -> None:
    """Two runs call a sync tool directly at max_workers=1: the calls never overlap."""
    inside, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def work() -> str:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        release.wait(20)
        with lock:
            inside -= 1
        return "done"

    agent = create_async_agent(
        tools=[work], model=ScriptedModel(["final_answer(work())"]), max_workers=1
    )
    async with agent:
        events = agent.task_manager.events()
        runs = [asyncio.create_task(agent.arun("go")) for _ in range(2)]
        kinds: list[TaskEventKind] = []
        async with asyncio.timeout(20):  # both submitted, one started, the other queued
            async for event in events:
                kinds.append(event.kind)
                if kinds.count(TaskEventKind.SUBMITTED) == 2 and TaskEventKind.STARTED in kinds:
                    break
        assert kinds.count(TaskEventKind.STARTED) == 1
        release.set()
        assert await within(20, asyncio.gather(*runs)) == ["done", "done"]
    assert peak == 1


async def test_cancelling_the_run_cancels_a_direct_call_in_flight() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    agent = create_async_agent(tools=[forever], model=ScriptedModel(["forever()"]))
    async with agent:
        run = asyncio.create_task(agent.arun("go"))
        await within(10, started.wait())
        run.cancel()
        await asyncio.wait({run})
        stats = agent.task_manager.get_statistics()
    assert (stats["total_cancelled"], stats["running"]) == (1, 0)


@pytest.mark.parametrize("name", ["submit_task", "final_answer", "print", "len"])
def test_a_target_name_that_would_shadow_a_tool_or_builtin_is_refused(name: str) -> None:
    def tool() -> None:
        return None

    with pytest.raises(InvalidArgumentsError, match=f"`{name}`"):
        create_async_agent(tools={name: tool}, model=ScriptedModel([]))
