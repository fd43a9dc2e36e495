"""Long MCP calls as remote tasks (MCP's tasks extension): a real server written with the SDK
(tests/mcp/task_server.py) over stdio (a subprocess) and over Streamable HTTP (uvicorn on
127.0.0.1, in this process), both with `remote_tasks=True`, and the same server without it.
The SDK's server takes a second or two to start, so these run in `nox -s mcp`
(AGENTLOOP_MCP_HEAVY=1), one agent for the module."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentloop import AsyncAgent, RunEventKind, TaskStatus, create_async_agent
from agentloop.mcp import MCPServer
from agentloop.testing import FunctionModel
from tests.reliability.helpers import uvicorn_server

from .conftest import HERE, children, code_in_task, reaped, server_pids

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("AGENTLOOP_MCP_HEAVY") != "1",
        reason="heavy MCP tests: run with `nox -s mcp` (AGENTLOOP_MCP_HEAVY=1)",
    ),
    pytest.mark.timeout(120),
    pytest.mark.asyncio(loop_scope="module"),
]

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-tasks") / "marks"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def agent(marks: Path) -> AsyncIterator[AsyncAgent]:
    from . import task_server

    task_server.MARKS = str(marks)  # the HTTP server runs in this process
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    before = children()
    stdio = [sys.executable, str(HERE / "task_server.py"), "stdio"]
    async with uvicorn_server(task_server.server.streamable_http_app()) as base:
        agent = create_async_agent(
            model=FunctionModel(code_in_task),
            mcp_servers=[
                MCPServer.stdio(
                    stdio[0],
                    stdio[1:],
                    env={"AGENTLOOP_MCP_MARKS": str(marks)},
                    name="sdk",
                    remote_tasks=True,
                ),
                MCPServer.http(f"{base}/mcp", name="web", remote_tasks=True),
                MCPServer.http(f"{base}/mcp", name="plain"),
            ],
            tracer_provider=provider,
        )
        async with agent:
            yield agent
        pids = server_pids(agent.task_manager)
    assert pids and all(reaped(pid) for pid in pids)
    assert children() <= before


def lines(marks: Path) -> list[str]:
    return marks.read_text().splitlines() if marks.exists() else []


async def run(agent: AsyncAgent, code: str, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        return await agent.arun(code)


@pytest.mark.parametrize("server", ["sdk", "web"])
async def test_submit_returns_at_once_the_model_works_on_and_the_wait_wakes_at_the_end(
    agent: AsyncAgent, marks: Path, server: str
) -> None:
    tag = f"bg-{server}"
    code = f"""
job = submit_task("tool", "{server}_build", {{"seconds": 0.6, "tag": "{tag}"}})
meanwhile = {server}_add(a=2, b=3)
while "remote working" not in check_task(job):
    sleep(0.02)
seen = check_task(job)
wait_for_tasks([job], max_wait_time=20)
final_answer([meanwhile, seen, check_task(job), get_task_results([job])[job]])
"""
    meanwhile, seen, after, result = await run(agent, code)
    assert meanwhile == 5  # a plain call answered while the remote task worked
    assert f"{server}_build running" in seen and "[remote working" in seen
    assert f"{server}_build completed" in after
    assert result == f"built {tag}"
    mine = [line for line in lines(marks) if tag in line]
    assert [line.split()[0] for line in mine] == ["created", "done"]  # once, as a remote task


async def test_cancel_task_cancels_the_remote_task_on_the_server(
    agent: AsyncAgent, marks: Path
) -> None:
    code = """
job = submit_task("tool", "web_build", {"seconds": 30, "tag": "cx"})
while "remote working" not in check_task(job):
    sleep(0.02)
cancel_task(job)
wait_for_tasks([job], max_wait_time=10)
final_answer(check_task(job))
"""
    shown = await run(agent, code)
    assert "cancelled" in shown
    mine = [line.split()[0] for line in lines(marks) if " cx" in line]
    assert mine == ["created", "cancelled"]


async def test_the_remote_status_is_the_tasks_progress_in_check_task_and_the_stream(
    agent: AsyncAgent,
) -> None:
    code = """
job = submit_task("tool", "sdk_build", {"seconds": 0.3, "tag": "st"})
wait_for_tasks([job], max_wait_time=20)
final_answer(check_task(job, format="detailed"))
"""
    progress = []
    async with agent.astream(code) as stream:
        async for event in stream:
            if event.kind is RunEventKind.TASK_PROGRESS:
                progress.append(event.to_dict()["task_event"]["progress"]["message"])
        detail = await stream.result()
    assert progress[0] in ("remote working: queued", "remote working: step 1 of 4")
    assert "remote working: step 4 of 4" in progress
    assert progress[-1] == "remote completed: done"
    assert "  progress: remote completed: done" in detail


async def test_a_tool_error_in_a_remote_task_fails_the_task_with_its_text(
    agent: AsyncAgent,
) -> None:
    code = """
job = submit_task("tool", "web_build", {"seconds": 0.05, "tag": "oops", "fail": True})
wait_for_tasks([job], max_wait_time=20)
final_answer(str(get_task_results([job])[job]))
"""
    text = await run(agent, code)
    assert "MCPToolError" in text and "oops broke" in text


async def test_a_server_without_remote_tasks_keeps_plain_calls(
    agent: AsyncAgent, marks: Path
) -> None:
    result = await run(agent, 'final_answer(plain_build(seconds=0.05, tag="flat"))')
    assert result == "built flat"
    assert [line for line in lines(marks) if "flat" in line] == ["plain flat"]


async def test_the_call_span_names_the_remote_task(agent: AsyncAgent, marks: Path) -> None:
    EXPORTER.clear()
    await run(agent, 'final_answer(web_build(seconds=0.05, tag="span"))')
    created = next(line for line in lines(marks) if line.startswith("created span "))
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "tools/call build"]
    assert len(spans) == 1
    attributes = dict(spans[0].attributes or {})
    assert attributes["agentloop.mcp.task_id"] == created.split()[-1]
    assert attributes["agentloop.mcp.task_status"] == "completed"
    assert TaskStatus.COMPLETED  # the direct call returned the remote task's result
