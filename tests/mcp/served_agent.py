"""A scripted agent for the tests that serve an agent over MCP (`agentloop mcp
tests.mcp.served_agent:make_agent`, or in process).

The model reads the task text and answers by it:

- `echo TEXT`: answers `echo: TEXT` in one step;
- `parallel N`: submits N `double` tasks, waits, then answers their sum in a second step
  (two steps and N ended tasks: progress to see);
- `block`: calls `block()`, which waits until it is cancelled; the cancellation is written to
  `AGENTLOOP_MCP_MARKS` (a file) and to `HOOKS.cancelled`;
- `gate`: calls `gate()`, which waits until `HOOKS.release` is set (in process only);
- `invoice`: answers a dict (typed with `output_type=Invoice`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import FunctionModel, task_text, turn


class Invoice(BaseModel):
    number: str
    total: float


def reply(messages: Any) -> str:
    lines = [line for line in task_text(messages).splitlines() if line.strip()]
    task = lines[1] if lines[0].startswith("New task") else lines[0]  # not what a run adds
    step = turn(messages)
    if task.startswith("echo "):
        return f"final_answer({'echo: ' + task[5:]!r})"
    if task.startswith("parallel "):
        count = int(task.split()[1])
        if step == 0:
            return (
                f"ids = [submit_task('tool', 'double', {{'n': i}}) for i in range({count})]\n"
                "wait_for_tasks(ids, max_wait_time=30)\n"
                "print(sum(get_task_results(ids).values()))"
            )
        return f"final_answer({sum(2 * i for i in range(count))})"
    if task == "block":
        return "final_answer(block())"
    if task == "gate":
        return "final_answer(gate())"
    if task == "invoice":
        return "final_answer({'number': 'F-7', 'total': 12.5})"
    return f"final_answer({'unknown task: ' + task!r})"


@dataclass
class Hooks:
    """What the in-process tests watch and hold (a fresh one per `make_agent`)."""

    cancelled: list[str] = field(default_factory=list)
    cancelled_event: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


HOOKS = Hooks()


def _mark(line: str) -> None:
    marks = os.environ.get("AGENTLOOP_MCP_MARKS")
    if marks:
        with Path(marks).open("a") as file:
            file.write(line + "\n")


async def double(n: int) -> int:
    """Twice n.

    Args:
        n: a number.
    """
    return 2 * n


async def block() -> str:
    """Waits until it is cancelled."""
    hooks = HOOKS
    hooks.started.set()
    _mark("block started")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        hooks.cancelled.append("block")
        hooks.cancelled_event.set()
        _mark("block cancelled")
        raise
    return "never"


async def gate() -> str:
    """Waits until the test releases it."""
    hooks = HOOKS
    hooks.started.set()
    await hooks.release.wait()
    return "released"


def make_agent() -> AsyncAgent:
    global HOOKS
    HOOKS = Hooks()
    return create_async_agent(
        tools=[double, block, gate],
        model=FunctionModel(reply),
        name="helper",
        description="A test agent: echoes, adds in parallel, or blocks.",
    )
