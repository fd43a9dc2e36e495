"""An agent served over stdio by its entry point (`agentloop mcp
tests.mcp.served_agent:make_agent`, a subprocess), called by the SDK's own `ClientSession`
through the SDK's `stdio_client`: the way Claude Desktop or an IDE runs it. Run by `nox -s mcp`
(AGENTLOOP_MCP_HEAVY=1): the subprocess imports the SDK, smolagents and agentloop (~3 s here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from mcp import ClientSession

from .served_client import cancel_task, get_task, start_task, task_result, text

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("AGENTLOOP_MCP_HEAVY") != "1",
        reason="stdio subprocess tests: run with `nox -s mcp` (AGENTLOOP_MCP_HEAVY=1)",
    ),
    pytest.mark.timeout(60),
]


@contextlib.asynccontextmanager
async def stdio_agent(marks: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentloop", "mcp", "tests.mcp.served_agent:make_agent"],
        env={
            "AGENTLOOP_MCP_MARKS": str(marks),
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        },
        cwd=REPO,
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        with anyio.fail_after(30):
            await session.initialize()
        yield session


async def until_marked(marks: Path, line: str) -> None:
    """Wait until the server process wrote `line` to the marks file (it is another process:
    there is no event to wait on, so the file is read every 20 ms, bounded)."""
    path = anyio.Path(marks)
    with anyio.fail_after(20):
        while True:
            if await path.exists() and line in (await path.read_text()).splitlines():
                return
            await asyncio.sleep(0.02)


async def test_over_stdio_the_agent_answers_reports_progress_and_is_cancelled(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    async with stdio_agent(marks) as session:
        (tool,) = (await session.list_tools()).tools
        assert tool.name == "helper"
        seen: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(value)

        result = await session.call_tool(
            "helper", {"task": "parallel 3"}, progress_callback=on_progress
        )
        assert text(result) == "6" and seen == [1, 2, 3, 4, 5]
        # concurrent calls are concurrent runs
        answers = await asyncio.gather(
            *(session.call_tool("helper", {"task": f"echo {i}"}) for i in range(8))
        )
        assert [text(a) for a in answers] == [f"echo: {i}" for i in range(8)]
        # the client cancelling a call cancels the run: the tool sees CancelledError
        async with anyio.create_task_group() as group:
            group.start_soon(session.call_tool, "helper", {"task": "block"})
            await until_marked(marks, "block started")
            group.cancel_scope.cancel()
        await until_marked(marks, "block cancelled")


async def test_over_stdio_mcp_tasks_are_polled_to_completion_and_cancelled(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    async with stdio_agent(marks) as session:
        done = await start_task(session, "parallel 2")
        assert text(await task_result(session, done.task_id)) == "2"
        assert (await get_task(session, done.task_id)).status == "completed"

        blocked = await start_task(session, "block")
        await until_marked(marks, "block started")
        assert (await get_task(session, blocked.task_id)).status == "working"
        assert (await cancel_task(session, blocked.task_id)).status == "cancelled"
        await until_marked(marks, "block cancelled")


def test_the_example_serves_its_agent_and_calls_it_as_a_client() -> None:
    """examples/mcp_serve_app.py, run as a user runs it (a script that starts its server)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run(
        [sys.executable, "examples/mcp_serve_app.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    answer = "asyncio: found; MCP: found; smolagents: found"
    assert lines[0].startswith("tool: researcher: ")
    assert lines[1:6] == [
        "  progress 1: 0 model steps, 1/3 tasks done",
        "  progress 2: 0 model steps, 2/3 tasks done",
        "  progress 3: 0 model steps, 3/3 tasks done",
        "  progress 4: 1 model step, 3/3 tasks done",
        "  progress 5: 2 model steps, 3/3 tasks done",
    ]
    assert lines[6:] == [f"answer: {answer}", "task: working", f"task: completed: {answer}"]
