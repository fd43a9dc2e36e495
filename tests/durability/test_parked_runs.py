"""Parked runs (`park_after=`): a journaled run left with nothing but tasks awaiting approval
stops and holds nothing; a decision recorded in the journal resumes it.

The hundred-run, two-process proof is `test_parked_many.py`; these are the single-run rules.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentloop import (
    AgentloopError,
    ApprovalDecision,
    InvalidArgumentsError,
    RunEventKind,
    RunLeasedError,
    RunParkedError,
    SQLiteJournal,
    UnknownRunError,
    create_async_agent,
)
from agentloop.journal import EntryKind, RunStatus
from agentloop.testing import ScriptedModel

PARK = 0.05

DEPLOY = """
t = submit_task("tool", "deploy", {"env": "prod", "replicas": 3})
outcome = wait_for_tasks([t], max_wait_time=60)
final_answer(str(get_task_results([t])[t]))
"""


async def deploy(env: str, replicas: int) -> str:
    """Deploy.

    Args:
        env: where.
        replicas: how many.
    """
    return f"deployed {env} x{replicas}"


def agent_for(path: Path, steps: list[str] = [DEPLOY], **options: Any) -> Any:  # noqa: B006
    options = {"park_after": PARK, "needs_approval": {"deploy"}} | options
    return create_async_agent(
        tools=[deploy, *options.pop("tools", [])],
        model=ScriptedModel(steps),
        journal=path,
        **options,
    )


async def parked(agent: Any, run_id: str, task: str = "deploy") -> RunParkedError:
    with pytest.raises(RunParkedError) as caught:
        await agent.arun(task, run_id=run_id)
    return caught.value


def status(path: Path, run_id: str) -> Any:
    with SQLiteJournal(path) as journal:
        return journal.run(run_id)


async def test_park_after_needs_a_journal_and_a_positive_number(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentsError, match="needs a journal"):
        create_async_agent(tools=[deploy], model=ScriptedModel([]), park_after=1.0)
    for bad in (0, -1.0, float("nan"), True, "60"):
        with pytest.raises(InvalidArgumentsError, match="park_after"):
            create_async_agent(
                tools=[deploy], model=ScriptedModel([]), journal=tmp_path / "r.db", park_after=bad
            )


async def test_a_run_that_only_waits_for_approval_parks_and_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        error = await parked(agent, "order-1")
        assert error.run_id == "order-1"
        assert error.approval_ids == ("deploy_1",)
        assert "agent.decide('order-1'" in str(error)
        # nothing held: no run, no scope, no controller thread at work, no slot
        assert not agent._runs
        assert not agent.task_manager.scope_is_open("order-1")
        assert agent._controller_threads.live == 0
        assert agent._limiters.runs.borrowed_tokens == 0
        assert agent.task_manager.get_statistics()["pending"] == 0
        summary = status(path, "order-1")
        assert summary.status is RunStatus.PARKED
        assert summary.holder is None and summary.lease_expires is None
        [request] = await agent.pending_approvals("order-1")
        assert (request.task_id, request.target) == ("deploy_1", "deploy")
        assert request.arguments == {"env": "prod", "replicas": 3}  # JSON values, not reprs
        assert request.asked_by == ("async_agent",)

        await agent.decide("order-1", "deploy_1", ApprovalDecision.approve("ok by ann"))
        assert status(path, "order-1").status is RunStatus.RUNNING  # resumable, unheld
        assert await agent.pending_approvals("order-1") == []
        result = await agent.resume("order-1", return_full_result=True)
    assert result.output == "deployed prod x3"
    assert (result.replayed_steps, result.rerun_tasks, result.unknown_tasks) == (1, 0, 0)
    assert status(path, "order-1").status is RunStatus.COMPLETED


async def test_a_rejected_task_fails_with_the_reason_the_model_reads(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    read = """
print(get_task_results(["deploy_1"])["deploy_1"])
final_answer("read: " + str(get_task_results(["deploy_1"])["deploy_1"]))
"""
    async with agent_for(path, [DEPLOY.replace("final_answer", "print"), read]) as agent:
        await parked(agent, "r")
    async with agent_for(path, [DEPLOY.replace("final_answer", "print"), read]) as other:
        await other.decide("r", "deploy_1", ApprovalDecision.reject("not on a Friday"))
        answer = await other.resume("r")
    assert "rejected: not on a Friday" in answer


async def test_decide_refuses_what_it_cannot_decide(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        with pytest.raises(UnknownRunError, match="no run `nope`"):
            await agent.decide("nope", "deploy_1", ApprovalDecision.approve())
        with pytest.raises(UnknownRunError):
            await agent.pending_approvals("nope")
        await parked(agent, "r")
        with pytest.raises(AgentloopError, match="does not wait for a decision on `deploy_9`"):
            await agent.decide("r", "deploy_9", ApprovalDecision.approve())
        await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        with pytest.raises(AgentloopError, match="already decided"):
            await agent.decide("r", "deploy_1", ApprovalDecision.reject("too late"))
        assert await agent.resume("r") == "deployed prod x3"
        with pytest.raises(AgentloopError, match="is completed: it waits for no decision"):
            await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        # a run that never parked (not journaled as waiting) is refused too
        plain = create_async_agent(tools=[deploy], model=ScriptedModel([DEPLOY]), journal=path)
        assert await plain.arun("plain", run_id="p") == "deployed prod x3"
        with pytest.raises(AgentloopError, match="waits for no decision"):
            await plain.decide("p", "deploy_1", ApprovalDecision.approve())
        await plain.aclose()
    other = agent_for(path, instructions="another agent")
    async with agent_for(path) as agent:
        await parked(agent, "q")
    with pytest.raises(AgentloopError, match="configured differently"):
        await other.decide("q", "deploy_1", ApprovalDecision.approve())
    await other.aclose()


async def test_two_decisions_at_once_record_one(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        await parked(agent, "r")
        outcomes = await asyncio.gather(
            agent.decide("r", "deploy_1", ApprovalDecision.approve("first")),
            agent.decide("r", "deploy_1", ApprovalDecision.reject("second")),
            return_exceptions=True,
        )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and "already decided" in str(errors[0])
    with SQLiteJournal(path) as journal:
        decisions = [e for e in journal.entries("r") if e.kind is EntryKind.APPROVAL]
    assert len(decisions) == 1


async def test_recover_leaves_a_parked_run_and_resumes_it_once_decided(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        await parked(agent, "r")
        with SQLiteJournal(path) as journal:
            assert journal.recoverable() == []
        assert await agent.recover() == []
        assert status(path, "r").status is RunStatus.PARKED
        await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        [recovered] = await agent.recover()
    assert recovered.run_id == "r" and recovered.result is not None
    assert recovered.result.output == "deployed prod x3"


async def test_no_park_while_another_task_runs(tmp_path: Path) -> None:
    """The run parks only once `work` has ended: its outcome is recorded before the park,
    though `work` runs six times longer than `park_after`."""
    path = tmp_path / "runs.sqlite"

    async def work() -> str:
        """Work a while."""
        await asyncio.sleep(6 * PARK)  # the workload, not a synchronisation
        return "worked"

    both = """
a = submit_task("tool", "deploy", {"env": "prod", "replicas": 1})
b = submit_task("tool", "work", {})
wait_for_tasks([a, b], max_wait_time=60)
final_answer(str(get_task_results([a, b])))
"""
    async with agent_for(path, [both], tools=[work]) as agent:
        error = await parked(agent, "r")
    assert error.approval_ids == ("deploy_1",)
    with SQLiteJournal(path) as journal:
        kinds = [(e.kind, e.data.get("task_id")) for e in journal.entries("r")]
    assert kinds.index((EntryKind.OUTCOME, "work_2")) < kinds.index((EntryKind.PARKED, None))


async def test_an_answer_in_time_means_no_park(tmp_path: Path) -> None:
    """Decided before `park_after`, through the run's own stream: no park."""
    path = tmp_path / "runs.sqlite"
    async with (
        agent_for(path, park_after=30.0) as agent,
        agent.astream("deploy", run_id="r") as stream,
    ):
        async for event in stream:
            if event.kind is RunEventKind.APPROVAL_REQUESTED:
                # decided where it runs: `decide` finds the live run in this process
                assert [r.task_id for r in await agent.pending_approvals("r")] == ["deploy_1"]
                await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        assert await stream.result() == "deployed prod x3"


async def test_a_streamed_run_ends_its_stream_with_run_parked(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        async with agent.astream("deploy", run_id="r") as stream:
            kinds = [event async for event in stream]
            with pytest.raises(RunParkedError):
                await stream.result()
        last = kinds[-1]
        assert last.kind is RunEventKind.RUN_PARKED and not last.kind.is_end
        assert last.to_dict()["approval_ids"] == ["deploy_1"]
        assert RunEventKind.STEP not in [e.kind for e in kinds]  # the cut step is not shown
        with SQLiteJournal(path) as journal:
            recorded = [e.data["kind"] for e in journal.entries("r") if e.kind is EntryKind.EVENT]
        assert recorded[-1] == "run_parked"
        with pytest.raises(AgentloopError):
            stream.approve("deploy_1")  # the run left: its journal takes the decision
        await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        async with agent.astream("deploy", run_id="r") as resumed:
            events = [event async for event in resumed]
        assert await resumed.result() == "deployed prod x3"
    assert [e.kind for e in events[:2]] == [RunEventKind.RUN_STARTED, RunEventKind.RUN_RESUMED]
    with SQLiteJournal(path) as journal:
        recorded = [e.data["kind"] for e in journal.entries("r") if e.kind is EntryKind.EVENT]
    assert recorded.count("step") == 1  # recorded once, by the attempt that completed it
    assert recorded[-1] == "final_answer"


async def test_a_running_run_in_another_process_is_not_decided_from_here(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        await parked(agent, "r")
    with SQLiteJournal(path) as journal:  # another live process holds it now
        from agentloop.journal import LeaseHolder

        summary = journal.run("r")
        holder = LeaseHolder(host="elsewhere")
        journal.claim(
            "r",
            task=summary.task,
            fingerprint=summary.fingerprint,
            holder=holder,
            lease_seconds=300,
            force=False,
        )
    async with agent_for(path) as agent:
        with pytest.raises(RunLeasedError, match="decide its task through the run's stream"):
            await agent.decide("r", "deploy_1", ApprovalDecision.approve())


async def test_a_run_resumed_before_its_decision_parks_again(tmp_path: Path) -> None:
    """Its parked task starts afresh (asks again, never "outcome unknown") and the run parks
    again; the decision then finishes it."""
    path = tmp_path / "runs.sqlite"
    async with agent_for(path) as agent:
        await parked(agent, "r")
        with pytest.raises(RunParkedError):
            await agent.resume("r")
        assert [r.task_id for r in await agent.pending_approvals("r")] == ["deploy_1"]
        await agent.decide("r", "deploy_1", ApprovalDecision.approve())
        result = await agent.resume("r", return_full_result=True)
    assert (result.output, result.unknown_tasks) == ("deployed prod x3", 0)
    with SQLiteJournal(path) as journal:
        kinds = [e.kind for e in journal.entries("r")]
        assert journal.run("r").attempts == 4  # two attempts parked, a decision, the last
    assert kinds.count(EntryKind.PARKED) == 2
