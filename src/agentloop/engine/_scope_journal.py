"""The journal's side of a run scope: recording what a run does, replaying what it did.

`RunScope` inherits this. Live, each call of the run's code is recorded in the scope's
`RunJournal` after it took effect (a submission before its task can start: see
`_durable_then_execute`). Resumed, the calls are answered from the `Replay` instead: the
recorded outcomes are revealed just before the call that saw them (`_sync_replay`), and once
the record ends the run goes live, deciding on the tasks an earlier attempt left in flight
(`_rerun_or_give_up`). Kept apart from `scope` so that module stays the lifecycle and the
public face.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Mapping
from typing import Any

from ..errors import JournalError
from ..journal._replay import check_submission as check_replayed
from ..journal.base import EntryKind
from ..tasks import TaskStatus
from ._engine import TaskEngine
from ._record import TaskRecord
from ._run_journal import RunJournal
from ._runner import EVENT_FOR_STATUS
from ._table import TaskTable

__all__ = ["JournaledScope", "Launch"]

_COMPLETED = TaskStatus.COMPLETED

Launch = tuple[TaskRecord, list[TaskRecord], contextvars.Context | None]


class JournaledScope:
    """What `RunScope` does for a journaled run (nothing, when it has no journal)."""

    _engine: TaskEngine
    _table: TaskTable
    _closed: bool
    _journal: RunJournal | None
    _reruns: list[Launch]
    """Replayed tasks an earlier attempt left in flight: decided on when the run goes live."""
    _held: list[Launch]
    """Live tasks waiting for their submission to be committed before they start."""
    _early: dict[str, Mapping[str, Any]]
    """Recorded outcomes passed before their replayed task reached the loop."""

    def _launch_replayed(
        self,
        journal: RunJournal,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """On the loop: a task an earlier attempt submitted is shown, not run. Its recorded
        outcome is revealed when the replay reaches it; one with no outcome was in flight
        and is decided on when the run goes live (at once, if it already has)."""
        replay = journal.replay
        assert replay is not None
        early = self._early.pop(record.task_id, None)
        if early is not None:
            self._reveal(journal, early)
        elif record.task_id not in replay.outcomes:
            if journal.live:
                self._rerun_or_give_up(journal, record, upstream, context)
            else:
                self._reruns.append((record, upstream, context))
        self._sync_replay()

    def _settled(self, record: TaskRecord) -> None:
        raise NotImplementedError  # RunScope's

    def _start(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """On the loop: the task's `asyncio.Task`, in the context it was submitted from."""
        # Without a journal there is nothing to record when it settles: hand the runner the
        # table's own method (one call less per task on the hot path).
        settled = self._table.settled if self._journal is None else self._settled
        record.task = asyncio.get_running_loop().create_task(
            self._engine.runner.execute(record, upstream, settled),
            name=record.task_id,
            context=context,
        )

    def attach_journal(self, journal: RunJournal) -> None:
        """Record this run in `journal` (and replay what it recorded before), from now on."""
        self._journal = journal
        loop = self._engine.loop

        def wake() -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._sync_replay)

        journal.wake_scope = wake

    def _sync_replay(self) -> None:
        """On the loop: show the outcomes the replay has passed, and go live once it is done."""
        journal = self._journal
        if journal is None or journal.live or journal.replay is None:
            return
        try:
            for entry in journal.replay.events():
                if entry.kind is EntryKind.OUTCOME:
                    self._reveal(journal, entry.data)
        except JournalError as exc:
            journal.fail(exc)
            raise
        if journal.replay.done:
            journal.live = True
            reruns, self._reruns = self._reruns, []
            for record, upstream, context in reruns:
                self._rerun_or_give_up(journal, record, upstream, context)

    def _reveal(self, journal: RunJournal, data: Mapping[str, Any]) -> None:
        record = self._table.records.get(data["task_id"])
        if record is None:  # its replayed submission is still queued for the loop
            self._early[data["task_id"]] = data
            return
        if not record.replayed or record.status.is_final:
            return
        status = TaskStatus(data["status"])
        if status is _COMPLETED:
            record.result = journal.replay.results[record.task_id]  # type: ignore[union-attr]
        record.status = status
        record.error = data["error"]
        record.completed_at = time.time()
        self._engine.notify(record, EVENT_FOR_STATUS[status], record.error)
        self._table.settled(record)  # already journaled: not recorded again

    def _rerun_or_give_up(
        self,
        journal: RunJournal,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """A task that was in flight when the earlier attempt stopped: run it again if its
        target is idempotent, otherwise fail it as unknown (its effect may have happened)."""
        record.replayed = False
        record.journal = journal  # its submission is already durable (journal_seq stays 0)
        name = record.target.name
        if name in journal.idempotent and not self._closed:
            journal.rerun += 1
            self._start(record, upstream, context)
            return
        journal.unknown += 1
        self._engine.runner.finish(
            record,
            TaskStatus.FAILED,
            error=f"outcome unknown: the process running this run stopped while `{name}` was "
            "in flight, and it was not run again because it is not marked idempotent "
            f"(`idempotent={{'{name}'}}` would rerun it). Check whether its effect happened "
            "before doing it again.",
        )
        self._settled(record)

    def _replayed(self, kind: EntryKind, what: str) -> Any:
        """The recorded entry answering this call while the run replays, else `None`."""
        journal = self._journal
        if journal is None or journal.live or journal.replay is None:
            return None
        try:
            entry = journal.replay.take(kind, what)
        except JournalError as exc:
            journal.fail(exc)
            raise
        return entry

    def _replay_call(self, kind: EntryKind, what: str) -> Any:
        """On the loop: the recorded entry answering this call (with the outcomes recorded
        before it shown), or `None` once the run is live."""
        journal = self._journal
        if journal is None or journal.live:
            return None
        entry = self._replayed(kind, what)
        self._sync_replay()
        return entry

    def _journal_submission(self, record: TaskRecord) -> None:
        """Record a live submission, or match a replayed one against the journal. (A replayed
        one is shown from the journal and does not run: see `_launch`.)"""
        journal = self._journal
        if journal is None:
            return
        if journal.live:  # the common case: record it
            journal.submitted(record)
            return
        entry = self._replayed(EntryKind.SUBMITTED, f"the submission of `{record.task_id}`")
        if entry is None:
            journal.submitted(record)
            return
        try:
            check_replayed(entry, record.task_id, record.target.name)
        except JournalError as exc:
            self._table.reserved.pop(record.task_id, None)
            journal.fail(exc)
            raise
        record.replayed = True
        journal.replayed_tasks += 1

    # -- write-ahead: a task's code starts once its submission is durable ---------------------

    def _hold(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """Keep a submitted task from starting until its `submitted` entry is committed (so
        after a crash the journal knows every task that may have had an effect). Its
        `asyncio.Task` is created at that commit: no waiting coroutine per task."""
        journal = self._journal
        assert journal is not None
        if not self._held:
            journal.log.on_commit = self._release_held
        self._held.append((record, upstream, context))

    def _release_held(self) -> None:
        """On the loop, after a commit: start the held tasks that are durable now, in order."""
        journal = self._journal
        if journal is None:
            return
        log = journal.log
        held, still = self._held, []
        for launch in held:
            record, upstream, context = launch
            if record.status.is_final:  # cancelled while held
                continue
            if not log.is_durable(record.journal_seq):
                still.append(launch)
                continue
            self._start(record, upstream, context)
        self._held = still

    def _is_held(self, record: TaskRecord) -> bool:
        return record.task is None and not record.status.is_final and not record.replayed

    async def _started_when_durable(self, records: list[TaskRecord]) -> None:
        """Before waiting on tasks, let the held ones among them start (their asyncio tasks
        are what a wait awaits)."""
        if not self._held:
            return
        newest = max((r.journal_seq for r in records if self._is_held(r)), default=0)
        if newest:
            await self._journal.log.durable(newest)  # type: ignore[union-attr]

    def _looked(self, call: str) -> None:
        """A read of task state by a journaled run: replayed, it first shows the outcomes
        recorded before it; live, it is recorded (so a replay shows the same)."""
        journal = self._journal
        if journal is not None and self._replay_call(EntryKind.LOOKED, f"a `{call}` call") is None:
            journal.looked(call)
