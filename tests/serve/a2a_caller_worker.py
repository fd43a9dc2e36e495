"""The calling process of the A2A crash test: `python -m tests.serve.a2a_caller_worker URL
JOURNAL RUN_ID` runs (or resumes) one journaled run whose only task is the remote A2A agent at
URL, and prints the answer as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

from agentloop import create_async_agent
from agentloop.serve.a2a import A2AAgent
from agentloop.testing import ScriptedModel

PLAN = (
    'ids = [submit_task("managed_agent", "remote", {"task": "slow"}, task_id="r")]\n'
    "wait_for_tasks(ids, max_wait_time=60)\nfinal_answer(get_task_results(ids))"
)


async def main(url: str, journal: str, run_id: str) -> None:
    remote = A2AAgent(url, name="remote", description="A slow remote agent.")
    agent = create_async_agent(
        managed_agents=[remote], model=ScriptedModel([PLAN]), journal=journal
    )
    async with agent:
        answer = await agent.arun("delegate", run_id=run_id)
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
