"""The SDK's own servers under load and killed: run by `nox -s mcp` (AGENTLOOP_MCP_HEAVY=1),
skipped in the default suite (each SDK server takes a second or two to start here, and these
start several).

- 20 concurrent runs share one stdio and one Streamable HTTP server (a subprocess under
  uvicorn) with 200 calls in flight: each run gets its own results, nothing logs a cancel
  scope exited in another task (or any error), every subprocess is reaped;
- a stdio server and an HTTP server SIGKILLed mid-call: the call fails naming the server, the
  next call reconnects (the HTTP server restarted on the same port);
- cancelling a call reaches the SDK server's tool as a cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentloop import TaskEventKind, TaskRegistry, TaskStatus, create_async_agent
from agentloop.mcp import MCPServer
from agentloop.testing import FunctionModel

from .conftest import HERE, children, code_in_task, reaped, sdk_server, server_pids

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("AGENTLOOP_MCP_HEAVY") != "1",
        reason="heavy MCP tests: run with `nox -s mcp` (AGENTLOOP_MCP_HEAVY=1)",
    ),
    pytest.mark.timeout(180),
]

RUNS = 20
CALLS_PER_RUN = 10
SLOW_CALL_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def http_server(port: int) -> AsyncIterator[int]:
    """`servers.py` over Streamable HTTP in a subprocess; yields its pid once it listens."""
    process = await anyio.open_process(
        [sys.executable, str(HERE / "servers.py"), "http", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(60):  # its "ready" line: it prints it once uvicorn listens
            seen = b""
            while b"ready\n" not in seen:
                seen += await process.stdout.receive()
        yield process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        await process.aclose()


class Problems(logging.Handler):
    """Every warning or error anything logs, and what the loop's exception handler gets."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")

    def loop_error(self, loop: Any, context: dict[str, Any]) -> None:
        self.seen.append(f"loop: {context.get('message')} {context.get('exception')!r}")


async def test_twenty_runs_share_a_stdio_and_an_http_server_with_200_calls_in_flight(
    tmp_path: Path,
) -> None:
    before = children()
    problems = Problems()
    logging.getLogger().addHandler(problems)
    asyncio.get_running_loop().set_exception_handler(problems.loop_error)
    port = free_port()

    def code(run: int) -> str:
        return f"""
ids = [submit_task("tool", server + "_slow", {{"seconds": {SLOW_CALL_S}, "tag": f"r{run}c{{k}}"}})
       for server in ("sdk", "web") for k in range({CALLS_PER_RUN // 2})]
ids += [submit_task("tool", "sdk_echo_text", {{"text": "run{run}"}}),
        submit_task("tool", "web_echo_text", {{"text": "run{run}", "times": 2}})]
wait_for_tasks(ids, max_wait_time=120)
final_answer(list(get_task_results(ids).values()))
"""

    try:
        async with http_server(port):
            agent = create_async_agent(
                model=FunctionModel(code_in_task),
                mcp_servers=[
                    sdk_server(tmp_path / "marks", max_concurrent=200),
                    MCPServer.http(f"http://127.0.0.1:{port}/mcp", name="web", max_concurrent=200),
                ],
            )
            peak = 0
            async with agent:
                registry = agent.task_manager
                events = registry.events()

                async def count_peak() -> None:
                    nonlocal peak
                    async for event in events:
                        if event.kind is TaskEventKind.STARTED:
                            peak = max(peak, registry.get_statistics()["running"])

                counting = asyncio.create_task(count_peak())
                async with asyncio.timeout(150):
                    answers = await asyncio.gather(*(agent.arun(code(n)) for n in range(RUNS)))
                counting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await counting
                await events.aclose()
                pids = server_pids(registry)
            slow = f"slept {SLOW_CALL_S}"
            for n, answer in enumerate(answers):
                assert answer == [slow] * CALLS_PER_RUN + [f"run{n}", f"run{n}run{n}"]
            assert peak >= RUNS * CALLS_PER_RUN, f"only {peak} calls were in flight at once"
    finally:
        logging.getLogger().removeHandler(problems)
    assert pids and all(reaped(pid) for pid in pids)
    assert children() <= before
    assert not [p for p in problems.seen if "cancel scope" in p.lower()]
    # The watchdog's "loop was blocked" warning measures the machine as much as the code: on
    # 2 shared cores another process's burst stalls the loop past its threshold now and then
    # (seen in CI while other work ran). Loop stalls are measured by the reliability suite
    # and the bench; here every other warning or error still fails the test.
    assert [p for p in problems.seen if "event loop was blocked" not in p] == []


async def test_a_killed_stdio_sdk_server_fails_the_call_and_the_next_call_reconnects() -> None:
    async with TaskRegistry(mcp_servers=[sdk_server(reconnect_backoff=0.05)]) as registry:
        pid_task = await registry.submit("tool", "pid")
        await registry.wait(pid_task, timeout=30)
        pid = registry.get(pid_task).result
        slow = await registry.submit("tool", "slow", {"seconds": 30, "tag": "killed"})
        await until_progress(registry, slow)
        os.kill(pid, signal.SIGKILL)
        await registry.wait(slow, timeout=30)
        error = registry.get(slow).error or ""
        assert "MCP server `sdk` (stdio: " in error
        assert "was killed by SIGKILL while `slow` was running; the next call reconnects." in error
        again = await registry.submit("tool", "add", {"a": 1, "b": 2})
        await registry.wait(again, timeout=60)
        assert registry.get(again).result == 3
        pids = server_pids(registry)
    assert len(pids) == 2 and all(reaped(p) for p in pids)


async def test_an_http_server_killed_mid_call_and_restarted_is_reconnected() -> None:
    port = free_port()
    server = MCPServer.http(
        f"http://127.0.0.1:{port}/mcp", name="web", reconnect_attempts=5, reconnect_backoff=0.2
    )
    registry = TaskRegistry(mcp_servers=[server])
    try:
        async with http_server(port) as pid:
            await registry.refresh_targets()
            slow = await registry.submit("tool", "slow", {"seconds": 30, "tag": "killed"})
            await until_progress(registry, slow)
            os.killpg(pid, signal.SIGKILL)
            await registry.wait(slow, timeout=60)
        info = registry.get(slow)
        assert info.status is TaskStatus.FAILED
        assert info.error is not None
        assert info.error.startswith("MCPServerError: MCP server `web` (http: http://127.0.0.1")
        assert info.error.endswith(
            "closed the connection while `slow` was running; the next call reconnects."
        )
        async with http_server(port):
            again = await registry.submit("tool", "add", {"a": 1, "b": 2})
            await registry.wait(again, timeout=60)
            assert registry.get(again).result == 3, registry.get(again).error
    finally:
        await registry.aclose()


async def test_cancelling_a_call_cancels_the_sdk_servers_tool(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    async with TaskRegistry(mcp_servers=[sdk_server(marks)]) as registry:
        slow = await registry.submit("tool", "slow", {"seconds": 30, "tag": "stopped"})
        await until_progress(registry, slow)
        await registry.cancel(slow)
    lines = marks.read_text().splitlines()  # complete: the server has exited
    assert lines == ["started stopped", "cancelled stopped"]


async def until_progress(registry: TaskRegistry, task_id: str) -> None:
    """Wait (on the event stream) for the task's first progress: the call is on the server."""
    events = registry.events()
    async with asyncio.timeout(60):
        while registry.get(task_id).progress is None:
            event = await anext(events)
            if event.kind is TaskEventKind.PROGRESS and event.task_id == task_id:
                break
    await events.aclose()
