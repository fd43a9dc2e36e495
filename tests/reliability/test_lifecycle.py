"""Endings: a client that goes away, shutdown while work runs, a loop that closes under a run.

Whatever ends the work, it ends in bounded time: every task reaches a final state, controller
threads stop (no model call after the end), and worker threads end as soon as their call
returns (a thread cannot be killed; it keeps its slot until then).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from agentloop import (
    AgentloopError,
    Limits,
    RegistryClosedError,
    TaskRegistry,
    TaskStatus,
    create_async_agent,
)
from agentloop.asgi import ClientDisconnected, cancel_on_disconnect
from agentloop.core import _bridge
from agentloop.testing import FunctionModel, turn

from .figures import Figures
from .helpers import (
    CONTROLLER_PREFIX,
    LoopThread,
    ThreadGate,
    agentloop_threads,
    assert_all_final,
    uvicorn_server,
    within,
)

START_AND_WAIT = """
stuck = [submit_task("tool", "forever", {"tag": TAG}) for _ in range(3)]
block = submit_task("tool", "blocked", {})  # not `blocked =`: target names are callables now
wait_for_tasks(stuck + [block], max_wait_time=600)
"""


class Started:
    """Counts tasks that started and tasks that saw their cancellation, awaitable on the loop."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0
        self.changed = asyncio.Event()

    async def forever(self, tag: str = "") -> None:
        self.started += 1
        self.changed.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            self.changed.set()
            raise

    async def until(self, *, started: int = 0, cancelled: int = 0, limit: float = 10) -> None:
        async with asyncio.timeout(limit):
            while self.started < started or self.cancelled < cancelled:
                self.changed.clear()
                await self.changed.wait()


def waiting_model(tag: str = "run") -> FunctionModel:
    """Starts work and waits on it for up to 600 s; any later step just keeps going."""

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return START_AND_WAIT.replace("TAG", repr(tag))
        return "print('still going')"

    return FunctionModel(reply)


# -- the client goes away mid-request -----------------------------------------------------------


class RunRequest(BaseModel):
    task: str


@pytest.mark.timeout(60)
async def test_a_client_disconnect_cancels_the_run_and_its_tasks_within_a_second(
    figures: Figures,
) -> None:
    probe = Started()
    ended = asyncio.Event()
    ended_at: list[float] = []
    agent = create_async_agent(tools=[probe.forever], model=waiting_model(), max_steps=4)
    app = FastAPI()

    @app.post("/run")
    async def run(body: RunRequest, request: Request) -> Any:
        """The pattern docs/reliability.md shows: `agentloop.asgi.cancel_on_disconnect`."""
        try:
            return {"answer": await cancel_on_disconnect(request, agent.arun(body.task))}
        except ClientDisconnected:
            return Response(status_code=499)
        finally:
            ended_at.append(time.monotonic())
            ended.set()

    # `blocked` is async here (the shutdown tests cover sync tools); the probe counts all four
    agent.task_manager.register_tools({"blocked": probe.forever})
    async with agent, uvicorn_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        payload = json.dumps({"task": "a long job"}).encode()
        writer.write(
            b"POST /run HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        await probe.until(started=4)
        assert agent.task_manager.get_statistics()["running"] == 4

        gone_at = time.monotonic()
        writer.close()  # the client goes away mid-request
        await within(1.0, ended.wait())
        await within(1.0 - (time.monotonic() - gone_at), probe.until(cancelled=4))
        cancelled_within = ended_at[0] - gone_at
        stats = agent.task_manager.get_statistics()
        assert (stats["running"], stats["pending"], stats["open_scopes"]) == (0, 0, 0)
        assert stats["total_cancelled"] == 4
        assert await agent._controller_threads.settle(5) == 0  # the controller stopped too
        stats = assert_all_final(agent.task_manager)
    assert cancelled_within < 1.0
    figures.tasks(stats)
    figures.survived("client disconnected mid-request", 1)
    figures.measured("disconnect", cancelled_within_s=round(cancelled_within, 3))


# -- shutdown while work runs --------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_aclose_with_runs_in_flight_stops_them_in_bounded_time(figures: Figures) -> None:
    probe = Started()
    gate = ThreadGate(asyncio.get_running_loop())
    runs = 5

    def blocked() -> None:
        gate.pass_through()

    model = waiting_model()
    agent = create_async_agent(
        tools=[probe.forever, blocked],
        model=model,
        max_workers=runs,
        limits=Limits(max_workers=runs, thread_grace=0.5),
        max_steps=20,
    )
    try:
        in_flight = [asyncio.create_task(agent.arun(f"run {i}")) for i in range(runs)]
        await probe.until(started=3 * runs)
        await gate.wait_entered(runs)
        calls_before = model.calls

        started = time.monotonic()
        await within(5, agent.aclose())
        took = time.monotonic() - started
        outcomes = await within(2, asyncio.gather(*in_flight, return_exceptions=True))
        stats = assert_all_final(agent.task_manager)
        assert model.calls == calls_before  # no model call after shutdown
        assert await agent._controller_threads.settle(5) == 0
    finally:
        gate.open()
    await gate.wait_left(runs)
    assert await agent.task_manager._engine.runner.settle(5) == 0
    assert took < 0.5 + 1.5  # the thread grace, plus settling
    assert all(isinstance(o, RegistryClosedError) for o in outcomes), outcomes
    assert "shut down" in str(outcomes[0])
    assert stats["total_cancelled"] == 4 * runs
    figures.tasks(stats)
    figures.survived("aclose() with runs in flight", runs)
    figures.measured("shutdown", aclose_with_5_runs_s=round(took, 3))


@pytest.mark.timeout(60)
def test_shutdown_from_another_thread_while_run_blocks_returns_in_bounded_time(
    figures: Figures,
) -> None:
    started = threading.Event()

    async def forever(tag: str = "") -> None:
        await asyncio.Event().wait()

    async def blocked() -> None:  # submitted last: once it runs, every task was submitted
        started.set()
        await asyncio.Event().wait()

    model = waiting_model()
    agent = create_async_agent(tools=[forever, blocked], model=model, max_steps=20)
    outcome: list[BaseException | object] = []

    def script() -> None:
        try:
            outcome.append(agent.run("a long job"))
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=script, name="script-run")
    runner.start()
    try:
        assert started.wait(10)
        calls_before = model.calls
        began = time.monotonic()
        agent.shutdown()  # from another thread, while run() blocks in wait_for_tasks
        took = time.monotonic() - began
    finally:
        runner.join(10)
    assert not runner.is_alive()
    assert took < 5
    [error] = outcome
    assert isinstance(error, RegistryClosedError), error
    assert model.calls == calls_before
    stats = assert_all_final(agent.task_manager)
    assert stats["total_cancelled"] == 4
    figures.tasks(stats)
    figures.survived("shutdown() from another thread during run()", 1)
    figures.measured("shutdown", shutdown_during_run_s=round(took, 3))


@pytest.mark.timeout(60)
def test_shutdown_from_main_thread_while_a_server_loop_runs_the_agent(figures: Figures) -> None:
    agent = create_async_agent(model=waiting_model(), max_steps=20)
    probe: Started | None = None
    with LoopThread() as server:

        async def setup() -> Started:
            started = Started()  # counts the `blocked` tasks, which each run submits last
            agent.task_manager.register_tools({"forever": Started().forever})
            agent.task_manager.register_tools({"blocked": started.forever})
            return started

        probe = server.call(setup)
        assert server.loop is not None
        runs = [
            asyncio.run_coroutine_threadsafe(agent.arun(f"request {i}"), server.loop)
            for i in range(3)
        ]
        server.call(lambda: probe.until(started=3))
        began = time.monotonic()
        agent.shutdown()
        took = time.monotonic() - began
        errors = [run.exception(5) for run in runs]
        assert server.responsive()
        stats = server.call(lambda: _final_stats(agent.task_manager))
    assert took < 5
    assert all(isinstance(e, RegistryClosedError) for e in errors), errors
    assert stats["total_cancelled"] == 12
    figures.tasks(stats)
    figures.survived("shutdown() while a server loop runs", 3)


async def _final_stats(registry: TaskRegistry) -> dict[str, Any]:
    return assert_all_final(registry)


@pytest.mark.timeout(60)
async def test_registry_aclose_settles_a_flood_of_tasks(figures: Figures) -> None:
    gate = ThreadGate(asyncio.get_running_loop())

    async def forever() -> None:
        await asyncio.Event().wait()

    def blocked() -> None:
        gate.pass_through()

    async def quick(x: Any = None) -> Any:
        return x

    limits = Limits(max_workers=4, target_limits={"quick": 1}, thread_grace=0.2)
    registry = TaskRegistry(tools=[forever, blocked, quick], limits=limits)
    try:
        async with registry.scope() as scope:
            ids = [await scope.submit("tool", "forever") for _ in range(300)]
            ids += [await scope.submit("tool", "blocked") for _ in range(50)]
            ids += [await scope.submit("tool", "quick", {"x": i}) for i in range(300)]
            ids += [
                await scope.submit("tool", "quick", {"x": {"$result_of": ids[i]}})
                for i in range(100)
            ]
            await gate.wait_entered(4)
            began = time.monotonic()
            await within(5, registry.aclose())
            took = time.monotonic() - began
            infos = [scope.get(task_id) for task_id in ids]
    finally:
        gate.open()
    await gate.wait_left(4)
    assert await registry._engine.runner.settle(5) == 0
    assert all(info.status.is_final for info in infos)
    assert {info.status for info in infos[:300]} == {TaskStatus.CANCELLED}
    assert took < 2
    stats = assert_all_final(registry)
    with pytest.raises(RegistryClosedError):
        await registry.submit("tool", "quick")
    figures.tasks(stats)
    figures.survived("registry closed under a flood of tasks", 1)
    figures.measured("shutdown", registry_aclose_750_tasks_s=round(took, 3))


# -- the event loop closes under a controller ----------------------------------------------------


@pytest.mark.timeout(60)
def test_the_loop_closing_under_a_controller_inside_a_tool_call_is_an_error_not_a_hang(
    figures: Figures, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bridge, "_CLOSED_CHECK_INTERVAL", 0.05)  # noticed sooner than 1 s
    errors: list[str] = []

    def record(step: Any, agent: Any = None) -> None:
        if getattr(step, "error", None) is not None:
            errors.append(str(step.error))

    agent = create_async_agent(model=waiting_model(), max_steps=20, step_callbacks=[record])
    loop = asyncio.new_event_loop()
    probe = Started()  # counts the `blocked` task, which the run submits last
    before = set(threading.enumerate())
    agent.task_manager.register_tools({"forever": Started().forever, "blocked": probe.forever})

    async def start_and_leave() -> asyncio.Task[Any]:
        run = asyncio.ensure_future(agent.arun("abandoned"))
        await probe.until(started=1)
        return run  # returns while the controller waits inside `wait_for_tasks`

    abandoned = loop.run_until_complete(start_and_leave())
    controllers = [t for t in agentloop_threads((CONTROLLER_PREFIX,)) if t not in before]
    calls_before = agent.model.calls
    closed_at = time.monotonic()
    loop.close()  # no cancellation reaches the run: the loop is simply gone
    for thread in controllers:
        thread.join(10)
    ended_within = time.monotonic() - closed_at
    assert controllers and not any(t.is_alive() for t in controllers)
    assert ended_within < 3  # noticed at the bridge's next check, then interrupted
    assert agent.model.calls == calls_before  # the controller stopped; no model call after
    assert any("event loop" in e and "RegistryClosedError" in e for e in errors), errors
    # and nothing tried to schedule onto the closed loop (it would log "exception calling
    # callback" from concurrent.futures)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
    # the run is collected with its loop gone: its clean-up must not touch the loop (an error
    # raised while collecting it would surface as an unraisable-exception warning here)
    del abandoned
    gc.collect()
    figures.survived("event loop closed under a controller", 1)
    figures.measured("loop closed", controller_ended_within_s=round(ended_within, 3))


def test_a_bridge_call_after_the_loop_closed_is_an_error_at_once() -> None:
    from agentloop.core._bridge import LoopBridge

    loop = asyncio.new_event_loop()
    bridge = LoopBridge(loop)
    loop.close()

    async def nothing() -> None:
        return None

    began = time.monotonic()
    with pytest.raises(AgentloopError, match="event loop is closed"):
        bridge.call(nothing, timeout=30)
    assert time.monotonic() - began < 0.5
