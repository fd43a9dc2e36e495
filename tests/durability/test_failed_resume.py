"""A resume that cannot go on (its replay diverged, or a recorded value cannot be read back)
ends its attempt in the journal: the run is recorded `failed` with the reason and its lease is
released, so asking again gets the same clear error at once, not `RunLeasedError` for the
rest of the lease, and `agent.recover()` does not pick it up again and again."""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agentloop import JournalError, RunDivergedError, RunStatus, create_async_agent
from agentloop.testing import FunctionModel

pytestmark = pytest.mark.timeout(60)

CODE = """
tid = submit_task("tool", "charge", {"amount": amount})
wait_for_tasks([tid])
receipt = get_task_results([tid])[tid]
"""


def stops_after_step_1(broken: dict[str, bool]) -> FunctionModel:
    def reply(messages: list[Any]) -> str:
        if sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant") == 0:
            return CODE
        if broken["on"]:
            raise ConnectionError("down")
        return "final_answer(receipt)"

    return FunctionModel(reply)


async def charge(amount: int) -> dict[str, int]:
    """Charge an amount."""
    return {"charged": amount}


def charging_agent(path: Path, broken: dict[str, bool]) -> Any:
    return create_async_agent(tools=[charge], model=stops_after_step_1(broken), journal=path)


async def stopped_after_step_1(agent: Any) -> None:
    """Run `r` once: step 1 charges, then the model fails (the run stays unfinished)."""
    with pytest.raises(Exception, match="down"):
        await agent.arun("charge", run_id="r", additional_args={"amount": 5})


async def test_a_diverged_resume_is_recorded_failed_and_releases_its_lease(
    tmp_path: Path,
) -> None:
    broken = {"on": True}
    agent = charging_agent(tmp_path / "r.sqlite", broken)
    async with agent:
        await stopped_after_step_1(agent)
        broken["on"] = False
        for _ in range(2):  # the second ask gets the same reason, not a held lease
            with pytest.raises(RunDivergedError):
                await agent.arun("charge", run_id="r", additional_args={"amount": 7})
        (summary,) = await agent.runs()
        assert summary.status is RunStatus.FAILED
        assert summary.holder is None and "RunDivergedError" in (summary.error or "")
        assert await agent.recover() == []


async def test_a_resume_whose_recorded_result_cannot_be_read_releases_its_lease(
    tmp_path: Path,
) -> None:
    broken = {"on": True}
    path = tmp_path / "r.sqlite"
    async with charging_agent(path, broken) as agent:
        await stopped_after_step_1(agent)
    with closing(sqlite3.connect(path)) as db, db:  # as agentloop 0.1 stored a tuple
        rows = db.execute("SELECT seq, data FROM agentloop_entries WHERE kind = 'outcome'")
        for seq, data in rows.fetchall():
            entry = json.loads(data)
            entry["result"] = {"pickle": base64.b64encode(b"\x80\x05K\x01.").decode()}
            db.execute(
                "UPDATE agentloop_entries SET data = ? WHERE run_id = 'r' AND seq = ?",
                (json.dumps(entry), seq),
            )
    broken["on"] = False
    async with charging_agent(path, broken) as agent:
        for _ in range(2):
            with pytest.raises(JournalError, match="pickle"):
                await agent.arun("charge", run_id="r", additional_args={"amount": 5})
        (summary,) = await agent.runs()
        assert summary.status is RunStatus.FAILED and summary.holder is None
        assert await agent.recover() == []
