"""An agent with two real servers written with the MCP SDK (tests/mcp/servers.py): one over
stdio (a subprocess), one over Streamable HTTP (uvicorn on 127.0.0.1, in this process). Both
have the same tools, so every tool is named `{server}_{tool}`. One agent serves the whole
module (the SDK's server takes a second or two to start)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentloop import AsyncAgent, RunEventKind, TaskStatus, create_async_agent
from agentloop.mcp import MCPServer
from agentloop.testing import FunctionModel
from tests.reliability.helpers import uvicorn_server

from .conftest import children, code_in_task, reaped, sdk_server, server_pids

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXPORTER = InMemorySpanExporter()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def agent(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncAgent]:
    from . import servers

    marks = tmp_path_factory.mktemp("mcp") / "marks"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    before = children()
    async with uvicorn_server(servers.server.streamable_http_app()) as base:
        agent = create_async_agent(
            model=FunctionModel(code_in_task),
            mcp_servers=[
                sdk_server(marks),
                MCPServer.http(f"{base}/mcp", name="web"),
                MCPServer.http(f"{base}/mcp", name="tight", max_message_bytes=100_000),
            ],
            tracer_provider=provider,
        )
        async with agent:
            yield agent
        pids = server_pids(agent.task_manager)
    assert pids and all(reaped(pid) for pid in pids)
    assert children() <= before


async def run(agent: AsyncAgent, code: str, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        return await agent.arun(code)


async def test_the_servers_tools_are_targets_with_their_descriptions_and_signatures(
    agent: AsyncAgent,
) -> None:
    guidance = agent.guidance()
    for server in ("sdk", "web"):  # the same tools on both: each is prefixed
        assert f"- tool `{server}_add(a: integer, b: integer)`: Add two integers." in guidance
        assert (
            f"- tool `{server}_echo_text(text: string, times: integer = 1)`: Repeat `text`."
            in guidance
        )
    assert "add" not in agent.task_manager.tool_names


async def test_a_run_calls_mcp_tools_directly_and_in_the_background(agent: AsyncAgent) -> None:
    code = """
total = sdk_add(a=2, b=3)
ids = [submit_task("tool", "web_forecast", {"city": city}) for city in ["Paris", "Lima"]]
wait_for_tasks(ids)
results = get_task_results(ids)
final_answer([total, [results[i] for i in ids], sdk_picture(), web_echo_text("ab", times=2)])
"""
    answer = await run(agent, code)
    assert answer == [
        5,  # a plain return value, unwrapped from the SDK's {"result": 5}
        [
            {"city": "Paris", "celsius": 18, "sky": "light rain"},  # structured content
            {"city": "Lima", "celsius": 18, "sky": "light rain"},
        ],
        "[image: image/png, 108 bytes]",  # described, not dropped
        "abab",
    ]


async def test_arguments_are_checked_against_the_schema_before_the_call(agent: AsyncAgent) -> None:
    code = """
errors = []
for call in (lambda: sdk_pick(color="pink"), lambda: sdk_add(a=1, bb=2), lambda: web_add(a=1)):
    try:
        call()
    except Exception as error:
        errors.append(str(error))
final_answer(errors)
"""
    errors = await run(agent, code)
    assert errors == [
        "`sdk_pick` input `color`: 'pink' is not one of ['red', 'green', 'blue']. "
        "Expected: sdk_pick(color: string).",
        "`sdk_add` has no input `bb`. Did you mean `b`? Expected: sdk_add(a: integer, b: integer).",
        "`web_add` is missing required input(s) `b`. Expected: web_add(a: integer, b: integer).",
    ]


async def test_a_tool_error_fails_its_task_with_the_tools_text(agent: AsyncAgent) -> None:
    registry = agent.task_manager
    task = await registry.submit("tool", "web_fail", {"message": "the disk is full"})
    await registry.wait(task, timeout=20)
    info = registry.get(task)
    assert info.status is TaskStatus.FAILED
    assert info.error is not None
    assert info.error.startswith("MCPToolError: `fail` (MCP server `web`) reported an error: ")


async def test_progress_notifications_become_the_tasks_progress_and_stream_events(
    agent: AsyncAgent,
) -> None:
    code = """
task = submit_task("tool", "sdk_slow", {"seconds": 0.2, "tag": "progress"})
wait_for_tasks([task])
final_answer(check_task(task, format="detailed"))
"""
    kinds = []
    progress = []
    async with agent.astream(code) as stream:
        async for event in stream:
            kinds.append(event.kind)
            if event.kind is RunEventKind.TASK_PROGRESS:
                assert event.task_event is not None
                progress.append(event.to_dict()["task_event"]["progress"])
        detail = await stream.result()
    assert progress[0] == {"progress": 0.0, "total": 4.0, "message": "step 0"}
    assert progress[-1] == {"progress": 3.0, "total": 4.0, "message": "step 3"}
    assert "  progress: 3/4 (75%): step 3" in detail
    assert kinds.index(RunEventKind.TASK_PROGRESS) > kinds.index(RunEventKind.TASK_STARTED)


async def test_each_call_is_a_client_span_under_its_task_and_its_trace_reaches_the_server(
    agent: AsyncAgent,
) -> None:
    EXPORTER.clear()
    registry = agent.task_manager
    task = await registry.submit("tool", "sdk_traceparent")
    await registry.wait(task, timeout=20)
    traceparent = registry.get(task).result
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    call, task_span = spans["tools/call traceparent"], spans["execute_tool sdk_traceparent"]
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == task_span.context.span_id
    assert dict(call.attributes or {}) == {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "traceparent",
        "agentloop.mcp.server": "sdk",
        "network.transport": "pipe",
    }
    _, trace_id, parent_id, _ = traceparent.split("-")
    assert int(trace_id, 16) == call.context.trace_id  # the server's spans join this trace
    assert int(parent_id, 16) == call.context.span_id


async def test_concurrent_runs_share_the_sessions_and_see_only_their_own_results(
    agent: AsyncAgent,
) -> None:
    def code(n: int) -> str:
        return f"""
ids = [submit_task("tool", server + "_echo_text", {{"text": "run{n}-", "times": k}})
       for server in ("sdk", "web") for k in (1, 2, 3)]
wait_for_tasks(ids)
final_answer(list(get_task_results(ids).values()))
"""

    answers = await asyncio.gather(*(run(agent, code(n)) for n in range(8)))
    for n, answer in enumerate(answers):
        mine = [f"run{n}-" * k for k in (1, 2, 3)]
        assert answer == mine + mine


async def test_a_changed_tool_list_reaches_the_next_run(agent: AsyncAgent) -> None:
    registry = agent.task_manager
    task = await registry.submit("tool", "sdk_grow", {"name": "extra"})
    await registry.wait(task, timeout=20)
    assert registry.get(task).result == "added"
    assert "extra" not in registry.tool_names  # not midway: at the next run's start
    # the server sent `tools/list_changed` before its answer, on the same pipe
    assert await run(agent, "final_answer(extra())") == "I am extra"
    assert "extra" in registry.tool_names


async def test_an_http_answer_over_max_message_bytes_fails_its_call_clearly(
    agent: AsyncAgent,
) -> None:
    registry = agent.task_manager
    huge = await registry.submit("tool", "tight_big", {"size": 200_000})
    await registry.wait(huge, timeout=20)
    assert registry.get(huge).error == (
        "MCPServerError: MCP server `tight` answered `big` with a message larger than 100000 "
        "bytes (its max_message_bytes): SSE stream failed: Server-sent event exceeded the "
        "100000 byte limit."
    )
    after = await registry.submit("tool", "tight_add", {"a": 1, "b": 2})
    await registry.wait(after, timeout=20)
    assert registry.get(after).result == 3  # the session is fine


async def test_tasks_of_mcp_tools_count_like_any_other(agent: AsyncAgent) -> None:
    stats = agent.task_manager.get_statistics()
    assert stats["total_submitted"] >= stats["total_completed"] > 10
    assert stats["running"] == 0 and stats["pending"] == 0
