"""A session turn is a run like any other: `session.arun` / `session.astream` behave as
`agent.arun` / `agent.astream` do (nested approvals relayed, a shutdown reported as such,
`max_buffered=` honoured) and take the same parameters, bar the agent-only durable-run ones.

Each scenario runs on both faces: `agent` (today's reference behaviour) and `session`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentloop import (
    AgentSession,
    AsyncAgent,
    RegistryClosedError,
    RunEventKind,
    RunStream,
    TaskEventKind,
    create_async_agent,
)
from agentloop.testing import ScriptedModel

K = RunEventKind


FACES = ["agent", "session"]
"""The two faces of a run's turn: `agent.arun`/`astream`, and a session's."""


@contextlib.asynccontextmanager
async def face_of(agent: AsyncAgent, face: str) -> AsyncIterator[Any]:
    """What runs one turn: the agent itself, or a session of it."""
    if face == "agent":
        yield agent
        return
    async with agent.session() as session:
        yield session


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


# -- 1. approval requests of a nested (managed) agent reach the stream ---------------------------


async def deploy(env: str) -> str:
    return f"deployed to {env}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("face", FACES)
async def test_a_managed_agents_approval_request_reaches_the_turns_stream(face: str) -> None:
    released = asyncio.Event()

    async def marker() -> str:
        """Completes once the test saw the nested request: a fence in the stream's order."""
        await released.wait()
        return "fence"

    child = create_async_agent(
        tools=[deploy],
        model=ScriptedModel(['final_answer(deploy(env="prod"))']),
        name="ops",
        description="Deploys things.",
        needs_approval={"deploy"},
    )
    code = """
tid = submit_task("managed_agent", "ops", {"task": "deploy to prod"})
fence = submit_task("tool", "marker", {})
wait_for_tasks([tid, fence], return_when="all")
final_answer(get_task_results([tid])[tid])
"""
    parent = create_async_agent(
        managed_agents=[child], tools=[marker], model=ScriptedModel([code]), name="lead"
    )
    async with child, parent, face_of(parent, face) as runner:
        child_events = child.task_manager.events()
        async with runner.astream("ship") as stream:
            async for event in child_events:  # the nested run asks, on its own registry
                if event.kind is TaskEventKind.APPROVAL_REQUESTED:
                    break
            # A relay pushes the request onto the stream in the same loop step as that event,
            # so it comes before the fence's completion, which only starts now.
            released.set()
            seen: list[Any] = []
            async for event in stream:
                seen.append(event)
                if event.kind is K.TASK_COMPLETED and event.task_event.target == "marker":
                    break
            asked = [e for e in seen if e.kind is K.APPROVAL_REQUESTED]
            assert asked, f"no approval_requested event before the fence: {[e.kind for e in seen]}"
            assert asked[0].extra["asked_by"] == ["lead", "ops"]
            assert asked[0].task_event.target == "deploy"
            stream.approve(asked[0].extra["approval_id"])
            assert await within(5, stream.result()) == "deployed to prod"


# -- 2. a shutdown during a turn says so ---------------------------------------------------------


HOLD = """
tid = submit_task("tool", "hold", {})
wait_for_tasks([tid])
final_answer("should not get here")
"""


@pytest.mark.timeout(10)
@pytest.mark.parametrize("face", FACES)
async def test_aclose_during_a_turn_raises_registry_closed(face: str) -> None:
    started = asyncio.Event()

    async def hold() -> None:
        started.set()
        await asyncio.Event().wait()

    agent = create_async_agent(tools=[hold], model=ScriptedModel([HOLD]), max_steps=3)
    try:
        async with face_of(agent, face) as runner:
            turn = asyncio.ensure_future(runner.arun("a long job"))
            await within(5, started.wait())
            await within(5, agent.aclose())
            with pytest.raises(RegistryClosedError, match="shut down"):
                await within(5, turn)
    finally:
        await agent.aclose()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("face", FACES)
async def test_aclose_during_a_streamed_turn_raises_registry_closed(face: str) -> None:
    started = asyncio.Event()

    async def hold() -> None:
        started.set()
        await asyncio.Event().wait()

    agent = create_async_agent(tools=[hold], model=ScriptedModel([HOLD]), max_steps=3)
    try:
        async with face_of(agent, face) as runner, runner.astream("a long job") as stream:
            await within(5, started.wait())
            await within(5, agent.aclose())
            with pytest.raises(RegistryClosedError, match="shut down"):
                await within(5, stream.result())
            events = [event async for event in stream]
            assert events[-1].kind is K.RUN_FAILED
            assert "RegistryClosedError" in (events[-1].error or "")
    finally:
        await agent.aclose()


# -- 3. max_buffered= on a turn's stream ---------------------------------------------------------


async def fetch(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


@pytest.mark.timeout(10)
@pytest.mark.parametrize("face", FACES)
async def test_a_slow_consumer_of_a_turn_learns_what_it_missed(face: str) -> None:
    code = """
ids = [submit_task("tool", "fetch", {"n": i}) for i in range(50)]
wait_for_tasks(ids)
final_answer(len(ids))
"""
    agent = create_async_agent(tools=[fetch], model=ScriptedModel([code]))
    async with agent, face_of(agent, face) as runner:
        stream: RunStream = runner.astream("go", max_buffered=20)
        async with stream:
            assert await within(5, stream.result()) == 50  # finished while nobody read
            events = [event async for event in stream]
    assert events[0].kind is K.EVENTS_DROPPED and events[0].dropped == stream.dropped > 100
    assert events[-1].kind is K.FINAL_ANSWER
    assert len(events) <= 22


# -- 4. the same turn parameters -----------------------------------------------------------------

AGENT_ONLY = {
    # A session's turns are journaled under the session's id (docs/durability.md#sessions): a
    # run id to resume, `force` to resume it anyway, and the `RunResult` saying what was
    # replayed belong to runs only (a session takes `session_id` and `force` when opened).
    "arun": {"run_id", "force", "return_full_result"},
    "astream": {"run_id", "force", "labels"},  # a session turn is labelled by its session
}


@pytest.mark.parametrize(
    "method",
    ["arun", "astream"],
)
def test_a_session_turn_takes_the_agents_run_parameters(method: str) -> None:
    agent_params = inspect.signature(getattr(AsyncAgent, method)).parameters
    session_params = inspect.signature(getattr(AgentSession, method)).parameters
    assert AGENT_ONLY[method] <= set(agent_params)  # the exclusions name real parameters
    expected = [p for name, p in agent_params.items() if name not in AGENT_ONLY[method]]
    assert list(session_params.values()) == expected
