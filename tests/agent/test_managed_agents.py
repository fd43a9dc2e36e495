"""Managed agents run on fresh copies, concurrently, and nest without deadlock."""

from __future__ import annotations

import threading

from smolagents import CodeAgent

from agentloop import TaskRegistry, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel, turn


def make_expert(barrier: threading.Barrier | None = None) -> CodeAgent:
    """A smolagents CodeAgent whose answer is how many turns its memory already held."""

    def rendezvous() -> str:
        """Wait until both copies are inside at the same time."""
        if barrier is not None:
            barrier.wait(timeout=10)
        return "met"

    from smolagents import tool

    @tool
    def meet() -> str:
        """Meet the other copy.

        Returns:
            str: a greeting.
        """
        return rendezvous()

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return "met = meet()\nfinal_answer(f'turns before me: 0, {met}')"
        return "final_answer('unexpected second turn')"

    return CodeAgent(
        tools=[meet],
        model=FunctionModel(reply),
        name="ml_expert",
        description="Builds machine-learning models.",
        max_steps=4,
        verbosity_level=-1,
    )


async def test_same_managed_agent_twice_runs_concurrently_with_separate_memory() -> None:
    barrier = threading.Barrier(2)
    expert = make_expert(barrier)
    async with TaskRegistry(managed_agents=[expert], max_workers=2) as registry:
        ids = [
            await registry.submit("managed_agent", "ml_expert", {"task": f"model {i}"})
            for i in range(2)
        ]
        outcome = await registry.wait(ids, timeout=20)
        results = await registry.results(ids)
    assert outcome.all_completed, outcome
    for value in results.values():
        assert "turns before me: 0, met" in value  # each copy started with empty memory
    assert expert.memory.steps == []  # the original was never run
    assert expert.step_number == 0


async def test_copies_keep_configuration_but_not_state() -> None:
    from agentloop.core._isolation import isolated_copy

    expert = make_expert()
    expert.state["leftover"] = 1
    copy = isolated_copy(expert)
    assert copy is not expert
    assert copy.model is expert.model
    assert copy.max_steps == expert.max_steps == 4
    assert copy.memory is not expert.memory
    assert copy.state == {}
    assert copy.python_executor is not expert.python_executor
    assert copy.python_executor.timeout_seconds == expert.python_executor.timeout_seconds
    assert copy.monitor is not expert.monitor
    assert set(copy.tools) == set(expert.tools)


async def test_async_agent_as_managed_agent_nests_at_one_worker_per_level() -> None:
    def leaf(n: int) -> int:
        return n * n

    inner_code = """
ids = [submit_task("tool", "leaf", {"n": i}) for i in range(1, 4)]
wait_for_tasks(ids)
final_answer(sum(get_task_results(ids).values()))
"""
    inner = create_async_agent(
        tools=[leaf],
        model=ScriptedModel([inner_code]),
        max_workers=1,
        name="squares",
        description="Sums squares with its own fan-out.",
    )
    outer_code = """
ids = [submit_task("managed_agent", "squares", {"task": f"part {i}"}) for i in range(2)]
outcome = wait_for_tasks(ids, max_wait_time=30)
final_answer(list(get_task_results(ids).values()))
"""
    outer = create_async_agent(
        managed_agents=[inner], model=ScriptedModel([outer_code]), max_workers=1
    )
    async with outer, inner:
        assert await outer.arun("fan out inside fan out") == [14, 14]
        assert inner.task_manager.get_statistics()["total_completed"] == 6
