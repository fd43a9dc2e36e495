"""An agent as an AG-UI endpoint (CopilotKit and other AG-UI front ends), on a scripted planner.

    uvicorn examples.agui_app:app            # POST /api/agents/research/agui
    python examples/agui_app.py              # serves it on a free port and plays a client

The client posts a `RunAgentInput`, reads the events (two background fetches and a direct
call as tool calls, the task table as state), stops at the interrupt for `publish`, approves
it with `resume` in its next input, and reads the rest up to the answer. A front end does the
same: docs/protocols.md has the mapping.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from agentloop import AsyncAgent, create_async_agent
from agentloop.serve import create_app
from agentloop.testing import ScriptedModel

STEP_1 = """
ids = [submit_task("tool", "fetch_source", {"name": n}, task_id=f"fetch_{n}")
       for n in ("arxiv", "news")]
count = word_count(text="three relevant findings")
submit_task("tool", "publish", {"summary": "findings"}, task_id="publish")
"""
STEP_2 = """
wait_for_tasks(ids + ["publish"])
final_answer({"sources": get_task_results(ids), "published": get_task_results(["publish"])})
"""


async def fetch_source(name: str) -> str:
    """Fetch what one source says (a simulated 0.1 s call).

    Args:
        name: the source.
    """
    await asyncio.sleep(0.1)
    return f"{name}: 3 relevant findings"


async def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text.
    """
    return len(text.split())


async def publish(summary: str) -> str:
    """Publish the summary (needs approval).

    Args:
        summary: what to publish.
    """
    return f"published: {summary}"


def make_agent(runs: int = 100) -> AsyncAgent:
    return create_async_agent(
        tools=[fetch_source, word_count, publish],
        model=ScriptedModel([STEP_1, STEP_2] * runs),
        needs_approval=["publish"],
        name="research",
    )


app = create_app({"research": make_agent()}, owns_agents=True)


async def _events(client: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """One AG-UI run: POST the input, read the SSE stream to its end."""
    found = []
    async with client.stream("POST", "/api/agents/research/agui", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
    return found


async def main() -> None:
    import httpx
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn has no started event to wait on)
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        user = {"id": "m1", "role": "user", "content": "research and publish"}
        first = await _events(client, {"threadId": "t1", "runId": "r1", "messages": [user]})
        print("run r1:", " ".join(e["type"] for e in first))
        (interrupt,) = first[-1]["outcome"]["interrupts"]
        print("interrupt:", interrupt["message"])
        resume = [{"interruptId": interrupt["id"], "status": "resolved", "payload": True}]
        body = {"threadId": "t1", "runId": "r2", "messages": [], "resume": resume}
        second = await _events(client, body)
        print("run r2:", " ".join(e["type"] for e in second))
        print("answer:", json.dumps(second[-1]["result"], sort_keys=True))
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main())
