"""What a run scope needs of the journal: record what the run does, or hand back what it did.

A `RunJournal` joins the run's `RunLog` (the entries this attempt adds) and, for a
resumed run, its `Replay` (the entries earlier attempts left). The scope asks it to record each
submission, outcome, wait, sleep and read while the run is live; while the run replays, the
scope answers those calls from the replay instead. Task records of a journaled run point here
(`TaskRecord.journal`), so the runner can encode a result before the task counts as completed
and record approval decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..core._effects import ReconcileHook, ReconcileState
from ..core.approvals import ApprovalDecision
from ..errors import JournalError
from ..journal._codec import encoded
from ..journal._replay import Replay
from ..journal._types import BUILTIN_TYPES, JournalTypes
from ..journal._writer import RunLog
from ..journal.base import EntryKind
from ..tasks import TaskStatus, WaitOutcome
from ._record import TaskRecord

__all__ = ["RunJournal"]

logger = logging.getLogger("agentloop")


class RunJournal:
    """The journal of one run attempt, as its scope sees it."""

    def __init__(
        self,
        log: RunLog,
        replay: Replay | None,
        *,
        idempotent: frozenset[str],
        fail_run: Callable[[JournalError], None],
        reconcile: Mapping[str, ReconcileHook] | None = None,
        types: JournalTypes = BUILTIN_TYPES,
    ) -> None:
        """`types`: the classes results may be stored as (the agent's `journal_types`)."""
        self.log = log
        self.types = types
        self.replay = replay
        self.idempotent = idempotent
        self.reconcile: Mapping[str, ReconcileHook] = reconcile or {}
        """Per target: asked, after a resume, whether an interrupted task's effect happened."""
        self.live = replay is None or replay.done
        """False while recorded calls remain to be replayed."""
        self._fail_run = fail_run
        self.wake_scope: Callable[[], None] = lambda: None
        """Set by the scope's `ScopeJournal`: brings it up to date with the replay (from any
        thread)."""
        self.rerun = 0
        self.unknown = 0
        self.reconciled_done = 0
        self.replayed_tasks = 0
        self.handles = 0
        """Handles of outside work recorded by this attempt's tasks."""
        self.reattached = 0
        """Tasks of an earlier attempt resumed by re-attaching to their recorded handle."""
        self._digests: dict[str, str] = {}
        """Each task's arguments digest, for the approval decided on them (see `_digest`)."""
        self.outcome_version = 0
        """The log version that makes the latest recorded outcome durable (see `shown`)."""

    def release(self) -> None:
        """The run has ended: let go of the callbacks into its scope and run (and the log's),
        which point back here, so that reference counting frees the run (see
        `ControllerRun.release`)."""
        self._fail_run = _no_run
        self.wake_scope = _nothing
        self.log.release()

    def fail(self, error: JournalError) -> None:
        """Stop the run: the journal cannot go on (a write failed, or the replay diverged)."""
        self._fail_run(error)

    # -- recording (live) ---------------------------------------------------------------------

    def submitted(self, record: TaskRecord, digest: str) -> None:
        """Record a live submission with its arguments' digest."""
        record.journal = self
        self._digests[record.task_id] = digest
        record.journal_seq = self.log.add(
            EntryKind.SUBMITTED,
            {"task_id": record.task_id, "target": record.target.name, "args": digest},
        )

    def replayed(self, record: TaskRecord, digest: str) -> None:
        """A replayed submission matched its entry: keep its digest (a rerun's approval)."""
        self._digests[record.task_id] = digest
        record.replayed = True
        self.replayed_tasks += 1

    async def encode_result(self, record: TaskRecord, value: Any) -> dict[str, Any]:
        """The stored form of a task's result (encoded off the loop); raises before the task
        counts as completed."""
        what = f"the result of task `{record.task_id}` (`{record.target.name}`)"
        return await encoded(value, what, self.types)

    def outcome(self, record: TaskRecord) -> None:
        if self.log.failure is not None:
            return  # the run is already failing with that error; nothing more is written
        data: dict[str, Any] = {
            "task_id": record.task_id,
            "status": record.status.value,
            "error": record.error,
        }
        if record.status is TaskStatus.COMPLETED:
            data["result"] = record.encoded
        self.outcome_version = self.log.add(EntryKind.OUTCOME, data)

    def approval_decided(self, record: TaskRecord, decision: ApprovalDecision) -> None:
        self.log.add(
            EntryKind.APPROVAL,
            {
                "task_id": record.task_id,
                "approved": decision.approved,
                "reason": decision.reason,
                "args": self._digests.get(record.task_id),
            },
        )

    def recorded_decision(self, task_id: str) -> ApprovalDecision | None:
        """The decision an earlier attempt recorded for this task, so a rerun is not asked
        again: only if it was decided on these arguments (an approval recorded before digests
        has none and applies, as it did)."""
        entry = self.replay.approvals.get(task_id) if self.replay is not None else None
        if entry is None:
            return None
        decided_on = entry.data.get("args")
        if decided_on is not None and decided_on != self._digests.get(task_id):
            logger.warning(
                "task %s: the approval recorded for it was decided on other arguments; "
                "asking again",
                task_id,
            )
            return None
        return ApprovalDecision(approved=bool(entry.data["approved"]), reason=entry.data["reason"])

    async def attempt_started(self, record: TaskRecord, attempt: int) -> None:
        """Record that a task starts again (a retry, or a rerun after a resume) and wait until
        that is durable, so a later process numbers its next attempt after this one."""
        seq = self.log.add(EntryKind.ATTEMPT, {"task_id": record.task_id, "attempt": attempt})
        await self.log.durable(seq)

    def recorded_attempts(self, task_id: str) -> int:
        """How many attempts of a task earlier processes started (at least the first)."""
        return self.replay.attempts.get(task_id, 1) if self.replay is not None else 1

    def reconciled(self, record: TaskRecord, state: ReconcileState) -> None:
        """Count what a reconcile hook answered for a task left in flight."""
        if state is ReconcileState.DONE:
            self.reconciled_done += 1
        elif state is ReconcileState.NOT_DONE:
            self.rerun += 1
        else:
            self.unknown += 1

    async def handle_recorded(self, record: TaskRecord, handle: dict[str, Any]) -> None:
        """Record the handle of work outside the process the task started (a remote task)
        and wait until that is durable: a crash from then on re-attaches instead of
        starting the work again (see `_handles`)."""
        seq = self.log.add(EntryKind.HANDLE, {"task_id": record.task_id, "handle": handle})
        await self.log.durable(seq)
        self.handles += 1

    def waited(self, outcome: WaitOutcome) -> None:
        self.log.add(
            EntryKind.WAITED,
            {
                "completed": list(outcome.completed),
                "failed": list(outcome.failed),
                "pending": list(outcome.pending),
                "timed_out": outcome.timed_out,
                "waited": round(outcome.waited_seconds, 3),
                "errors": dict(outcome.errors),
            },
        )

    def looked(self, call: str) -> None:
        self.log.add(EntryKind.LOOKED, {"call": call})

    def slept(self, seconds: float) -> None:
        self.log.add(EntryKind.SLEPT, {"seconds": seconds})

    # -- replaying ------------------------------------------------------------------------------

    def recorded_wait(self, data: Any) -> WaitOutcome:
        return WaitOutcome(
            completed=tuple(data["completed"]),
            failed=tuple(data["failed"]),
            pending=tuple(data["pending"]),
            timed_out=bool(data["timed_out"]),
            waited_seconds=float(data["waited"]),
            errors=dict(data["errors"]),
        )


def _no_run(error: JournalError) -> None:
    """A released journal's failure: its run has ended, nobody is left to stop."""


def _nothing() -> None:
    """A released journal's scope: gone."""
