"""Two agentloop services talking A2A on 127.0.0.1 (offline: scripted models).

`adder` is served over A2A by one service; a second agent delegates to it as a managed
agent, `A2AAgent`, in the background, and waits. Run it:

    pip install "agentloop-smol[serve,a2a]"
    python examples/a2a_app.py

It prints the remote agent's card name and skills, then the delegating run's answer.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from agentloop import create_async_agent
from agentloop.serve import create_app
from agentloop.serve.a2a import A2AAgent
from agentloop.testing import ScriptedModel

ADD = """
ids = [submit_task("tool", "double", {"x": x}) for x in (1, 2, 3)]
wait_for_tasks(ids)
final_answer(sum(get_task_results(ids).values()))
"""
DELEGATE = """
ids = [submit_task("managed_agent", "adder", {"task": "double 1, 2 and 3, then add"})]
wait_for_tasks(ids)
final_answer(f"the remote adder says {get_task_results(ids)[ids[0]]}")
"""


async def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number.
    """
    return 2 * x


async def main() -> None:
    adder = create_async_agent(tools=[double], model=ScriptedModel([ADD]), name="adder")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app({"adder": adder}), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/a2a/adder/"
        remote = await A2AAgent.discover(url)
        assert remote.card is not None
        print(f"card: {remote.card.name}, skills: {[s.id for s in remote.card.skills]}")
        caller = create_async_agent(managed_agents=[remote], model=ScriptedModel([DELEGATE]))
        async with adder, caller:
            print(await caller.arun("delegate the sum"))
    finally:
        server.should_exit = True
        await serving
        sock.close()


if __name__ == "__main__":
    asyncio.run(main())
