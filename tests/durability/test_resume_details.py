"""A resumed run's finer points, from journals written by hand: an earlier attempt that stopped
right after a recorded approval, a heartbeat that keeps the lease, sleeps that are not slept
again, and a lease that another attempt took over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from agentloop import ApprovalDecision, RunLeasedError, SQLiteJournal, create_async_agent
from agentloop.journal import EntryKind, JournalEntry, LeaseHolder, RunStatus
from agentloop.testing import ScriptedModel, code_reply

CHARGE = """
tid = submit_task("tool", "charge", {"amount": 5})
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""


def stopped_attempt(
    path: Path, run_id: str, entries: list[tuple[EntryKind, dict[str, Any]]]
) -> None:
    """Write what an attempt that died would have left: a running run whose holder is gone."""
    with SQLiteJournal(path) as journal:
        holder = LeaseHolder(pid=2**22 + 12345)  # no such process on this host
        journal.claim(
            run_id,
            task="charge",
            fingerprint="",
            holder=holder,
            lease_seconds=300,
            force=False,
        )
        journal.append(
            run_id,
            holder,
            [JournalEntry(seq=i, kind=k, data=d) for i, (k, d) in enumerate(entries, start=1)],
            300,
        )


def charge_tool(calls: list[int]) -> Any:
    async def charge(amount: int) -> str:
        """Charge an amount."""
        calls.append(amount)
        return f"charged {amount}"

    return charge


async def test_an_approved_task_in_flight_reruns_without_asking_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    stopped_attempt(
        path,
        "pay",
        [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(CHARGE), "input_tokens": 3, "output_tokens": 4},
            ),
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge"}),
            (EntryKind.APPROVAL, {"task_id": "charge_1", "approved": True, "reason": "ok by ann"}),
        ],
    )
    asked: list[str] = []

    async def approver(request: Any) -> ApprovalDecision:
        asked.append(request.task_id)
        return ApprovalDecision.approve()

    calls: list[int] = []
    agent = create_async_agent(
        tools=[charge_tool(calls)],
        model=ScriptedModel([]),  # every step is recorded: the model is never called
        journal=path,
        idempotent={"charge"},
        needs_approval={"charge"},
        approver=approver,
    )
    async with agent:
        result = await agent.arun("charge", run_id="pay", force=True, return_full_result=True)
    assert result.output == "charged 5"
    assert (calls, asked) == ([5], [])
    assert (result.replayed_steps, result.rerun_tasks) == (1, 1)


async def test_a_task_in_flight_that_is_not_idempotent_is_reported_unknown(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    stopped_attempt(
        path,
        "pay",
        [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(CHARGE), "input_tokens": 0, "output_tokens": 0},
            ),
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge"}),
        ],
    )
    calls: list[int] = []
    agent = create_async_agent(tools=[charge_tool(calls)], model=ScriptedModel([]), journal=path)
    async with agent:
        answer = await agent.arun("charge", run_id="pay", force=True)
        assert agent.journal is not None
        outcome = [e for e in agent.journal.entries("pay") if e.kind is EntryKind.OUTCOME]
    assert calls == []
    assert "outcome unknown" in answer and "idempotent={'charge'}" in answer
    assert outcome[0].data["status"] == "failed"  # the verdict is journaled too


async def test_recorded_sleeps_are_not_slept_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    code = 'sleep(3600, reason="the first attempt slept an hour")\nfinal_answer("woke")'
    stopped_attempt(
        path,
        "nap",
        [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(code), "input_tokens": 0, "output_tokens": 0},
            ),
            (EntryKind.SLEPT, {"seconds": 60.0}),
        ],
    )
    agent = create_async_agent(model=ScriptedModel([]), journal=path)
    started = time.monotonic()
    async with agent:
        assert await agent.arun("charge", run_id="nap", force=True) == "woke"
    assert time.monotonic() - started < 30  # not the 60 s the sleep was capped to


async def test_the_heartbeat_keeps_the_lease_of_a_run_that_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.sqlite"
    gate, running = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        """Wait for the gate."""
        running.set()
        await gate.wait()
        return "done"

    code = (
        'tid = submit_task("tool", "slow", {})\n'
        "wait_for_tasks([tid], max_wait_time=60)\n"
        "final_answer(1)"
    )
    agent = create_async_agent(
        tools=[slow], model=ScriptedModel([code]), journal=path, lease_seconds=0.3
    )
    async with agent:
        run = asyncio.ensure_future(agent.arun("go", run_id="long"))
        await running.wait()
        assert agent.journal is not None
        first = agent.journal.run("long")
        assert first is not None and first.lease_expires is not None
        renewals = 0
        last = first.lease_expires
        # each heartbeat pushes the expiry on; go on until the first lease would have run out
        # (bounded by the test timeout)
        while renewals < 3 or time.time() <= first.lease_expires:
            await asyncio.sleep(0.05)
            now = agent.journal.run("long")
            assert now is not None and now.lease_expires is not None
            if now.lease_expires > last:
                renewals, last = renewals + 1, now.lease_expires
        assert time.time() > first.lease_expires  # the first lease would have run out
        with pytest.raises(RunLeasedError, match="being run by pid"):
            agent.journal.claim(
                "long", task="go", fingerprint="", holder=LeaseHolder(), lease_seconds=1, force=True
            )
        gate.set()
        assert await run == 1
    with SQLiteJournal(path, read_only=True) as journal:
        summary = journal.run("long")
    assert summary is not None and summary.status is RunStatus.COMPLETED


async def test_an_attempt_whose_lease_was_taken_over_stops(tmp_path: Path) -> None:
    """A process that stalled past its lease, while another resumed the run, must not write
    on: its next write (here, the heartbeat) fails and the run stops with `RunLeasedError`."""
    import sqlite3

    path = tmp_path / "runs.sqlite"
    running = asyncio.Event()

    async def slow() -> str:
        """Hang."""
        running.set()
        await asyncio.Event().wait()
        return "never"

    code = 'tid = submit_task("tool", "slow", {})\nwait_for_tasks([tid], max_wait_time=60)'
    agent = create_async_agent(
        tools=[slow], model=ScriptedModel([code]), journal=path, lease_seconds=0.3
    )
    async with agent:
        run = asyncio.ensure_future(agent.arun("go", run_id="stolen"))
        await running.wait()
        other = sqlite3.connect(path)
        with other:
            other.execute("UPDATE agentloop_runs SET holder_token = 'someone-else'")
        other.close()
        with pytest.raises(RunLeasedError, match="no longer leased to this process"):
            await run
        assert agent.task_manager.get_statistics()["running"] == 0


async def test_outcomes_recorded_between_submissions_are_replayed(tmp_path: Path) -> None:
    """Task 2 finished before task 3 was submitted: the replay passes its outcome while the
    replayed submissions are still on their way to the loop, and must not lose it."""
    path = tmp_path / "runs.sqlite"
    code = """
ids = [submit_task("tool", "charge", {"amount": n}) for n in (1, 2, 3)]
wait_for_tasks(ids)
final_answer(sorted(get_task_results(ids).values()))
"""

    def outcome(task_id: str, result: str) -> tuple[EntryKind, dict[str, Any]]:
        data = {
            "task_id": task_id,
            "status": "completed",
            "error": None,
            "result": {"json": result},
        }
        return EntryKind.OUTCOME, data

    stopped_attempt(
        path,
        "early",
        [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(code), "input_tokens": 0, "output_tokens": 0},
            ),
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge"}),
            (EntryKind.SUBMITTED, {"task_id": "charge_2", "target": "charge"}),
            outcome("charge_2", "b"),
            (EntryKind.SUBMITTED, {"task_id": "charge_3", "target": "charge"}),
            outcome("charge_3", "c"),
            outcome("charge_1", "a"),
            (
                EntryKind.WAITED,
                {
                    "completed": ["charge_1", "charge_2", "charge_3"],
                    "failed": [],
                    "pending": [],
                    "timed_out": False,
                    "waited": 0.1,
                    "errors": {},
                },
            ),
        ],
    )
    calls: list[int] = []
    agent = create_async_agent(tools=[charge_tool(calls)], model=ScriptedModel([]), journal=path)
    async with agent:
        result = await agent.arun("charge", run_id="early", force=True, return_full_result=True)
    assert result.output == ["a", "b", "c"] and calls == []
    assert (result.replayed_tasks, result.rerun_tasks, result.unknown_tasks) == (3, 0, 0)
