"""An agent whose tools come from an MCP server, on the agent's own event loop.

`mcp_servers=[MCPServer.stdio(...)]` starts the server as a subprocess when the agent is
entered (`async with agent`), lists its tools as targets, and closes it (and reaps the
process) when the agent closes. The model calls the server's tools like any tool: directly,
or with `submit_task` to run them in parallel. Each call is a task: bounded per server,
timed out, cancellable, traced, and its progress notifications show in `check_task`.

A `ScriptedModel` plays the LLM so the example runs offline; a real application passes a
smolagents model (`LiteLLMModel(...)`). Needs `pip install "agentloop-smol[mcp]"`.
Run it with `python examples/mcp_app.py`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from agentloop import create_async_agent
from agentloop.mcp import MCPServer
from agentloop.testing import ScriptedModel

WEATHER = MCPServer.stdio(
    sys.executable,  # any command: "npx", "uvx", a binary...
    [str(Path(__file__).with_name("mcp_weather_server.py"))],
    name="weather",
    call_timeout=60,  # seconds per call (the default is 300): a deadline, then it is cancelled
    max_concurrent=8,  # calls in flight to this server at once; more wait their turn
)

# What a good model writes for the task: four forecasts in parallel, then one summary.
CODE = """
cities = ["Paris", "Tokyo", "Lagos", "Lima"]
ids = [submit_task("tool", "forecast", {"city": city}) for city in cities]
wait_for_tasks(ids, max_wait_time=60)
results = get_task_results(ids)
final_answer("; ".join(f"{r['city']}: {r['celsius']}C, {r['sky']}" for r in results.values()))
"""


async def main() -> None:
    agent = create_async_agent(model=ScriptedModel([CODE]), mcp_servers=[WEATHER])
    async with agent:  # the server starts here and its tools are listed
        print("tools:", ", ".join(target.signature() for target in agent.task_manager.targets()))
        started = time.perf_counter()
        answer = await agent.arun("Tomorrow's weather in Paris, Tokyo, Lagos and Lima?")
        print(answer)
        print(f"4 forecasts of ~0.9 s each took {time.perf_counter() - started:.1f} s")
    # here the server's process has exited and been reaped


if __name__ == "__main__":
    asyncio.run(main())
