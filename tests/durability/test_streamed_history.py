"""A streamed run records only what its code did: the stream's own reads (a completed task's
result preview) are not journaled, so a streamed run resumes like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentloop import create_async_agent
from agentloop.journal import EntryKind
from agentloop.testing import FunctionModel

FAN_OUT = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2, 3)]
wait_for_tasks(ids)
total = sum(get_task_results(ids).values())
"""


async def test_a_streamed_run_journals_only_its_code_and_resumes(tmp_path: Path) -> None:
    fetched: list[int] = []

    async def fetch(n: int) -> int:
        """Fetch a number."""
        fetched.append(n)
        return n * 10

    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        steps = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")
        if steps == 0:
            return FAN_OUT
        if broken["on"]:
            raise ConnectionError("down")
        return "final_answer(total)"

    agent = create_async_agent(
        tools=[fetch], model=FunctionModel(reply), journal=tmp_path / "runs.sqlite"
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            async with agent.astream("add", run_id="s") as stream:
                async for _ in stream:
                    pass
                await stream.result()
        assert agent.journal is not None
        looked = [e.data["call"] for e in agent.journal.entries("s") if e.kind is EntryKind.LOOKED]
        assert looked == ["get_task_results"]  # the stream's previews are not the code's reads
        broken["on"] = False
        assert await agent.arun("add", run_id="s") == 60
    assert sorted(fetched) == [1, 2, 3]
