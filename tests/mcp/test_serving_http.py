"""An agent served over MCP's Streamable HTTP (uvicorn on 127.0.0.1, a free port, in this
process), called by the SDK's own `ClientSession`: tools, answers, progress, cancellation,
MCP tasks polled to completion and cancelled, concurrent calls, auth and DNS-rebinding
protection, typed answers. In the default suite: each test takes well under a second."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from agentloop.mcp import agent_server, streamable_http_app
from mcp import ClientSession

from . import served_agent
from .served_agent import Invoice, make_agent
from .served_client import cancel_task, get_task, list_tasks, start_task, task_result, text

pytestmark = pytest.mark.timeout(30)

TOKEN = "a-token-of-at-least-16-chars"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    try:
        with anyio.fail_after(10):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)  # uvicorn has no started event to wait on
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def client(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    http = create_mcp_http_client(headers=headers)
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with served(streamable_http_app(make_agent(), owns_agent=True)) as address:
        yield address


async def test_the_agent_is_one_tool_that_answers_with_progress(url: str) -> None:
    async with client(url) as session:
        assert session.initialize_result is not None
        assert session.initialize_result.capabilities.tasks is not None
        (tool,) = (await session.list_tools()).tools
        assert tool.name == "helper"
        assert tool.input_schema["required"] == ["task"]
        assert tool.execution is not None and tool.execution.task_support == "optional"

        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        result = await session.call_tool(
            "helper", {"task": "parallel 3"}, progress_callback=on_progress
        )
        assert text(result) == "6" and not result.is_error
        values = [value for value, _ in progress]
        assert values == sorted(values) and len(set(values)) == len(values)  # only grows
        assert progress[-1][1] == "2 model steps, 3/3 tasks done" and len(progress) == 5


async def test_wrong_arguments_are_a_tool_error_the_model_can_read(url: str) -> None:
    async with client(url) as session:
        result = await session.call_tool("helper", {"prompt": "x"})
        assert result.is_error and "unknown argument(s) prompt" in text(result)
        with pytest.raises(MCPError, match="unknown tool `other`"):
            await session.call_tool("other", {"task": "echo x"})


async def test_cancelling_the_call_cancels_the_run(url: str) -> None:
    hooks = served_agent.HOOKS
    async with client(url) as session:
        async with anyio.create_task_group() as group:
            group.start_soon(session.call_tool, "helper", {"task": "block"})
            await hooks.started.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(10):
            await hooks.cancelled_event.wait()  # the tool saw CancelledError
        assert hooks.cancelled == ["block"]
        assert text(await session.call_tool("helper", {"task": "echo after"})) == "echo: after"


async def test_a_task_augmented_call_is_polled_to_its_result(url: str) -> None:
    hooks = served_agent.HOOKS
    async with client(url) as session:
        task = await start_task(session, "gate")
        assert task.status == "working" and task.ttl == 60_000
        await hooks.started.wait()
        assert (await get_task(session, task.task_id)).status == "working"
        assert [t.task_id for t in (await list_tasks(session)).tasks] == [task.task_id]
        hooks.release.set()
        result = await task_result(session, task.task_id)  # waits for the end
        assert text(result) == "released"
        assert result.meta == {"io.modelcontextprotocol/related-task": {"taskId": task.task_id}}
        assert (await get_task(session, task.task_id)).status == "completed"
        with pytest.raises(MCPError, match="no task `nope`"):
            await get_task(session, "nope")


async def test_cancelling_a_task_cancels_its_run(url: str) -> None:
    hooks = served_agent.HOOKS
    async with client(url) as session:
        task = await start_task(session, "block")
        await hooks.started.wait()
        cancelled = await cancel_task(session, task.task_id)
        assert cancelled.status == "cancelled"
        assert hooks.cancelled == ["block"]
        with pytest.raises(MCPError, match="was cancelled"):
            await task_result(session, task.task_id)
        with pytest.raises(MCPError, match="already cancelled"):
            await cancel_task(session, task.task_id)


async def test_concurrent_calls_are_concurrent_runs(url: str) -> None:
    async with client(url) as session, client(url) as other:
        calls = [(s, f"echo {i}") for i, s in enumerate([session, other] * 5)] + [
            (session, "parallel 4"),
            (other, "parallel 2"),
        ]
        results = await asyncio.gather(
            *(s.call_tool("helper", {"task": task}) for s, task in calls)
        )
        answers = [text(r) for r in results]
        assert answers == [f"echo: {i}" for i in range(10)] + ["12", "2"]


async def test_an_auth_hook_guards_the_server_and_owns_its_tasks() -> None:
    from agentloop.serve import bearer_tokens

    auth = bearer_tokens({TOKEN: "alice", "another-token-of-16-chars": "bob"})
    async with served(streamable_http_app(make_agent(), owns_agent=True, auth=auth)) as url:
        async with httpx.AsyncClient() as plain:
            refused = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            rebinding = await plain.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Host": "evil.example:80", "Authorization": f"Bearer {TOKEN}"},
            )
            assert rebinding.status_code in (403, 421)
        alice = {"Authorization": f"Bearer {TOKEN}"}
        bob = {"Authorization": "Bearer another-token-of-16-chars"}
        async with client(url, alice) as session, client(url, bob) as intruder:
            task = await start_task(session, "echo mine")
            assert text(await task_result(session, task.task_id)) == "echo: mine"
            with pytest.raises(MCPError, match="no task"):
                await get_task(intruder, task.task_id)
            assert (await list_tasks(intruder)).tasks == []


async def test_a_typed_agent_answers_with_structured_content() -> None:
    server = agent_server(make_agent(), output_type=Invoice, owns_agent=True)
    app = server.streamable_http_app(streamable_http_path="/mcp")
    async with served(app) as url, client(url) as session:
        (tool,) = (await session.list_tools()).tools
        assert tool.output_schema is not None
        assert set(tool.output_schema["properties"]) == {"number", "total"}
        result = await session.call_tool("helper", {"task": "invoice"})
        assert result.structured_content == {"number": "F-7", "total": 12.5}
