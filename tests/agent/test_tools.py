"""The agent-facing tools, called from a plain thread as the controller's code calls them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentloop import (
    InvalidArgumentsError,
    Limits,
    RegistryClosedError,
    TaskFailure,
    TaskRegistry,
    ToolSettings,
    UnknownTaskError,
    WaitOutcome,
    WouldBlockLoopError,
)
from agentloop.agent.tools import task_tools
from agentloop.core import _bridge
from agentloop.core._bridge import LoopBridge


class Tools:
    """The seven tools of one run, callable by name from a worker thread."""

    def __init__(self, tools: list[Any]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        tool = self._tools[name]
        return await asyncio.to_thread(lambda: tool(*args, **kwargs))


async def slow(seconds: float = 0.0) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


async def broken() -> None:
    raise ValueError("bad data in row 3")


@contextlib.asynccontextmanager
async def run_tools(settings: ToolSettings | None = None) -> AsyncIterator[Tools]:
    registry = TaskRegistry(tools=[slow, broken], limits=Limits(retry_backoff=0))
    async with registry, registry.scope() as scope:
        bridge = LoopBridge(asyncio.get_running_loop(), name="test run")
        yield Tools(task_tools(scope, bridge, settings or ToolSettings()))
        bridge.close()


async def test_submit_returns_the_id_itself_and_results_a_plain_dict() -> None:
    async with run_tools() as tools:
        task_id = await tools.call("submit_task", "tool", "slow", {"seconds": 0})
        assert isinstance(task_id, str)
        outcome = await tools.call("wait_for_tasks", [task_id])
        assert isinstance(outcome, WaitOutcome)
        assert outcome.completed == (task_id,)
        assert await tools.call("get_task_results", [task_id]) == {task_id: "slept 0"}


async def test_forgiving_where_intent_is_clear() -> None:
    async with run_tools() as tools:
        task_id = await tools.call("submit_task", "tool", "slow", '{"seconds": 0}')
        outcome = await tools.call("wait_for_tasks", task_id)  # a single id, not a list
        assert outcome.completed == (task_id,)
        assert await tools.call("get_task_results", task_id) == {task_id: "slept 0"}


async def test_failed_task_result_is_an_unmistakable_failure() -> None:
    async with run_tools() as tools:
        task_id = await tools.call("submit_task", "tool", "broken", None)
        outcome = await tools.call("wait_for_tasks", [task_id])
        assert outcome.failed == (task_id,)
        assert "bad data in row 3" in str(outcome)
        value = (await tools.call("get_task_results", [task_id]))[task_id]
        assert isinstance(value, TaskFailure)
        assert value is not None
        assert not value
        assert "FAILED" in str(value)
        assert "ValueError: bad data in row 3" in str(value)


async def test_wait_honours_max_wait_time_and_names_pending() -> None:
    async with run_tools() as tools:
        task_id = await tools.call("submit_task", "tool", "slow", {"seconds": 30})
        outcome = await tools.call("wait_for_tasks", [task_id], max_wait_time=0.05)
        assert outcome.timed_out
        assert outcome.pending == (task_id,)
        assert "still pending" in str(outcome)


async def test_wait_is_capped_and_says_so() -> None:
    async with run_tools(ToolSettings(max_wait=0.05)) as tools:
        task_id = await tools.call("submit_task", "tool", "slow", {"seconds": 30})
        outcome = await tools.call("wait_for_tasks", [task_id], max_wait_time=3600)
        assert outcome.timed_out
        assert "capped from 3600s to 0.05s" in str(outcome)


async def test_sleep_is_capped_and_says_so() -> None:
    async with run_tools(ToolSettings(max_sleep=0.01)) as tools:
        text = await tools.call("sleep", 5, reason="waiting for data")
        assert text == "slept 0.01s (capped from 5s: the limit is 0.01s) - waiting for data"
        assert await tools.call("sleep", 0) == "slept 0s"


async def test_check_list_and_cancel() -> None:
    async with run_tools() as tools:
        done = await tools.call("submit_task", "tool", "slow", {"seconds": 0}, task_id="quick")
        stuck = await tools.call("submit_task", "tool", "slow", {"seconds": 30})
        await tools.call("wait_for_tasks", [done])
        assert (await tools.call("check_task", done)).startswith("quick: slow completed")
        detail = await tools.call("check_task", done, format="detailed")
        assert "arguments: {'seconds': 0}" in detail
        assert "result: 'slept 0'" in detail
        listing = await tools.call("list_tasks")
        assert "quick: slow completed" in listing and f"{stuck}: slow running" in listing
        assert await tools.call("list_tasks", status_filter="failed") == (
            "no tasks with status failed"
        )
        assert "cancelled" in await tools.call("cancel_task", stuck)


async def test_outputs_shown_to_the_model_are_bounded() -> None:
    async with run_tools(ToolSettings(max_output_chars=200)) as tools:
        ids = [
            await tools.call("submit_task", "tool", "slow", {"seconds": 0}, task_id=f"t{i:03}")
            for i in range(40)
        ]
        await tools.call("wait_for_tasks", ids)
        listing = await tools.call("list_tasks", limit=40)
        assert len(listing) < 260
        assert "more characters not shown" in listing


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("wait_for_tasks", (42,), InvalidArgumentsError),
        ("wait_for_tasks", (["x"], -1), InvalidArgumentsError),
        ("wait_for_tasks", (["x"], 1, "first"), InvalidArgumentsError),
        ("get_task_results", (["missing"],), UnknownTaskError),
        ("check_task", ("missing",), UnknownTaskError),
        ("cancel_task", ("missing",), UnknownTaskError),
        ("list_tasks", ("done",), InvalidArgumentsError),
        ("submit_task", ("tool", "slow", [1, 2]), InvalidArgumentsError),
    ],
)
async def test_bad_input_raises_an_agentloop_error(
    name: str, args: tuple[Any, ...], error: type[Exception]
) -> None:
    async with run_tools() as tools:
        with pytest.raises(error):
            await tools.call(name, *args)


async def test_calls_after_the_run_ended_fail_at_once() -> None:
    registry = TaskRegistry(tools=[slow])
    async with registry:
        scope = registry.open_scope()
        bridge = LoopBridge(asyncio.get_running_loop())
        tools = Tools(task_tools(scope, bridge, ToolSettings()))
        bridge.close()
        with pytest.raises(RegistryClosedError, match="has ended"):
            await tools.call("list_tasks")
        await scope.aclose()


async def test_closing_the_bridge_wakes_a_blocked_tool_call() -> None:
    registry = TaskRegistry(tools=[slow])
    async with registry, registry.scope() as scope:
        bridge = LoopBridge(asyncio.get_running_loop())
        tools = Tools(task_tools(scope, bridge, ToolSettings()))
        sleeper = asyncio.create_task(tools.call("sleep", 30))
        async with asyncio.timeout(5):
            while not bridge._inflight:  # noqa: ASYNC110 - observable state: the call is in
                await asyncio.sleep(0.001)
        bridge.close()
        with pytest.raises(RegistryClosedError, match="shutting down"):
            await asyncio.wait_for(sleeper, 5)


async def test_a_blocking_call_on_the_loop_thread_raises_instead_of_deadlocking() -> None:
    registry = TaskRegistry(tools=[slow])
    async with registry, registry.scope() as scope:
        tools = task_tools(scope, LoopBridge(asyncio.get_running_loop()), ToolSettings())
        list_tasks: Callable[..., Any] = next(t for t in tools if t.name == "list_tasks")
        with pytest.raises(WouldBlockLoopError, match="would deadlock"):
            list_tasks()


def test_bridge_to_a_closed_loop_is_an_error_not_a_hang() -> None:
    loop = asyncio.new_event_loop()
    bridge = LoopBridge(loop)
    loop.close()

    async def nothing() -> None:
        return None

    with pytest.raises(RegistryClosedError, match="closed"):
        bridge.call(nothing, timeout=1)


def test_bridge_notices_a_loop_that_closes_while_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bridge, "_CLOSED_CHECK_INTERVAL", 0.05)  # noticed sooner than 1 s
    loop = asyncio.new_event_loop()
    started = threading.Event()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    bridge = LoopBridge(loop)

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    def stop_loop() -> None:
        started.wait(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    stopper = threading.Thread(target=stop_loop)
    stopper.start()
    with pytest.raises(RegistryClosedError):
        bridge.call(forever, timeout=10)
    stopper.join(5)
