"""Faults, limits and the lifecycle of sessions, against servers that start in milliseconds
(`tiny_server.py`, `bad_servers.py`); the same against the SDK's own servers runs in
`nox -s mcp` (test_heavy.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import mcp  # noqa: F401 - imported once here: the loop-lag probes measure calls, not that
from agentloop import MCPServerError, TaskEventKind, TaskRegistry, TaskStatus
from tests.reliability.helpers import LoopLagProbe

from .conftest import bad_server, children, reaped, server_pids, tiny_server


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def until_arrived(registry: TaskRegistry, count: int) -> None:
    """Wait (on the event stream) until `count` calls have arrived at their servers: the tiny
    server sends a progress notification as a call arrives."""
    events = registry.events()
    arrived = sum(info.progress is not None for info in registry.list())
    async with asyncio.timeout(10):
        while arrived < count:
            event = await anext(events)
            arrived += event.kind is TaskEventKind.PROGRESS
    await events.aclose()


async def test_a_server_killed_mid_call_fails_that_call_naming_it_and_the_next_call_reconnects(
    tmp_path: Path,
) -> None:
    other = tiny_server(name="other")
    async with TaskRegistry(mcp_servers=[tiny_server(tmp_path / "marks"), other]) as registry:
        assert registry.tool_names == [
            "tiny_add", "tiny_big", "tiny_hold", "other_add", "other_big", "other_hold",
        ]  # fmt: skip
        held = await registry.submit("tool", "tiny_hold", {"seconds": 30})
        elsewhere = await registry.submit("tool", "other_hold", {"seconds": 0.2})
        await until_arrived(registry, 2)
        first = server_pids(registry)[0]
        os.kill(first, signal.SIGKILL)
        await within(10, registry.wait([held, elsewhere]))

        failed = registry.get(held)
        assert failed.status is TaskStatus.FAILED
        assert failed.error is not None
        assert failed.error.startswith("MCPServerError: MCP server `tiny` (stdio: ")
        assert "was killed by SIGKILL while `hold` was running; the next call reconnects" in (
            failed.error
        )
        assert registry.get(elsewhere).result == "held"  # the other server never noticed

        again = await registry.submit("tool", "tiny_add", {"a": 2, "b": 3})
        await within(10, registry.wait(again))
        assert registry.get(again).result == "5"
        pids = server_pids(registry)
        assert len(pids) == 3 and pids[0] == first  # tiny, other, then tiny again
    assert all(reaped(pid) for pid in pids)


async def test_the_call_timeout_is_a_deadline_that_cancels_the_call_on_the_server(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    server = tiny_server(marks, call_timeout=0.3)
    async with TaskRegistry(mcp_servers=[server]) as registry:
        started = time.monotonic()
        task = await registry.submit("tool", "hold", {"seconds": 30})
        await within(10, registry.wait(task))
        took = time.monotonic() - started
        info = registry.get(task)
        quick = await registry.submit("tool", "add", {"a": 1, "b": 1})
        await within(10, registry.wait(quick))
        assert registry.get(quick).result == "2"  # the session outlives a timed-out call
    assert info.status is TaskStatus.FAILED
    assert info.error == (
        "MCPServerError: `hold` on MCP server `tiny` did not answer within 0.3s (the server's "
        "call_timeout); it was cancelled on the server."
    )
    assert took < 5
    lines = marks.read_text().splitlines()  # complete: the server has exited
    request = next(line.split()[2] for line in lines if line.startswith("call hold"))
    assert f"cancelled {request}" in lines


async def test_cancelling_a_task_cancels_the_call_on_the_server_and_frees_its_slot_at_once(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    async with TaskRegistry(mcp_servers=[tiny_server(marks, max_concurrent=1)]) as registry:
        holding = await registry.submit("tool", "hold", {"seconds": 30})
        await until_arrived(registry, 1)
        queued = await registry.submit("tool", "add", {"a": 20, "b": 22})
        assert registry.get(queued).status is TaskStatus.PENDING  # the server's one slot is taken
        started = time.monotonic()
        cancelled = await within(10, registry.cancel(holding))
        await within(10, registry.wait(queued))
        assert time.monotonic() - started < 2
        assert cancelled.status is TaskStatus.CANCELLED
        assert registry.get(queued).result == "42"
    lines = marks.read_text().splitlines()
    request = next(line.split()[2] for line in lines if line.startswith("call hold"))
    assert f"cancelled {request}" in lines


async def test_max_concurrent_bounds_the_calls_in_flight_per_server() -> None:
    async with TaskRegistry(mcp_servers=[tiny_server(max_concurrent=2)]) as registry:
        ids = [await registry.submit("tool", "hold", {"seconds": 30}) for _ in range(4)]
        await until_arrived(registry, 2)
        statuses = [registry.get(task_id).status for task_id in ids]
        assert statuses.count(TaskStatus.RUNNING) == 2
        assert statuses.count(TaskStatus.PENDING) == 2
        for task_id in ids:
            await within(10, registry.cancel(task_id))


@pytest.mark.parametrize(
    ("mode", "wait", "expected"),
    [
        ("silent", 0.5, "did not answer `initialize` within 0.5s (its connect_timeout)."),
        ("garbage", 0.5, "It wrote 1 line(s) that are not JSON-RPC on stdout (the first: "),
        (
            "crash",
            8,
            "exited with code 3 before it was initialized. Its stderr ended with: fatal: ",
        ),
        ("flood", 8, "sent a message longer than 1048576 bytes (its max_message_bytes)"),
    ],
)
async def test_a_misbehaving_server_gives_a_clear_error_in_bounded_time_without_stalling_the_loop(
    mode: str, wait: float, expected: str
) -> None:
    before = children()
    server = bad_server(mode, connect_timeout=wait, max_message_bytes=1 << 20)
    registry = TaskRegistry(mcp_servers=[server])
    started = time.monotonic()
    async with LoopLagProbe() as probe:
        with pytest.raises(MCPServerError) as failure:
            await within(10, registry.__aenter__())
        await registry.aclose()
    assert time.monotonic() - started < 9
    assert f"MCP server `{mode}` (stdio: " in str(failure.value)
    assert expected in str(failure.value)
    assert probe.worst < 0.25, f"the loop stalled {probe.worst:.3f}s"
    assert children() <= before  # nothing left running, nothing left unreaped


async def test_an_enormous_result_fails_its_call_clearly_and_the_server_is_used_again() -> None:
    server = tiny_server(max_message_bytes=8 << 20)
    async with TaskRegistry(mcp_servers=[server]) as registry:
        async with LoopLagProbe() as probe:
            huge = await registry.submit("tool", "big", {"size": 12 << 20})
            await within(20, registry.wait(huge))
            fine = await registry.submit("tool", "big", {"size": 6 << 20})  # parsed off the loop
            await within(20, registry.wait(fine))
        error = registry.get(huge).error
        assert error is not None
        assert "sent a message longer than 8388608 bytes (its max_message_bytes)" in error
        assert registry.get(fine).result == "x" * (6 << 20)
    assert probe.worst < 0.25, f"the loop stalled {probe.worst:.3f}s"


async def test_connecting_is_retried_with_backoff_and_the_last_error_says_how_often() -> None:
    server = bad_server("crash", reconnect_attempts=2, reconnect_backoff=0.01)
    registry = TaskRegistry(mcp_servers=[server])
    with pytest.raises(MCPServerError, match=r"exited with code 3 .* \(after 3 attempts\)$"):
        await within(10, registry.__aenter__())
    await registry.aclose()


async def test_sessions_close_with_the_registry_and_every_subprocess_is_reaped() -> None:
    before = children()
    registry = TaskRegistry(mcp_servers=[tiny_server(), tiny_server(name="second")])
    await registry.refresh_targets()
    pids = server_pids(registry)
    assert len(pids) == 2 and set(pids) <= children()
    task = await registry.submit("tool", "tiny_hold", {"seconds": 30})
    await until_arrived(registry, 1)
    await within(10, registry.aclose())
    assert registry.get(task).status is TaskStatus.CANCELLED
    assert all(reaped(pid) for pid in pids)
    assert children() <= before


async def test_sessions_open_at_async_with_agent_or_else_when_the_first_run_starts() -> None:
    from agentloop import create_async_agent
    from agentloop.testing import FunctionModel

    from .conftest import code_in_task

    lazy = create_async_agent(model=FunctionModel(code_in_task), mcp_servers=[tiny_server()])
    assert server_pids(lazy.task_manager) == []  # creating an agent starts nothing
    try:
        assert await within(20, lazy.arun("final_answer(add(a=20, b=22))")) == "42"
        assert len(server_pids(lazy.task_manager)) == 1
    finally:
        await lazy.aclose()
    eager = create_async_agent(model=FunctionModel(code_in_task), mcp_servers=[tiny_server()])
    async with eager:
        assert len(server_pids(eager.task_manager)) == 1  # started (and listed) on entry
        assert eager.task_manager.tool_names == ["add", "big", "hold"]
    assert all(
        reaped(pid) for pid in server_pids(lazy.task_manager) + server_pids(eager.task_manager)
    )
