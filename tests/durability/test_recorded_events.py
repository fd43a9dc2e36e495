"""A streamed, journaled run records its events (the run service replays them from any
process): in order, ending with the run's end in the same commit, and once each across a
resume that shows the recorded steps again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentloop import create_async_agent
from agentloop.journal import EntryKind
from agentloop.testing import FunctionModel

FAN_OUT = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2)]
wait_for_tasks(ids)
total = sum(get_task_results(ids).values())
"""


def _steps(messages: list[Any]) -> int:
    return sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")


def _events(agent: Any, run_id: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in agent.journal.entries(run_id) if e.kind is EntryKind.EVENT]


async def fetch(n: int) -> int:
    """Fetch a number."""
    return n * 10


async def test_a_streamed_run_records_its_events_ending_with_its_answer(tmp_path: Path) -> None:
    def reply(messages: list[Any]) -> str:
        return FAN_OUT if _steps(messages) == 0 else "final_answer(total)"

    agent = create_async_agent(
        tools=[fetch], model=FunctionModel(reply), journal=tmp_path / "runs.sqlite"
    )
    async with agent:
        async with agent.astream("add", run_id="r") as stream:
            live = [event.kind.value async for event in stream]
        events = _events(agent, "r")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer"
    assert events[-1]["answer"] == 30 and "usage" in events[-1]
    assert kinds.count("task_completed") == 2 and kinds.count("step") == 2
    assert [k for k in live if k != "model_delta"] == kinds  # what the stream showed, in order
    assert all("run_id" not in e and "seq" not in e for e in events)


async def test_an_unstreamed_run_records_no_events(tmp_path: Path) -> None:
    agent = create_async_agent(
        tools=[fetch], model=FunctionModel(lambda m: "final_answer(1)"), journal=tmp_path / "j"
    )
    async with agent:
        assert await agent.arun("one", run_id="plain") == 1
        assert _events(agent, "plain") == []


async def test_a_resumed_run_records_each_event_once(tmp_path: Path) -> None:
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        if _steps(messages) == 0:
            return FAN_OUT
        if broken["on"]:
            raise ConnectionError("provider down")
        return "final_answer(total)"

    agent = create_async_agent(
        tools=[fetch], model=FunctionModel(reply), journal=tmp_path / "runs.sqlite"
    )
    async with agent:
        with pytest.raises(Exception, match="provider down"):
            async with agent.astream("add", run_id="s") as stream:
                async for _ in stream:
                    pass
                await stream.result()
        first = _events(agent, "s")
        assert first[-1]["kind"] == "run_failed" and "provider down" in first[-1]["error"]
        broken["on"] = False
        async with agent.astream("add", run_id="s") as stream:
            async for _ in stream:
                pass
            assert await stream.result() == 30
        events = _events(agent, "s")
    added = [e["kind"] for e in events[len(first) :]]
    assert added[0] == "run_resumed" and added[-1] == "final_answer"
    assert "run_started" not in added and "task_completed" not in added  # replayed, not again
    assert [e["kind"] for e in events].count("step") == 2  # step 1 once, step 2 once
