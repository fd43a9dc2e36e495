"""Cancellation is bounded, complete, and survives repetition (issue 12, defects 8-11)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agentloop import Limits, TaskRegistry, TaskStatus, create_async_agent
from agentloop.core._bridge import LoopBridge
from agentloop.testing import FunctionModel, ScriptedModel

from .helpers import ThreadGate, within


def swallows_cancellation_until(release: asyncio.Event) -> Any:
    """An async tool that swallows every cancellation (hostile or buggy) until `release`."""

    async def stubborn() -> str:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return "finally"

    return stubborn


FAN_OUT = """
ids = [submit_task("tool", "slow_cleanup", {"n": i}) for i in range(3)]
wait_for_tasks(ids)
final_answer("unreachable")
"""


async def test_a_second_cancel_does_not_orphan_the_runs_tasks() -> None:
    """Defect 8: the scope was forgotten first and its tasks awaited unshielded, so a second
    cancel (anyio and Starlette re-deliver) left them running with no owner."""
    started = 0
    all_started = asyncio.Event()
    may_finish = asyncio.Event()

    async def slow_cleanup(n: int) -> int:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await may_finish.wait()  # cleanup that takes a moment
        return n

    agent = create_async_agent(
        tools=[slow_cleanup], model=ScriptedModel([FAN_OUT]), limits=Limits(cancel_grace=0.5)
    )
    async with agent:
        run = asyncio.create_task(agent.arun("go"))
        await within(10, all_started.wait())
        run.cancel()
        await asyncio.sleep(0)  # let the first cancel start the scope's teardown
        run.cancel()  # and deliver another, as anyio does
        await within(10, asyncio.wait({run}))
        stats = agent.task_manager.get_statistics()
        # Once the run has returned, none of its tasks is left running without an owner.
        assert (stats["running"], stats["pending"], stats["open_scopes"]) == (0, 0, 0)
        assert stats["total_cancelled"] == 3
        may_finish.set()


async def test_a_tool_that_swallows_cancellation_cannot_hold_the_run() -> None:
    """Defect 9: cancelling the run waited out a tool that swallows `CancelledError`."""
    release = asyncio.Event()
    stubborn = swallows_cancellation_until(release)

    code = 'wait_for_tasks([submit_task("tool", "stubborn")])\nfinal_answer("x")'
    agent = create_async_agent(
        tools=[stubborn], model=ScriptedModel([code]), limits=Limits(cancel_grace=0.2)
    )
    try:
        async with agent:
            with_deadline = asyncio.wait_for(agent.arun("go"), 0.3)
            outcome = await within(10, asyncio.gather(with_deadline, return_exceptions=True))
            assert isinstance(outcome[0], TimeoutError)
            stats = agent.task_manager.get_statistics()
            assert (stats["running"], stats["open_scopes"], stats["abandoned"]) == (0, 0, 1)
            release.set()  # before aclose, which would wait out `thread_grace` (5 s) for it
    finally:
        release.set()


async def test_a_timeout_is_a_deadline_even_for_code_that_swallows_cancellation() -> None:
    """Defect 9: with timeout=0.3 the task was reported *completed* once the tool chose to end."""
    release = asyncio.Event()
    stubborn = swallows_cancellation_until(release)

    async with TaskRegistry(tools=[stubborn], limits=Limits(cancel_grace=0.1)) as registry:
        task_id = await registry.submit("tool", "stubborn", timeout=0.3)
        outcome = await within(10, registry.wait(task_id))
        info = registry.get(task_id)
        assert outcome.failed == (task_id,) and info.status is TaskStatus.TIMED_OUT
        release.set()
    assert registry.get(task_id).status is TaskStatus.TIMED_OUT  # final means final


async def test_cancelling_a_run_stops_its_smolagents_managed_agent() -> None:
    """Defect 10: a managed agent went on calling its model after its run was cancelled."""
    from smolagents import CodeAgent

    first_call = threading.Event()
    calls_at_cancel: list[int] = []

    def never_done(messages: list[Any]) -> str:
        first_call.set()
        return "x = 1"  # never a final answer

    sub_model = FunctionModel(never_done, delay=0.02)
    expert = CodeAgent(
        tools=[], model=sub_model, name="expert", description="never finishes", max_steps=40
    )
    code = 'wait_for_tasks([submit_task("managed_agent", "expert", {"task": "t"})])'
    agent = create_async_agent(managed_agents=[expert], model=ScriptedModel([code]))
    async with agent:
        run = asyncio.create_task(agent.arun("go"))
        await within(10, asyncio.to_thread(first_call.wait, 10))
        run.cancel()
        await asyncio.wait({run})
        calls_at_cancel.append(sub_model.calls)
        assert await agent.task_manager._engine.runner.settle(10) == 0  # the thread ended
    assert sub_model.calls <= calls_at_cancel[0] + 1  # at most the step in flight


async def test_a_nested_wait_abandoned_by_its_thread_leaks_no_worker_slot() -> None:
    """Defect 11: a sync task's nested wait, cut short by its bridge timeout while the inner
    task was busy, took the slot back later for a lease nobody released: at max_workers=1
    every later sync task stayed pending forever."""
    loop = asyncio.get_running_loop()
    gate = ThreadGate(loop)

    def inner() -> str:
        gate.pass_through()
        return "inner"

    def later() -> str:
        return "later"

    registry = TaskRegistry(tools=[inner, later], max_workers=1)
    bridge = LoopBridge(loop)

    def outer() -> str:
        inner_id = bridge.call(lambda: registry.submit("tool", "inner"), timeout=10)
        try:  # the wait outlives its bridge call: cut short while `inner` holds the slot
            bridge.call(lambda: registry.wait(inner_id), timeout=0.2, what="nested wait")
        except Exception:
            return "gave up"
        return "waited"

    registry.register_tools([outer])
    async with registry:
        outer_id = await registry.submit("tool", "outer")
        assert (
            await within(10, registry.result(outer_id))
            if (await within(10, registry.wait(outer_id))).all_completed
            else False
        )
        gate.open()
        await gate.wait_left(1)
        later_id = await registry.submit("tool", "later")
        assert (await within(10, registry.wait(later_id))).all_completed
        assert registry.get_statistics()["workers_in_use"] == 0
