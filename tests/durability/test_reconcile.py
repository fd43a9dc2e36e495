"""Reconcile hooks, from journals written by hand: what a resumed run does with a task an
earlier attempt left in flight when its target has a hook (done, not done, unknown; a hook
that raises, hangs or answers nonsense), how attempts are numbered across resumes, and how
`reconcile=` is checked."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentloop import (
    InvalidArgumentsError,
    Limits,
    Reconciliation,
    TaskContext,
    create_async_agent,
    current_task,
)
from agentloop.core._effects import idempotency_key
from agentloop.engine import _reconcile
from agentloop.journal import EntryKind
from agentloop.testing import ScriptedModel, code_reply

from .test_resume_details import CHARGE, stopped_attempt

KEY = idempotency_key("pay", "charge_1")


def left_in_flight(path: Path, *attempts: int) -> None:
    """A run that died while `charge_1` ran (after `attempts` were recorded for it)."""
    stopped_attempt(
        path,
        "pay",
        [
            (
                EntryKind.MODEL_REPLY,
                {"content": code_reply(CHARGE), "input_tokens": 0, "output_tokens": 0},
            ),
            (EntryKind.SUBMITTED, {"task_id": "charge_1", "target": "charge"}),
            *[(EntryKind.ATTEMPT, {"task_id": "charge_1", "attempt": n}) for n in attempts],
        ],
    )


class Charges:
    """The `charge` tool, recording each call's task context."""

    def __init__(self) -> None:
        self.calls: list[TaskContext] = []

    def tool(self) -> Any:
        def charge(amount: int) -> str:
            """Charge an amount."""
            self.calls.append(current_task())
            return f"charged {amount}"

        return charge


async def resume(path: Path, hook: Any, charges: Charges, **options: Any) -> Any:
    agent = create_async_agent(
        tools=[charges.tool()],
        model=ScriptedModel([]),  # every step is recorded: the model is never called
        journal=path,
        reconcile={"charge": hook},
        **options,
    )
    async with agent:
        result = await agent.arun("charge", run_id="pay", force=True, return_full_result=True)
        assert agent.journal is not None
        entries = agent.journal.entries("pay")
    return result, entries


async def test_done_completes_the_task_with_the_hooks_result(tmp_path: Path) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    asked: list[tuple[TaskContext, Mapping[str, Any]]] = []

    async def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        asked.append((task, arguments))
        return Reconciliation.done("receipt-from-the-service")

    charges = Charges()
    result, entries = await resume(tmp_path / "runs.sqlite", check, charges)
    assert result.output == "receipt-from-the-service"
    assert charges.calls == []  # not charged again
    assert (result.reconciled_tasks, result.rerun_tasks, result.unknown_tasks) == (1, 0, 0)
    task, arguments = asked[0]
    assert (task.run_id, task.task_id, task.attempt, task.idempotency_key) == (
        "pay",
        "charge_1",
        1,
        KEY,
    )
    assert arguments == {"amount": 5}
    outcome = [e.data for e in entries if e.kind is EntryKind.OUTCOME]
    assert outcome[0]["status"] == "completed"  # the hook's result is journaled
    assert outcome[0]["result"] == {"json": "receipt-from-the-service"}


async def test_not_done_runs_it_again_as_the_next_attempt_with_the_same_key(
    tmp_path: Path,
) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    charges = Charges()
    result, entries = await resume(
        tmp_path / "runs.sqlite", lambda task, arguments: Reconciliation.not_done(), charges
    )
    assert result.output == "charged 5"
    assert [(c.attempt, c.idempotency_key) for c in charges.calls] == [(2, KEY)]
    assert (result.reconciled_tasks, result.rerun_tasks, result.unknown_tasks) == (0, 1, 0)
    recorded = [e.data for e in entries if e.kind is EntryKind.ATTEMPT]
    assert recorded == [{"task_id": "charge_1", "attempt": 2}]  # a later resume counts on


async def test_attempts_count_on_across_resumes(tmp_path: Path) -> None:
    left_in_flight(tmp_path / "runs.sqlite", 2, 3)  # two earlier resumes reran it, and died
    seen: list[int] = []

    def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        seen.append(current_task().attempt)  # a sync hook, in a worker thread, sees it too
        return Reconciliation.not_done()

    charges = Charges()
    await resume(tmp_path / "runs.sqlite", check, charges)
    assert seen == [3]  # the attempt that was in flight
    assert [c.attempt for c in charges.calls] == [4]


async def test_the_hook_decides_for_an_idempotent_target_too(tmp_path: Path) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    charges = Charges()
    result, _ = await resume(
        tmp_path / "runs.sqlite",
        lambda task, arguments: Reconciliation.done("already"),
        charges,
        idempotent={"charge"},
    )
    assert (result.output, charges.calls) == ("already", [])


async def test_unknown_fails_the_task_with_the_hooks_reason(tmp_path: Path) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    charges = Charges()
    result, _ = await resume(
        tmp_path / "runs.sqlite",
        lambda task, arguments: Reconciliation.unknown("the provider is down"),
        charges,
    )
    assert "outcome unknown" in result.output and "the provider is down" in result.output
    assert charges.calls == [] and result.unknown_tasks == 1


async def test_a_hook_that_raises_counts_as_unknown_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    left_in_flight(tmp_path / "runs.sqlite")

    async def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        raise ConnectionError("payment API unreachable")

    charges = Charges()
    with caplog.at_level(logging.WARNING, logger="agentloop"):
        result, _ = await resume(tmp_path / "runs.sqlite", check, charges)
    assert "outcome unknown" in result.output
    assert "ConnectionError: payment API unreachable" in result.output
    assert charges.calls == []  # a broken hook never means "not done"
    assert any("reconcile hook of `charge` raised" in r.getMessage() for r in caplog.records)


async def test_a_hook_that_hangs_is_given_up_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    monkeypatch.setattr(_reconcile, "DEFAULT_TIMEOUT", 0.2)
    release = threading.Event()

    def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        release.wait(10)
        return Reconciliation.done("too late")

    charges = Charges()
    try:
        result, _ = await resume(tmp_path / "runs.sqlite", check, charges)
    finally:
        release.set()
    assert "did not answer within 0.2s" in result.output and "outcome unknown" in result.output
    assert charges.calls == []


async def test_an_async_hook_that_swallows_cancellation_is_given_up_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its deadline holds even if it ignores being cancelled: the run goes on without it (the
    hook is left running, logged) instead of hanging on it."""
    left_in_flight(tmp_path / "runs.sqlite")
    monkeypatch.setattr(_reconcile, "DEFAULT_TIMEOUT", 0.2)
    release = asyncio.Event()

    async def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # a hook that will not be cancelled
        return Reconciliation.done("too late")

    charges = Charges()
    try:
        with anyio.fail_after(20):  # aclose gives up on the hook after a short thread_grace
            result, _ = await resume(
                tmp_path / "runs.sqlite", check, charges, limits=Limits(thread_grace=0.1)
            )
    finally:
        release.set()
    assert "did not answer within 0.2s" in result.output and "outcome unknown" in result.output
    assert charges.calls == []


@pytest.mark.parametrize("answer", [None, "done", True])
async def test_a_hook_that_answers_something_else_counts_as_unknown(
    tmp_path: Path, answer: object
) -> None:
    left_in_flight(tmp_path / "runs.sqlite")
    charges = Charges()
    result, _ = await resume(tmp_path / "runs.sqlite", lambda task, arguments: answer, charges)
    assert "not a `Reconciliation`" in result.output and "outcome unknown" in result.output
    assert charges.calls == []


def test_reconcile_names_registered_targets(tmp_path: Path) -> None:
    def charge(amount: int) -> str:
        """Charge an amount."""
        return "ok"

    def check(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        return Reconciliation.not_done()

    journal = tmp_path / "runs.sqlite"
    with pytest.raises(InvalidArgumentsError, match=r"`charg`.*Did you mean `charge`"):
        create_async_agent(
            tools=[charge], model=ScriptedModel([]), journal=journal, reconcile={"charg": check}
        )
    with pytest.raises(InvalidArgumentsError, match=r"needs a journal"):
        create_async_agent(tools=[charge], model=ScriptedModel([]), reconcile={"charge": check})
    with pytest.raises(InvalidArgumentsError, match=r"must be a callable.*received str"):
        create_async_agent(
            tools=[charge], model=ScriptedModel([]), journal=journal, reconcile={"charge": "x"}
        )
    assert not journal.exists()  # checked before the journal is created
