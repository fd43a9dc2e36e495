"""Nesting, loops and the blocking faces (issue 12, defects 12-17)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from agentloop import AgentloopError, Limits, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel, turn


def task_text(messages: list[Any]) -> str:
    """The run's task: the first user message."""
    users = [m for m in messages if getattr(m.role, "value", m.role) == "user"]
    return str(users[0].content) if users else ""


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


def self_delegating(messages: list[Any]) -> str:
    """The outer run delegates 'leaf' to itself; the leaf answers."""
    if "leaf" in task_text(messages):
        return 'final_answer("leaf done")'
    if turn(messages) == 0:
        return (
            'r = get_task_results([wait_for_tasks([submit_task("managed_agent", "me", '
            '{"task": "leaf"})]).completed[0]])\nfinal_answer(list(r.values()))'
        )
    return 'final_answer("unexpected")'


class BlockingFunctionModel(FunctionModel):
    """Sync-only: its calls take a controller thread, as a blocking model's do."""

    agenerate = None


@pytest.mark.parametrize(
    ("model_class", "bound"),
    [
        (FunctionModel, "max_concurrent_runs"),
        (FunctionModel, "max_controller_threads"),
        (BlockingFunctionModel, "max_controller_threads"),
    ],
)
async def test_an_agent_delegating_to_itself_runs_at_a_limit_of_one(
    model_class: type[FunctionModel], bound: str
) -> None:
    """Defect 12: with max_concurrent_runs=1 the nested run waited for the outer run's slot.
    The same holds for the thread bound: the outer run's code holds the only controller
    thread while it waits for the nested run, whose code (and sync model) needs one."""
    agent = create_async_agent(
        model=model_class(self_delegating), name="me", description="me", **{bound: 1}
    )
    agent.task_manager.register_managed_agents([agent])
    async with agent:
        assert await within(20, agent.arun("go")) == ["leaf done"]


async def test_endless_self_delegation_stops_at_the_depth_limit_with_a_clear_error() -> None:
    """Defect 12: endless self-delegation had no depth limit (then a hang)."""
    code = """
tid = submit_task("managed_agent", "me", {"task": "again"})
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""
    agent = create_async_agent(
        model=ScriptedModel([code]), name="me", description="me", limits=Limits(max_run_depth=3)
    )
    agent.task_manager.register_managed_agents([agent])
    async with agent:
        answer = await within(30, agent.arun("go"))
    assert "NestingTooDeepError" in answer and "max_run_depth" in answer


async def test_a_tool_calling_its_own_agents_blocking_run_fails_fast() -> None:
    """Defect 13: a tool calling its agent's blocking `run()` deadlocked for the whole wait."""
    holder: dict[str, Any] = {}

    def calls_back() -> Any:
        return holder["agent"].run("inner")

    code = """
tid = submit_task("tool", "calls_back")
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""
    agent = create_async_agent(tools=[calls_back], model=ScriptedModel([code]), name="helper")
    holder["agent"] = agent
    answer = await within(20, asyncio.to_thread(agent.run, "go"))
    await asyncio.to_thread(agent.shutdown)
    assert "WouldBlockLoopError" in answer and "arun" in answer


async def test_aclose_from_inside_an_async_tool_does_not_wait_on_its_own_task() -> None:
    """`await agent.aclose()` in one of the agent's own async tools (a shutdown endpoint run
    as a tool) cancelled and then waited for every task, its own included: the whole
    `cancel_grace` on itself. The tool's task is cancelled like the others and ends at once;
    the close goes on to its end."""
    holder: dict[str, Any] = {}
    asked = asyncio.Event()

    async def shuts_down() -> str:
        asked.set()
        await holder["agent"].aclose()
        return "shut"

    code = 'wait_for_tasks([submit_task("tool", "shuts_down")])\nfinal_answer("x")'
    agent = create_async_agent(
        tools=[shuts_down], model=ScriptedModel([code]), limits=Limits(cancel_grace=60)
    )
    holder["agent"] = agent
    with pytest.raises(AgentloopError, match="shut down"):
        await within(20, agent.arun("go"))  # 60 s if the close waited for its own task
    assert asked.is_set()
    await within(5, agent.aclose())  # closed already: returns at once
    assert agent.task_manager.get_statistics()["running"] == 0
    with pytest.raises(AgentloopError, match="shut down"):
        await agent.arun("again")


async def test_shutdown_from_inside_a_tool_does_not_wait_on_its_own_thread() -> None:
    """Defect 14: `shutdown()` in a sync tool made the later close wait out the grace on
    the calling thread itself."""
    holder: dict[str, Any] = {}

    def shuts_down() -> str:
        holder["agent"].shutdown()
        return "shut"

    code = 'wait_for_tasks([submit_task("tool", "shuts_down")])\nfinal_answer("x")'
    agent = create_async_agent(
        tools=[shuts_down], model=ScriptedModel([code]), limits=Limits(thread_grace=60)
    )
    holder["agent"] = agent

    def script() -> Any:
        try:
            return agent.run("go")
        except AgentloopError as exc:
            return exc

    await within(20, asyncio.to_thread(script))  # 60 s if shutdown waited for itself
    with pytest.raises(AgentloopError, match="shut down"):
        await asyncio.to_thread(agent.run, "again")


async def test_an_agent_in_use_on_one_loop_refuses_a_second_loop_clearly() -> None:
    """Defect 15: a second loop re-bound the registry while the first run was open (here: in
    its model call, with no task live), so run A's tasks then started on B's loop."""
    in_model, release = threading.Event(), threading.Event()
    calls = iter(range(1000))

    def slow_first_step(messages: list[Any]) -> str:
        if next(calls) == 0:  # run A's first step, which holds A open with no task live
            in_model.set()
            release.wait(20)
            return 'tid = submit_task("tool", "noop")\nwait_for_tasks([tid])\nfinal_answer("a")'
        return 'final_answer("b")'

    agent = create_async_agent(tools=[noop], model=FunctionModel(slow_first_step))
    first: dict[str, Any] = {}

    def loop_a() -> None:
        first["answer"] = asyncio.run(agent.arun("a"))

    thread_a = threading.Thread(target=loop_a)
    thread_a.start()
    try:
        assert await asyncio.to_thread(in_model.wait, 10)
        with pytest.raises(AgentloopError, match="in use on another event loop"):
            await asyncio.to_thread(asyncio.run, agent.arun("b"))
    finally:
        release.set()
        await asyncio.to_thread(thread_a.join, 20)
    assert first["answer"] == "a"


def noop() -> None:
    return None


async def test_each_session_turn_has_the_task_quota() -> None:
    """Defect 16: a session turn had no task quota."""
    code = """
out = []
for i in range(7):
    try:
        submit_task("tool", "noop")
        out.append("ok")
    except Exception as exc:
        out.append("refused")
final_answer(out)
"""
    agent = create_async_agent(
        tools=[noop], model=ScriptedModel([code, code]), limits=Limits(max_tasks_per_scope=5)
    )
    async with agent, agent.session() as session:
        first = await within(20, session.arun("one"))
        assert first == ["ok"] * 5 + ["refused"] * 2
        second = await within(20, session.arun("two"))
    assert second == ["ok"] * 5 + ["refused"] * 2


async def test_blocking_runs_from_several_threads_are_served_concurrently() -> None:
    """Defect 17: concurrent `agent.run()` calls took turns behind one lock."""
    both_inside = threading.Barrier(2, timeout=10)

    def meet() -> str:
        both_inside.wait()  # passes only if the two runs are in flight at once
        return "met"

    code = """
tid = submit_task("tool", "meet")
wait_for_tasks([tid])
final_answer(get_task_results([tid])[tid])
"""
    agent = create_async_agent(tools=[meet], model=ScriptedModel([code]), max_workers=2)
    answers = await within(
        30, asyncio.gather(*(asyncio.to_thread(agent.run, "go") for _ in range(2)))
    )
    await asyncio.to_thread(agent.shutdown)
    assert answers == ["met", "met"]
