"""The registry's private, mutable record of one task; users only ever see `TaskInfo` snapshots."""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.trace import Span, SpanContext

from ..core._approving import PendingApproval
from ..core._effects import ReconcileHook, ReconcileState
from ..core._targets import Target
from ..core.approvals import ApprovalDecision
from ..tasks import TaskFailure, TaskInfo, TaskProgress, TaskStatus

__all__ = ["Launch", "RecordJournal", "TaskRecord"]


class RecordJournal(Protocol):
    """What the runner asks of the journal of a journaled run's task (`_run_journal`)."""

    async def encode_result(self, record: TaskRecord, value: Any) -> dict[str, Any]: ...

    def approval_decided(self, record: TaskRecord, decision: ApprovalDecision) -> None: ...

    def recorded_decision(self, task_id: str) -> ApprovalDecision | None: ...

    async def attempt_started(self, record: TaskRecord, attempt: int) -> None: ...

    def reconciled(self, record: TaskRecord, state: ReconcileState) -> None: ...

    async def remote_started(self, record: TaskRecord, handle: Any) -> None: ...

    def recorded_remote(self, task_id: str) -> Any: ...


@dataclass(slots=True, eq=False, kw_only=True)
class TaskRecord:
    """Mutable state of one task, owned by the loop thread (never touched from other threads)."""

    task_id: str
    scope_id: str
    target: Target
    arguments: dict[str, Any]
    depends_on: tuple[str, ...]
    timeout: float | None
    retries: int
    created_at: float
    status: TaskStatus = TaskStatus.PENDING
    started_at: float | None = None
    completed_at: float | None = None
    result: Any = None
    error: str | None = None
    attempts: int = 0
    task: asyncio.Task[None] | None = None
    approval: PendingApproval | None = None
    """While the task awaits approval: its request and decision."""
    asked_approval: bool = False
    """Whether the task ever waited for approval (its decision is final)."""
    settled: bool = False
    """Whether its scope has counted it as finished (once, even if abandoned code ends later)."""
    journal: RecordJournal | None = None
    """The run's journal, when the run has one (and this task is live, not replayed)."""
    journal_seq: int = 0
    """The sequence number of its submission entry: its code starts once that is durable."""
    encoded: Any = None
    """Its result as the journal stores it (encoded before it counts as completed)."""
    replayed: bool = False
    """A task of an earlier attempt, shown from the journal (it does not run)."""
    run_key: str = ""
    """What its idempotency key is derived from with its id (`core._effects`): the run id in
    a journaled run (stable across resumes), else the run id with a nonce of its scope."""
    attempt_base: int = 0
    """Attempts an earlier process started (a task rerun after a resume): numbering goes on."""
    reconcile: ReconcileHook | None = None
    """Set on a task an earlier attempt left in flight whose target has a reconcile hook:
    asked before the task runs again."""
    span: Span | None = None
    """The task's span while it runs (only when tracing is enabled)."""
    span_context: SpanContext | None = None
    """Kept after the span ends, so waits and dependents can link to it."""
    progress: TaskProgress | None = None
    """The last progress its code reported (see `TaskEngine.progress`)."""

    def snapshot(self) -> TaskInfo:
        return TaskInfo(
            task_id=self.task_id,
            task_type=self.target.task_type,
            target_name=self.target.name,
            arguments=self.arguments,
            status=self.status,
            created_at=self.created_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            result=self.result,
            error=self.error,
            attempts=self.attempts,
            depends_on=self.depends_on,
            progress=self.progress,
        )

    def failure(self) -> TaskFailure:
        """The stand-in result of a task that has none (yet)."""
        if self.status.is_final:
            reason = self.error or self.status.value
        else:
            reason = "not finished yet; wait for it first"
        return TaskFailure(task_id=self.task_id, status=self.status, error=reason)


Launch = tuple[TaskRecord, list[TaskRecord], contextvars.Context | None]
"""A reserved task with what it starts with: its upstream records and the submitter's context."""
