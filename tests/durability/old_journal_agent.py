"""The agent behind `fixtures/journal-0.1.0.sqlite`, a journal written by agentloop 0.1.0.

`python -m tests.durability.old_journal_agent PATH` wrote that file (with the code of 0.1.0);
`test_old_journal.py` reads it with today's code. Change nothing here that the journal's agent
fingerprint covers (the tools' names and signatures, the model's class and id).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import FunctionModel

COMPLETED = "order-completed"
"""A run that finished: its answer is a dict, its tasks' results a list and a dict."""
UNFINISHED = "order-unfinished"
"""A run whose second model call failed: its first step and tasks are recorded."""

FAN_OUT = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2, 3)]
print(wait_for_tasks(ids))
fetched = get_task_results(ids)
rows = table(n=4)
"""
ANSWER = 'final_answer({"total": sum(fetched.values()), "rows": rows})'


def tools(calls: list[str]) -> list[Any]:
    """`fetch` (async) and `table` (sync), each noting its calls in `calls`."""

    async def fetch(n: int) -> int:
        """Fetch a number."""
        calls.append(f"fetch {n}")
        return n * 10

    def table(n: int) -> list[dict[str, int]]:
        """A small table."""
        calls.append(f"table {n}")
        return [{"row": i, "square": i * i} for i in range(n)]

    return [fetch, table]


def agent(path: Path, calls: list[str], *, failing_step: int | None = None) -> AsyncAgent:
    """The agent both runs were recorded with; the model fails at `failing_step`."""

    def reply(messages: list[Any]) -> str:
        step = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant") + 1
        if step == failing_step:
            raise ConnectionError("the model provider is down")
        return f"```py\n{FAN_OUT if step == 1 else ANSWER}\n```"

    model = FunctionModel(reply)
    return create_async_agent(tools=tools(calls), model=model, journal=path)


async def write(path: Path) -> None:
    calls: list[str] = []
    async with agent(path, calls) as done:
        await done.arun("sum the numbers", run_id=COMPLETED)
    async with agent(path, calls, failing_step=2) as broken:
        with contextlib.suppress(Exception):  # the model fails at step 2, as planned
            await broken.arun("sum the numbers", run_id=UNFINISHED)


if __name__ == "__main__":
    asyncio.run(write(Path(sys.argv[1])))
