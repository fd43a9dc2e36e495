"""A replayed submission must be the recorded one, arguments included: the same task id and
target with other arguments is `RunDivergedError` (the recorded result was for the recorded
arguments), and a recorded approval is reused only for the arguments it decided on."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from agentloop import ApprovalDecision, RunDivergedError, SQLiteJournal, create_async_agent
from agentloop.journal import EntryKind, JournalEntry, LeaseHolder
from agentloop.testing import FunctionModel, ScriptedModel, code_reply

SUBMITTED = """
tid = submit_task("tool", "charge", {"amount": amount})
wait_for_tasks([tid])
receipt = get_task_results([tid])[tid]
"""
DIRECT = """
receipt = charge(amount=amount)
"""


def assistant_steps(messages: list[Any]) -> int:
    return sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")


def failing_after_step_1(code: str, broken: dict[str, bool]) -> FunctionModel:
    """Step 1 runs `code`; step 2 fails while `broken` (the run stops, to be resumed)."""

    def reply(messages: list[Any]) -> str:
        if assistant_steps(messages) == 0:
            return code
        if broken["on"]:
            raise ConnectionError("down")
        return "final_answer(receipt)"

    return FunctionModel(reply)


@pytest.mark.parametrize("code", [SUBMITTED, DIRECT], ids=["submit_task", "direct-call"])
async def test_a_replayed_call_with_other_arguments_diverges(tmp_path: Path, code: str) -> None:
    charged: list[int] = []

    async def charge(amount: int) -> str:
        """Charge an amount."""
        charged.append(amount)
        return f"receipt for {amount}"

    broken = {"on": True}
    agent = create_async_agent(
        tools=[charge], model=failing_after_step_1(code, broken), journal=tmp_path / "r.sqlite"
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("charge", run_id="r", additional_args={"amount": 5})
        # the same arguments replay (the tool is not called again) up to the failing step
        with pytest.raises(Exception, match="down"):
            await agent.arun("charge", run_id="r", additional_args={"amount": 5})
        broken["on"] = False
        with pytest.raises(RunDivergedError, match="arguments") as diverged:
            await agent.arun("charge", run_id="r", additional_args={"amount": 7})
    message = str(diverged.value)
    assert "`charge`" in message and "new run id" in message
    assert charged == [5]


async def test_an_approval_for_staging_is_not_reused_for_prod(tmp_path: Path) -> None:
    code = """
tid = submit_task("tool", "deploy", {"env": env}, task_id="deploy-1")
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""
    started = asyncio.Event()
    hang = {"on": True}
    deployed: list[str] = []
    asked: list[str] = []

    async def deploy(env: str) -> str:
        """Deploy to an environment."""
        deployed.append(env)
        started.set()
        if hang["on"]:
            await asyncio.Event().wait()
        return f"deployed to {env}"

    async def approver(request: Any) -> ApprovalDecision:
        asked.append(request.arguments["env"])
        return ApprovalDecision.approve()

    agent = create_async_agent(
        tools=[deploy],
        model=FunctionModel(lambda messages: code),
        journal=tmp_path / "r.sqlite",
        idempotent={"deploy"},
        needs_approval={"deploy"},
        approver=approver,
    )
    async with agent:
        first = asyncio.create_task(
            agent.arun("deploy", run_id="d", additional_args={"env": "staging"})
        )
        await asyncio.wait_for(started.wait(), 10)
        first.cancel()  # the attempt stops with `deploy` in flight, approved for staging
        with contextlib.suppress(asyncio.CancelledError):
            await first
        hang["on"] = False
        with pytest.raises(RunDivergedError, match="arguments"):
            await agent.arun("deploy", run_id="d", additional_args={"env": "prod"})
    assert (deployed, asked) == (["staging"], ["staging"])  # prod: neither asked nor run


CHARGE = """
tid = submit_task("tool", "charge", {"amount": 5})
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""


def stopped_attempt(path: Path, entries: list[tuple[EntryKind, dict[str, Any]]]) -> None:
    """What an attempt that died left: a running run `pay` whose holder is gone."""
    with SQLiteJournal(path) as journal:
        holder = LeaseHolder(pid=2**22 + 12345)  # no such process on this host
        journal.claim(
            "pay", task="charge", fingerprint="", holder=holder, lease_seconds=300, force=False
        )
        entries = [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(CHARGE), "input_tokens": 0, "output_tokens": 0},
            ),
            *entries,
        ]
        journal.append(
            "pay",
            holder,
            [JournalEntry(seq=i, kind=k, data=d) for i, (k, d) in enumerate(entries, start=1)],
            300,
        )


async def resumed_charge(path: Path) -> tuple[str, list[int], list[int]]:
    calls: list[int] = []
    asked: list[int] = []

    async def charge(amount: int) -> str:
        """Charge an amount."""
        calls.append(amount)
        return f"charged {amount}"

    async def approver(request: Any) -> ApprovalDecision:
        asked.append(request.arguments["amount"])
        return ApprovalDecision.approve()

    agent = create_async_agent(
        tools=[charge],
        model=ScriptedModel([]),
        journal=path,
        idempotent={"charge"},
        needs_approval={"charge"},
        approver=approver,
    )
    async with agent:
        answer = await agent.arun("charge", run_id="pay", force=True)
    return answer, calls, asked


async def test_a_recorded_approval_for_other_arguments_asks_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    stopped_attempt(
        path,
        [
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge"}),  # from before
            (
                EntryKind.APPROVAL,
                # decided on other arguments than the task now has
                {"task_id": "charge_1", "approved": True, "reason": "", "args": "0" * 32},
            ),
        ],
    )
    assert await resumed_charge(path) == ("charged 5", [5], [5])


async def test_a_recorded_approval_for_these_arguments_is_not_asked_again(tmp_path: Path) -> None:
    from agentloop.journal._digest import arguments_digest

    path = tmp_path / "runs.sqlite"
    digest = arguments_digest({"amount": 5})
    stopped_attempt(
        path,
        [
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge", "args": digest}),
            (
                EntryKind.APPROVAL,
                {"task_id": "charge_1", "approved": True, "reason": "ok", "args": digest},
            ),
        ],
    )
    assert await resumed_charge(path) == ("charged 5", [5], [])
