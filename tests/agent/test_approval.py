"""Human approval that does not stop the run (issue 16, approval)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentloop import (
    AgentloopError,
    ApprovalDecision,
    ApprovalRequest,
    RunEventKind,
    RunStream,
    TaskStatus,
    UnknownTaskError,
    create_async_agent,
)
from agentloop.testing import ScriptedModel

K = RunEventKind


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def deploy(env: str) -> str:
    return f"deployed to {env}"


async def report(n: int) -> int:
    return n


PLAN = """
d = submit_task("tool", "deploy", {"env": "prod"})
others = [submit_task("tool", "report", {"n": i}) for i in range(3)]
early = wait_for_tasks(others + [d], max_wait_time=30, return_when="all")
final_answer([str(early), get_task_results(others + [d])])
"""


async def next_of(stream: RunStream, kind: RunEventKind) -> Any:
    async for event in stream:
        if event.kind is kind:
            return event
    raise AssertionError(f"no {kind} event")


async def seen_both(stream: RunStream, asking: str, submitted: str) -> None:
    """Read `stream` until `asking` has asked for approval and `submitted` was submitted."""
    waiting = {(K.APPROVAL_REQUESTED, asking), (K.TASK_SUBMITTED, submitted)}
    async for event in stream:
        waiting.discard((event.kind, event.task_event.task_id if event.task_event else None))
        if not waiting:
            return
    raise AssertionError(f"the stream ended before {waiting}")


def agent_for(plan: str = PLAN, **options: Any) -> Any:
    return create_async_agent(
        tools=[deploy, report], model=ScriptedModel([plan]), needs_approval={"deploy"}, **options
    )


async def test_approve_through_the_stream_while_the_other_tasks_finish() -> None:
    async with agent_for() as agent, agent.astream("ship it") as stream:
        asked = await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        assert asked.task_event.task_id == "deploy_1"
        assert asked.extra["arguments"] == {"env": "prod"}
        assert asked.extra["asked_by"] == ["async_agent"]
        # the run goes on: the three reports complete while deploy waits
        done: set[str] = set()
        async for event in stream:
            if event.kind is K.TASK_COMPLETED:
                done.add(event.task_event.task_id)
            if len(done) == 3:
                break
        assert agent.task_manager.get_statistics()["pending"] == 1  # awaiting counts as pending
        stream.approve("deploy_1")
        with pytest.raises(AgentloopError, match="already decided"):
            stream.approve("deploy_1")  # answered at most once
        answer = await within(10, stream.result())
    assert answer[1]["deploy_1"] == "deployed to prod"


async def test_a_rejection_fails_the_task_with_the_reason_the_model_reads() -> None:
    async with agent_for() as agent, agent.astream("ship it") as stream:
        await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        stream.reject("deploy_1", "freeze until Monday")
        summary, results = await within(10, stream.result())
    assert not results["deploy_1"]
    assert "rejected: freeze until Monday" in str(results["deploy_1"])
    assert "deploy_1" in summary and "failed" in summary


async def test_no_answer_in_time_rejects_and_unknown_or_foreign_ids_are_refused() -> None:
    async with agent_for(approval_timeout=1.0) as agent:  # room for `first`'s answer on a busy box
        async with agent.astream("one") as first, agent.astream("two") as second:
            # deploy's request and the reports' submissions come in either order: wait for both
            await within(10, seen_both(first, "deploy_1", "report_2"))
            await within(10, next_of(second, K.APPROVAL_REQUESTED))
            with pytest.raises(UnknownTaskError):
                first.approve("no_such_task")
            with pytest.raises(AgentloopError, match="does not await approval"):
                first.approve("report_2")
            # each run's deploy_1 is its own: approving in `first` cannot touch `second`
            first.approve("deploy_1")
            _, results_1 = await within(10, first.result())
            _, results_2 = await within(10, second.result())
    assert results_1["deploy_1"] == "deployed to prod"
    assert "no answer within 1s" in str(results_2["deploy_1"])
    with pytest.raises(AgentloopError, match="already decided"):
        second.approve("deploy_1")  # too late: the clock decided it


async def test_an_approver_coroutine_decides_and_sees_the_request() -> None:
    seen: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        seen.append(request)
        return ApprovalDecision.approve("looks fine")

    async with agent_for(approver=approver) as agent:
        _, results = await within(10, agent.arun("ship it"))
    assert results["deploy_1"] == "deployed to prod"
    assert seen[0].target == "deploy" and seen[0].arguments == {"env": "prod"}


async def test_a_callable_policy_and_a_direct_call_that_waits_for_approval() -> None:
    async def policy(target: str, arguments: dict[str, Any]) -> bool:
        return target == "deploy" and arguments.get("env") == "prod"

    code = 'final_answer([deploy(env="staging"), deploy(env="prod")])'
    agent = create_async_agent(tools=[deploy], model=ScriptedModel([code]), needs_approval=policy)
    async with agent, agent.astream("go") as stream:
        asked = await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        info = agent.task_manager  # the direct call is a task awaiting approval like any other
        assert asked.task_event.status is TaskStatus.AWAITING_APPROVAL
        assert asked.extra["arguments"] == {"env": "prod"}
        stream.approve(asked.task_event.task_id)
        assert await within(10, stream.result()) == ["deployed to staging", "deployed to prod"]
    assert info.get_statistics()["total_completed"] == 2


def test_needs_approval_as_one_string_is_refused_clearly() -> None:
    with pytest.raises(AgentloopError, match="write \\{'deploy'\\}"):
        create_async_agent(tools=[deploy], model=ScriptedModel([]), needs_approval="deploy")


async def test_an_approval_asked_inside_a_managed_agent_reaches_the_parents_stream() -> None:
    child = create_async_agent(
        tools=[deploy],
        model=ScriptedModel(['final_answer(deploy(env="prod"))']),
        name="ops",
        description="Deploys things.",
        needs_approval={"deploy"},
    )
    code = """
tid = submit_task("managed_agent", "ops", {"task": "deploy to prod"})
wait_for_tasks([tid])
final_answer(get_task_results([tid])[tid])
"""
    parent = create_async_agent(managed_agents=[child], model=ScriptedModel([code]), name="lead")
    async with child, parent, parent.astream("ship") as stream:
        asked = await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        assert asked.extra["asked_by"] == ["lead", "ops"]
        assert asked.task_event.target == "deploy"
        stream.approve(asked.extra["approval_id"])
        assert await within(10, stream.result()) == "deployed to prod"


CHILD_DEPLOYS = """
t = submit_task("tool", "deploy", {"env": "prod"})
wait_for_tasks([t])
final_answer(str(get_task_results([t])[t]))
"""


async def test_a_late_answer_to_a_managed_agents_timed_out_request_is_refused() -> None:
    child = create_async_agent(
        tools=[deploy],
        model=ScriptedModel([CHILD_DEPLOYS]),
        name="ops",
        description="Deploys things.",
        needs_approval={"deploy"},
        approval_timeout=0.05,
    )
    code = """
tid = submit_task("managed_agent", "ops", {"task": "deploy to prod"})
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""
    parent = create_async_agent(managed_agents=[child], model=ScriptedModel([code]), name="lead")
    async with child, parent, parent.astream("ship") as stream:
        asked = await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        assert "no answer within" in await within(10, stream.result())  # nobody answered
        with pytest.raises(AgentloopError, match="already decided"):
            stream.approve(asked.extra["approval_id"])


def test_a_non_positive_approval_timeout_is_refused_with_a_callable_policy_too() -> None:
    with pytest.raises(AgentloopError, match="approval_timeout"):
        create_async_agent(
            tools=[deploy],
            model=ScriptedModel([]),
            needs_approval=lambda name, arguments: True,
            approval_timeout=0,
        )


async def test_a_request_carries_its_arguments_as_json_values_bounded() -> None:
    async def configure(settings: dict[str, Any], note: str) -> str:
        return "configured"

    code = """
t = submit_task("tool", "configure", {"settings": {"replicas": 3, "zones": ["a", "b"],
    "ratio": float("nan")}, "note": "x" * 5000})
wait_for_tasks([t], max_wait_time=30)
final_answer(get_task_results([t])[t])
"""
    agent = create_async_agent(
        tools=[configure], model=ScriptedModel([code]), needs_approval={"configure"}
    )
    async with agent, agent.astream("go") as stream:
        asked = await within(10, next_of(stream, K.APPROVAL_REQUESTED))
        stream.approve(asked.extra["approval_id"])
        assert await within(10, stream.result()) == "configured"
    arguments = asked.to_dict()["arguments"]
    assert arguments["settings"] == {"replicas": 3, "zones": ["a", "b"], "ratio": "nan"}
    assert arguments["note"].startswith("xxx") and len(arguments["note"]) <= 300
