"""A journaled run using a remote MCP task, in a process of its own, for the crash test
(`test_remote_task_crash.py`): `python -m tests.mcp.task_crash_worker URL JOURNAL RUN_ID`.

The run submits `build` on the server at URL (with `remote_tasks=True`), waits for it and
answers its result. The process prints `FOLLOWING` once the task reports the remote status
(the remote task's id is durable in the journal by then) and `ANSWER <json>` at the end. The
same command resumes the run: the parent runs it again after killing the first one.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agentloop import RunEventKind, create_async_agent
from agentloop.mcp import MCPServer
from agentloop.testing import FunctionModel

CODE = """
job = submit_task("tool", "build", {"seconds": 2.0, "tag": "once"})
wait_for_tasks([job], max_wait_time=60)
final_answer(str(get_task_results([job])[job]))
"""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main() -> None:
    url, journal, run_id = sys.argv[1:4]
    agent = create_async_agent(
        model=FunctionModel(lambda messages: f"<code>{CODE}</code>"),
        mcp_servers=[MCPServer.http(url, name="jobs", remote_tasks=True)],
        journal=journal,
    )
    async with agent:
        async with agent.astream(CODE, run_id=run_id) as stream:
            following = False
            async for event in stream:
                if event.kind is RunEventKind.TASK_PROGRESS and not following:
                    following = True
                    say("FOLLOWING")
            answer = await stream.result()
    say("ANSWER " + json.dumps(answer))


if __name__ == "__main__":
    asyncio.run(main())
