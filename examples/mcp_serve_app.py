"""An agentloop agent served over MCP, so Claude Desktop, an IDE or another framework's agent
can call it as a tool.

Serve it (stdio, what Claude Desktop and IDEs start; or Streamable HTTP on 127.0.0.1):

    agentloop mcp examples.mcp_serve_app:make_agent
    agentloop mcp examples.mcp_serve_app:make_agent --http --port 8765   # http://127.0.0.1:8765/mcp

Running this file plays the client, with the MCP SDK's own `ClientSession`: it starts the
server as Claude Desktop does (a subprocess speaking MCP on stdio), lists its tool, calls it
(printing the progress notifications the run's steps and tasks send), then starts the same
work as an MCP task and polls it to its result. A `ScriptedModel` plays the LLM so it runs
offline; a real application gives the agent a real model. Needs
`pip install "agentloop-smol[mcp-serve]"`. Run it with `python examples/mcp_serve_app.py`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import ScriptedModel

HERE = Path(__file__).resolve().parent

# What a good model writes: three lookups in parallel, then one answer.
RESEARCH = """
ids = [submit_task("tool", "lookup", {"topic": t}) for t in ["asyncio", "MCP", "smolagents"]]
wait_for_tasks(ids, max_wait_time=30)
notes = get_task_results(ids)
"""
ANSWER = "final_answer('; '.join(notes.values()))"


async def lookup(topic: str) -> str:
    """Look a topic up (a stand-in for a search tool).

    Args:
        topic: what to look up.
    """
    await asyncio.sleep(0.2)
    return f"{topic}: found"


def make_agent() -> AsyncAgent:
    """The agent `agentloop mcp` serves (a function, so each server process makes its own)."""
    return create_async_agent(
        tools=[lookup],
        model=ScriptedModel([RESEARCH, ANSWER]),
        name="researcher",
        description="Researches topics in parallel and answers with short notes.",
    )


async def main() -> None:
    import mcp_types as types
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from mcp import ClientSession

    server = StdioServerParameters(  # what an MCP client's configuration names
        command=sys.executable,
        args=["-m", "agentloop", "mcp", "examples.mcp_serve_app:make_agent"],
        cwd=HERE.parent,
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        (tool,) = (await session.list_tools()).tools
        print(f"tool: {tool.name}: {tool.description}")

        async def progress(value: float, total: float | None, message: str | None) -> None:
            print(f"  progress {value:g}: {message}")

        result = await session.call_tool(
            tool.name,
            {"task": "What are asyncio, MCP and smolagents?"},
            progress_callback=progress,
        )
        print("answer:", result.content[0].text)  # type: ignore[union-attr]

        # The same work as an MCP task: the call answers at once with a handle to poll.
        call = types.CallToolRequestParams(
            name=tool.name, arguments={"task": "Again, as a task."}, task=types.TaskMetadata()
        )
        created = await session.send_request(
            types.CallToolRequest(params=call), types.CreateTaskResult
        )
        print("task:", created.task.status)
        ask = types.GetTaskPayloadRequestParams(task_id=created.task.task_id)
        payload = await session.send_request(
            types.GetTaskPayloadRequest(params=ask), types.CallToolResult
        )
        status = await session.send_request(
            types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=created.task.task_id)),
            types.GetTaskResult,
        )
        print(f"task: {status.status}:", payload.content[0].text)  # type: ignore[union-attr]


if __name__ == "__main__":
    asyncio.run(main())
