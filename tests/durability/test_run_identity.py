"""A run id is an idempotency key: a completed run answers only the task it was started with,
by the agent that recorded it. Another task or another agent under the same id is refused
(`JournalMismatchError`) instead of getting another task's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentloop import JournalMismatchError, create_async_agent
from agentloop.journal import RunStatus
from agentloop.testing import FunctionModel


def answering(calls: list[str]) -> FunctionModel:
    """A model that answers with the task it was given (and counts its calls)."""

    def reply(messages: list[Any]) -> str:
        task = next(m for m in messages if getattr(m.role, "value", m.role) == "user")
        text = " ".join(part.get("text", "") for part in task.content)
        calls.append(text)
        order = "41" if "41" in text else "42"
        return f'final_answer("done with order {order}")'

    return FunctionModel(reply)


async def test_a_completed_run_id_does_not_answer_another_task(tmp_path: Path) -> None:
    calls: list[str] = []
    journal = tmp_path / "runs.sqlite"
    async with create_async_agent(model=answering(calls), journal=journal) as agent:
        assert await agent.arun("Refund order 41", run_id="job-7") == "done with order 41"
        with pytest.raises(JournalMismatchError, match="another task") as refused:
            await agent.arun("Charge order 42", run_id="job-7")
        assert "job-7" in str(refused.value) and "new run id" in str(refused.value)
        # the same task still gets its recorded answer, without a model call
        assert await agent.arun("Refund order 41", run_id="job-7") == "done with order 41"
        runs = await agent.runs()
    assert len(calls) == 1
    assert [(r.run_id, r.status, r.attempts) for r in runs] == [("job-7", RunStatus.COMPLETED, 1)]


async def test_a_completed_run_id_does_not_answer_another_agent(tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite"
    async with create_async_agent(model=answering([]), journal=journal) as agent:
        await agent.arun("Refund order 41", run_id="job-7")

    async def refund(order: int) -> str:
        """Refund an order."""
        return f"refunded {order}"

    other = create_async_agent(tools=[refund], model=answering([]), journal=journal)
    async with other:
        with pytest.raises(JournalMismatchError, match="configured differently"):
            await other.arun("Refund order 41", run_id="job-7")
        # force: the run is final; it answers what it recorded and runs nothing again
        forced = await other.arun(
            "Refund order 41", run_id="job-7", force=True, return_full_result=True
        )
    assert (forced.output, forced.resumed) == ("done with order 41", True)
