"""The journal's side of a run scope: recording what a run does, replaying what it did.

A `RunScope` whose run has a journal owns one `ScopeJournal` and calls it at each seam: a
submission, a task's launch and outcome, a wait, a sleep, a read, a cancel. Live, each call
of the run's code is recorded in the run's `RunJournal` after it took effect (a submission
before its task can start: `launch` holds the task until its entry is committed). Resumed, the
calls are answered from the `Replay` instead: the recorded outcomes are revealed just before
the call that saw them, and once the record ends the run goes live, deciding on the tasks an
earlier attempt left in flight (rerun if idempotent, else failed as "outcome unknown").

The component sees the scope only through what it is given: the scope's `TaskTable` and
`TaskEngine`, and three callables (start a task, settle a record, whether the scope is
closed). It keeps its own state (held, early and in-flight replayed tasks), so a scope
without a journal carries none of it and pays one `is None` test per seam. Kept apart from
`scope` so that module stays the lifecycle and the public face.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import JournalError
from ..journal._replay import check_submission as check_replayed
from ..journal.base import EntryKind, JournalEntry
from ..tasks import TaskStatus, WaitOutcome
from ._engine import TaskEngine
from ._reconcile import outcome_unknown
from ._record import Launch, TaskRecord
from ._run_journal import RunJournal
from ._runner import EVENT_FOR_STATUS
from ._table import TaskTable

__all__ = ["ScopeJournal", "Start"]

_COMPLETED = TaskStatus.COMPLETED

Start = Callable[[TaskRecord, list[TaskRecord], contextvars.Context | None], None]
"""The scope's way to start a task: create its `asyncio.Task` in `context`."""


class ScopeJournal:
    """What a run scope does for its journaled run: record it live, or replay it."""

    def __init__(
        self,
        run: RunJournal,
        *,
        engine: TaskEngine,
        table: TaskTable,
        start: Start,
        settle: Callable[[TaskRecord], None],
        closed: Callable[[], bool],
    ) -> None:
        self._run = run
        self._engine = engine
        self._table = table
        self._start = start
        self._settle = settle
        self._closed = closed
        self._reruns: list[Launch] = []
        """Replayed tasks an earlier attempt left in flight: decided on when the run goes live."""
        self._held: list[Launch] = []
        """Live tasks waiting for their submission to be committed before they start."""
        self._early: dict[str, Mapping[str, Any]] = {}
        """Recorded outcomes passed before their replayed task reached the loop."""
        loop = engine.loop

        def wake() -> None:
            if loop is not None:
                loop.call_soon_threadsafe(self._sync_replay)

        run.wake_scope = wake

    def release(self) -> None:
        """The scope closed: let go of its callbacks, which point back at this journal, so
        that reference counting frees the run (see `ControllerRun.release`). No task starts
        or settles in a closed scope."""
        self._start = _closed_start
        self._settle = _closed_settle
        self._closed = _is_closed

    # -- submission and launch ------------------------------------------------------------------

    def submitted(self, record: TaskRecord, digest: str) -> None:
        """From any thread, under the table's lock: record a live submission, or match a
        replayed one against the journal, arguments included (`digest`: computed before the
        lock, see `_digest`). A replayed one is shown from the journal and does not run: see
        `launch`."""
        run = self._run
        if run.live:  # the common case: record it
            run.submitted(record, digest)
            return
        entry = self._replayed(EntryKind.SUBMITTED, f"the submission of `{record.task_id}`")
        if entry is None:
            run.submitted(record, digest)
            return
        try:
            check_replayed(entry, record.task_id, record.target.name, digest)
        except JournalError as exc:
            self._table.reserved.pop(record.task_id, None)
            run.fail(exc)
            raise
        run.replayed(record, digest)

    def launching(self, record: TaskRecord) -> None:
        """On the loop, before a reserved task becomes visible: the first live task of a
        replayed run brings the scope up to date (the replay ended in the controller thread)."""
        if not self._run.live and not record.replayed:
            self._sync_replay()

    def launch(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> bool:
        """On the loop: whether the journal takes over the start of this visible task. A
        replayed one is shown, not run; a live one whose submission is not committed yet is
        held, and started at the commit. `False`: the scope starts it now."""
        if record.replayed:  # an earlier attempt ran it: shown from the journal
            self._launch_replayed(record, upstream, context)
            return True
        if not self._run.log.is_durable(record.journal_seq):
            self._hold(record, upstream, context)  # started once its submission is durable
            return True
        return False

    def outcome(self, record: TaskRecord) -> None:
        """A task of the run settled while its scope was open: record its outcome."""
        self._run.outcome(record)

    # -- the run's calls: answered from the replay, or recorded ---------------------------------

    def looked(self, call: str) -> None:
        """A read of task state: replayed, it first shows the outcomes recorded before it;
        live, it is recorded (so a replay shows the same)."""
        if self._replay_call(EntryKind.LOOKED, f"a `{call}` call") is None:
            self._run.looked(call)

    def replayed_wait(self) -> WaitOutcome | None:
        """The outcome a replayed wait returns, or `None`: wait for real (then `waited`)."""
        recorded = self._replay_call(EntryKind.WAITED, "a wait")
        return None if recorded is None else self._run.recorded_wait(recorded.data)

    async def started_when_durable(self, records: list[TaskRecord]) -> None:
        """Before waiting on tasks, let the held ones among them start (their asyncio tasks
        are what a wait awaits)."""
        if not self._held:
            return
        newest = max((r.journal_seq for r in records if _is_held(r)), default=0)
        if newest:
            await self._run.log.durable(newest)

    def waited(self, outcome: WaitOutcome) -> None:
        self._run.waited(outcome)

    async def shown(self) -> None:
        """Before task state is shown to the run's code: return once every outcome recorded
        so far is committed, so what the model saw survives a crash. Entries commit in order,
        so one wait for the latest outcome covers them all; none when it is committed."""
        run = self._run
        version = run.outcome_version
        if version and not run.log.is_durable(version):
            await run.log.durable(version)

    def replayed_sleep(self) -> bool:
        """Whether this sleep was replayed (it is not slept again); else sleep, then `slept`."""
        return self._replay_call(EntryKind.SLEPT, "a sleep") is not None

    def slept(self, seconds: float) -> None:
        self._run.slept(seconds)

    def replayed_cancel(self) -> bool:
        """Whether this cancel was replayed (the task's recorded outcome shows it); else
        cancel, then `cancel_called`."""
        return self._replay_call(EntryKind.LOOKED, "a `cancel_task`") is not None

    def cancel_held(self, record: TaskRecord) -> None:
        """Cancel a task held until its submission is durable (it has no asyncio task yet)."""
        if _is_held(record):
            self._engine.runner.finish(record, TaskStatus.CANCELLED, error="cancelled")
            self._settle(record)

    def cancel_called(self) -> None:
        self._run.looked("cancel_task")

    # -- replaying ------------------------------------------------------------------------------

    def _replayed(self, kind: EntryKind, what: str) -> JournalEntry | None:
        """The recorded entry answering this call while the run replays, else `None`."""
        run = self._run
        if run.live or run.replay is None:
            return None
        try:
            return run.replay.take(kind, what)
        except JournalError as exc:
            run.fail(exc)
            raise

    def _replay_call(self, kind: EntryKind, what: str) -> JournalEntry | None:
        """On the loop: the recorded entry answering this call (with the outcomes recorded
        before it shown), or `None` once the run is live."""
        if self._run.live:
            return None
        entry = self._replayed(kind, what)
        self._sync_replay()
        return entry

    def _sync_replay(self) -> None:
        """On the loop: show the outcomes the replay has passed, and go live once it is done."""
        run = self._run
        if run.live or run.replay is None:
            return
        try:
            for entry in run.replay.events():
                if entry.kind is EntryKind.OUTCOME:
                    self._reveal(entry.data)
        except JournalError as exc:
            run.fail(exc)
            raise
        if run.replay.done:
            run.live = True
            reruns, self._reruns = self._reruns, []
            for record, upstream, context in reruns:
                self._rerun_or_give_up(record, upstream, context)

    def _launch_replayed(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """On the loop: a task an earlier attempt submitted is shown, not run. Its recorded
        outcome is revealed when the replay reaches it; one with no outcome was in flight
        and is decided on when the run goes live (at once, if it already has)."""
        run = self._run
        replay = run.replay
        assert replay is not None
        early = self._early.pop(record.task_id, None)
        if early is not None:
            self._reveal(early)
        elif record.task_id not in replay.outcomes:
            if run.live:
                self._rerun_or_give_up(record, upstream, context)
            else:
                self._reruns.append((record, upstream, context))
        self._sync_replay()

    def _reveal(self, data: Mapping[str, Any]) -> None:
        table = self._table
        record = table.records.get(data["task_id"])
        if record is None:  # its replayed submission is still queued for the loop
            self._early[data["task_id"]] = data
            return
        if not record.replayed or record.status.is_final:
            return
        status = TaskStatus(data["status"])
        if status is _COMPLETED:
            record.result = self._run.replay.results[record.task_id]  # type: ignore[union-attr]
        record.status = status
        record.error = data["error"]
        record.completed_at = time.time()
        self._engine.notify(record, EVENT_FOR_STATUS[status], record.error)
        table.settled(record)  # already journaled: not recorded again

    def _rerun_or_give_up(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """A task that was in flight when the earlier attempt stopped. With a reconcile hook
        for its target, start it: the hook decides first (done, run again, or unknown; see
        `_reconcile`). Else run it again if its target is idempotent, otherwise fail it as
        unknown (its effect may have happened). A rerun is the next attempt, same key. A task
        the run parked on (awaiting approval) had not started: it starts as if new."""
        run = self._run
        record.replayed = False
        record.journal = run  # its submission is already durable (journal_seq stays 0)
        replay = run.replay
        if replay is not None and record.task_id in replay.parked and not self._closed():
            # The run parked while it awaited approval: it never started, so it starts now, as
            # its first attempt, once that is durable (a crash from then on finds it in flight).
            record.journal_seq = run.log.add(
                EntryKind.ATTEMPT, {"task_id": record.task_id, "attempt": 1}
            )
            self._hold(record, upstream, context)
            return
        name = record.target.name
        handle = replay.handles.get(record.task_id) if replay is not None else None
        if handle is not None and not self._closed():
            # it recorded a handle of its outside work: its code re-attaches to that work
            # (see `_handles`), so it runs again whatever its target's idempotency
            record.attempt_base = run.recorded_attempts(record.task_id)
            record.handle = dict(handle)
            run.reattached += 1
            self._start(record, upstream, context)
            return
        hook = run.reconcile.get(name)
        rerun = name in run.idempotent or record.target.reattaches
        if (hook is not None or rerun) and not self._closed():
            record.attempt_base = run.recorded_attempts(record.task_id)
            record.reconcile = hook
            if hook is None:
                run.rerun += 1
            self._start(record, upstream, context)
            return
        run.unknown += 1
        self._engine.runner.finish(
            record,
            TaskStatus.FAILED,
            error=outcome_unknown(
                name,
                "it was not run again because it is not marked idempotent and has no "
                f"reconcile hook (`idempotent={{'{name}'}}` would rerun it; "
                f"`reconcile={{'{name}': check}}` would ask `check` first)",
            ),
        )
        self._settle(record)

    # -- write-ahead: a task's code starts once its submission is durable -----------------------

    def _hold(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """Keep a submitted task from starting until its `submitted` entry is committed (so
        after a crash the journal knows every task that may have had an effect). Its
        `asyncio.Task` is created at that commit: no waiting coroutine per task."""
        if not self._held:
            self._run.log.on_commit = self._release_held
        self._held.append((record, upstream, context))
        self._run.log.hurry()

    def _release_held(self) -> None:
        """On the loop, after a commit: start the held tasks that are durable now, in order."""
        log = self._run.log
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


def _is_held(record: TaskRecord) -> bool:
    """Whether a visible live task has not started yet: held until its submission is durable."""
    return record.task is None and not record.status.is_final and not record.replayed


def _closed_start(
    record: TaskRecord, batch: list[TaskRecord], context: contextvars.Context | None
) -> None:
    """A released journal's scope is closed: nothing starts there."""


def _closed_settle(record: TaskRecord) -> None:
    """A released journal's scope is closed: it settled everything."""


def _is_closed() -> bool:
    return True
