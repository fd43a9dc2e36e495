"""Every task tool that shows task state to the model's code returns only once the outcomes
recorded so far are committed: at the next model call, what the code saw is in the journal
(read here through a second, read-only connection). The journal's writes are slowed down so
that an outcome still being written would be seen missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentloop import SQLiteJournal, create_async_agent
from agentloop.journal import EntryKind
from agentloop.testing import FunctionModel

from .model_crash_worker import SlowJournal

SHOWING = {
    "wait_for_tasks": 'tid = submit_task("tool", "fetch", {"n": 1})\nwait_for_tasks([tid])',
    "get_task_results": (
        'tid = submit_task("tool", "fetch", {"n": 1})\n'
        "for _ in range(100000):\n"
        "    if get_task_results([tid])[tid]:\n"
        "        break"
    ),
    "check_task": (
        'tid = submit_task("tool", "fetch", {"n": 1})\n'
        "for _ in range(100000):\n"
        '    if "completed" in check_task(tid):\n'
        "        break"
    ),
    "list_tasks": (
        'tid = submit_task("tool", "fetch", {"n": 1})\n'
        "for _ in range(100000):\n"
        '    if "completed" in list_tasks():\n'
        "        break"
    ),
    "direct call": "fetch(n=1)",
}


@pytest.mark.parametrize("code", SHOWING.values(), ids=SHOWING.keys())
async def test_what_the_code_saw_is_committed_before_the_next_model_call(
    tmp_path: Path, code: str
) -> None:
    path = tmp_path / "runs.sqlite"
    committed: list[int] = []

    async def fetch(n: int) -> int:
        """Fetch a number."""
        return n * 10

    def reply(messages: list[Any]) -> str:
        steps = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")
        if steps == 0:
            return code
        with SQLiteJournal(path, read_only=True) as reader:
            entries = reader.entries("r")
        committed.append(sum(1 for e in entries if e.kind is EntryKind.OUTCOME))
        return "final_answer('done')"

    journal = SlowJournal(path, 0.05)
    agent = create_async_agent(tools=[fetch], model=FunctionModel(reply), journal=journal)
    async with agent:
        assert await agent.arun("fetch", run_id="r") == "done"
    assert committed == [1]
