"""A run scope: the tasks one run (or session) submitted, and nothing else.

Every task belongs to exactly one scope. A scope's methods see only its own tasks, so another
run's id is "unknown" here, never readable. Closing a scope cancels its unfinished tasks and
waits, within the cancel grace and whatever further cancellations arrive meanwhile, until each
is final: nothing it started is left without an owner. Code that ignores its cancellation is
abandoned after the grace (its task is marked cancelled, the engine keeps the code until it
ends, and a warning names it).

The scope's jobs live apart: `_submission` checks a submission, `_table.TaskTable` holds and
finds the records, `validation` checks what callers pass, a `_scope_journal.ScopeJournal`
(only when the run has a journal) records and replays it; this module is the lifecycle and the
public face.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from ..core._slots import lend_current_lease
from ..core._validation import checked_return_when, checked_seconds, id_list
from ..core.approvals import ApprovalDecision, ApprovalRequest
from ..errors import (
    AgentloopError,
    QuotaExceededError,
    RegistryClosedError,
    TaskFailedError,
)
from ..journal._digest import arguments_digest
from ..tasks import (
    FINAL_STATUSES,
    ReturnWhen,
    TaskEvent,
    TaskEventKind,
    TaskInfo,
    TaskStatus,
    TaskType,
    WaitOutcome,
)
from ._bus import Listener, Subscription
from ._engine import TaskEngine
from ._parking import IdleWatch, OnIdle
from ._record import Launch, TaskRecord
from ._run_journal import RunJournal
from ._scope_journal import ScopeJournal
from ._submission import Checked, check_submission
from ._table import TaskTable

__all__ = ["RunScope"]

logger = logging.getLogger("agentloop")

_COMPLETED = TaskStatus.COMPLETED  # hot path: cheaper than the enum attribute


class RunScope:
    """The tasks of one run. Obtain one from `TaskRegistry.scope()`; do not construct it."""

    def __init__(
        self,
        engine: TaskEngine,
        scope_id: str,
        *,
        max_tasks: int | None,
        max_history: int,
        on_closed: Callable[[RunScope], None] | None = None,
    ) -> None:
        self._engine = engine
        self.scope_id = scope_id
        self._max_tasks = max_tasks
        self._submitted = 0
        self._table = TaskTable(max_history)
        self._closed = False
        self._on_closed = on_closed
        self._launches: deque[Launch] = deque()
        self._drain_scheduled = False
        self._journal: ScopeJournal | None = None
        """The run's journal, as this scope records and replays it (when the run has one)."""
        self._idle: IdleWatch | None = None
        """Parks the run once it only waits for approvals (`park_when_idle`)."""
        self._run_key = f"{scope_id}\0{uuid.uuid4().hex}"
        """What its tasks' idempotency keys derive from: unique to this scope, since an id
        that is not journaled (`run_1`) may be another agent's or process's too."""

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def begin_turn(self) -> None:
        """A new turn of a session: its task quota starts again (tasks stay visible)."""
        with self._table.lock:
            self._submitted = 0

    async def __aenter__(self) -> RunScope:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse new tasks, cancel the unfinished ones and settle them (bounded by the cancel
        grace, through repeated cancellation), then leave the registry. Idempotent."""
        self._closed = True
        if self._idle is not None:
            self._idle.close()
        try:
            await self._cancel_and_settle(self._table.unsettled())
        finally:
            on_closed, self._on_closed = self._on_closed, None
            if self._journal is not None:
                self._journal.release()
            if on_closed is not None:
                on_closed(self)

    def attach_journal(self, journal: RunJournal) -> None:
        """Record this run in `journal` (and replay what it recorded before), from now on.
        Its tasks' idempotency keys derive from the run id alone: the same after a resume."""
        self._run_key = self.scope_id
        self._journal = ScopeJournal(
            journal,
            engine=self._engine,
            table=self._table,
            start=self._start,
            settle=self._settled,
            closed=lambda: self._closed,
        )

    def park_when_idle(self, after: float, on_idle: OnIdle) -> None:
        """Call `on_idle` (once) when, for `after` seconds, the run's code has been waiting
        and every unfinished task of the scope awaits approval (see `_parking`)."""
        self._idle = IdleWatch(after, self._table, self.listen, on_idle)

    async def _cancel_and_settle(self, records: list[TaskRecord]) -> None:
        runner = self._engine.runner
        tasks = [r.task for r in records if r.task is not None and not r.task.done()]
        if tasks and tasks[0].get_loop().is_closed():
            # The owner was garbage-collected after its loop closed (nothing is running): no
            # task of ours can run again, so mark them without touching the loop.
            for record in records:
                runner.finish(record, TaskStatus.CANCELLED, error="its event loop closed")
                self._settled(record)
            return
        for task in tasks:
            task.cancel()
        grace = self._engine.limits.cancel_grace
        cancelled = await _settle_shielded(tasks, grace) if tasks else None
        for record in records:
            pending = record.task
            if pending is not None and not pending.done():  # it ignored its cancellation
                logger.warning(
                    "task %s (`%s`) did not stop within %.1fs of being cancelled: its code "
                    "ignores cancellation. It was abandoned; its slots stay taken until it ends.",
                    record.task_id,
                    record.target.name,
                    grace,
                )
                runner.abandon(record, pending, warn=False)
                runner.finish(
                    record,
                    TaskStatus.CANCELLED,
                    error=f"cancelled; its code ignored the cancellation for {grace:g}s and "
                    "was abandoned",
                )
                self._settled(record)
            elif not record.status.is_final:  # cancelled before its first step
                runner.finish(record, TaskStatus.CANCELLED, error="cancelled before it started")
                self._settled(record)
        if cancelled is not None:  # the caller was cancelled meanwhile: now that all is final
            raise cancelled

    def _settled(self, record: TaskRecord) -> None:
        """A record is final and its task ended: count it, and journal its outcome. Not the
        outcome of a task the closing scope cancelled: the run was interrupted, not the task,
        so a resumed run treats it as in flight (rerun if idempotent) instead of cancelled."""
        if record.settled:
            return
        self._table.settled(record)
        journal = self._journal
        if journal is not None and record.journal is not None and not self._closed:
            journal.outcome(record)

    def _start(
        self,
        record: TaskRecord,
        upstream: builtins.list[TaskRecord],
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

    # -- submitting ---------------------------------------------------------------------------

    async def submit(
        self,
        task_type: TaskType | str,
        target_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] | str = (),
        timeout: float | None = None,
        retries: int = 0,
    ) -> str:
        """Start a task in the background and return its id at once.

        Everything is checked before anything is created, so a refused submission leaves no
        half-made task behind.

        Args:
            task_type: `"tool"` or `"managed_agent"`.
            target_name: a registered tool or managed agent.
            arguments: the target's inputs; deep-copied, so later mutation changes nothing.
                A value `{"$result_of": "<task id>"}` stands for that task's result.
            task_id: your own id (unique in this scope); generated when omitted.
            depends_on: ids that must complete before this task starts. Tasks referenced in
                `arguments` are added automatically.
            timeout: seconds per attempt (default: the registry's `default_timeout`).
            retries: extra attempts after a failure or timeout, with exponential backoff.
        """
        engine = self._engine
        if asyncio.get_running_loop() is not engine.loop:
            engine.bind()
        checked = check_submission(
            engine, task_type, target_name, arguments, task_id, depends_on, timeout, retries
        )
        journal = self._journal
        digest = "" if journal is None else arguments_digest(checked[1])
        try:
            with self._table.lock:
                record, upstream = self._reserve(checked)
                if journal is not None:
                    journal.submitted(record, digest)
        except _Missing as missing:
            raise self._table.unknown(missing.task_id) from None
        self._launch(record, upstream, None)
        return record.task_id

    def submit_threadsafe(
        self,
        task_type: TaskType | str,
        target_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] | str = (),
        timeout: float | None = None,
        retries: int = 0,
    ) -> str:
        """`submit` for plain threads (the controller's code): checks everything in the
        calling thread, hands the start of the task to the loop, and returns without waiting
        for the loop to answer.

        A bad submission still raises here, at once. The task starts in a copy of the calling
        thread's context. Calls a thread makes afterwards through the loop (wait, results)
        are queued behind the start, so they always find the task.
        """
        loop = self._engine.loop
        if loop is None or loop.is_closed():
            raise RegistryClosedError(
                f"scope `{self.scope_id}` has no running event loop; submit from async code "
                "first, or use `await scope.submit(...)`."
            )
        checked = check_submission(
            self._engine, task_type, target_name, arguments, task_id, depends_on, timeout, retries
        )
        context = contextvars.copy_context()
        journal = self._journal
        digest = "" if journal is None else arguments_digest(checked[1])
        try:
            with self._table.lock:
                record, upstream = self._reserve(checked)
                if journal is not None:
                    journal.submitted(record, digest)
                self._queue_launch(loop, record, upstream, context)
        except _Missing as missing:
            raise self._table.unknown(missing.task_id) from None
        return record.task_id

    def _queue_launch(
        self,
        loop: asyncio.AbstractEventLoop,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context,
    ) -> None:
        """Under the table's lock: queue the start of a reserved task for the loop."""
        # Queued under the lock, so tasks start in the order they were reserved; the loop
        # is woken once per burst of submissions, not once per task.
        self._launches.append((record, upstream, context))
        if not self._drain_scheduled:
            try:
                loop.call_soon_threadsafe(self._drain_launches)
            except RuntimeError:  # the loop closed meanwhile
                self._launches.pop()
                self._table.reserved.pop(record.task_id, None)
                raise RegistryClosedError(
                    f"scope `{self.scope_id}`: the event loop is closed."
                ) from None
            self._drain_scheduled = True

    def _reserve(self, checked: Checked) -> tuple[TaskRecord, list[TaskRecord]]:
        """Under the table's lock: find the upstream tasks, reserve the id, count the quota.
        Dictionary operations only; an error message is built after the lock is released."""
        if self._closed or self._engine.closed:
            raise RegistryClosedError(
                f"scope `{self.scope_id}` is closed; it accepts no new tasks."
            )
        target, arguments, task_id, upstream_ids, timeout, retries = checked
        table = self._table
        upstream: list[TaskRecord] = []
        for up_id in upstream_ids:
            found = table.peek(up_id)
            if found is None:
                raise _Missing(up_id)
            upstream.append(found)
        new_id = table.new_id(task_id, target.name)
        if self._max_tasks is not None and self._submitted >= self._max_tasks:
            raise QuotaExceededError(
                f"scope `{self.scope_id}` reached its limit of {self._max_tasks} tasks; "
                "wait for and use the results you have (the limit is `max_tasks_per_scope`)."
            )
        record = TaskRecord(
            task_id=new_id,
            scope_id=self.scope_id,
            target=target,
            arguments=arguments,
            depends_on=tuple([up.task_id for up in upstream]) if upstream else (),
            timeout=timeout,
            retries=retries,
            created_at=time.time(),
            run_key=self._run_key,
        )
        table.reserved[new_id] = record
        self._submitted += 1
        return record, upstream

    def _drain_launches(self) -> None:
        """On the loop: start every task submitted from threads since the last drain."""
        with self._table.lock:
            batch = list(self._launches)
            self._launches.clear()
            self._drain_scheduled = False
        for record, upstream, context in batch:
            self._launch(record, upstream, context)

    def _launch(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """On the loop: make the reserved task visible and start it."""
        engine = self._engine
        journal = self._journal
        if journal is not None:
            journal.launching(record)
        self._table.start(record)
        engine.notify(record, TaskEventKind.SUBMITTED, None)
        if self._closed:  # the scope closed between reservation and launch
            engine.runner.finish(record, TaskStatus.CANCELLED, error="run ended first")
            self._settled(record)
            return
        if journal is not None and journal.launch(record, upstream, context):
            return  # replayed (shown from the journal), or held until its submission is durable
        self._start(record, upstream, context)

    # -- observing ----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one task."""
        if self._journal is not None:
            self._journal.looked("check_task")
        return self._table.find(task_id).snapshot()

    def peek(self, task_id: str) -> TaskInfo:
        """A snapshot of one task for the application's own view (a stream's preview): not a
        read of the run's code, so never journaled (a journaled read must replay in place)."""
        return self._table.find(task_id).snapshot()

    def list(
        self, status: TaskStatus | str | None = None, limit: int | None = None
    ) -> list[TaskInfo]:
        """Snapshots of this scope's tasks in submission order, the last `limit` of them."""
        if self._journal is not None:
            self._journal.looked("list_tasks")
        return self._table.list(status, limit)

    async def sleep(self, seconds: float) -> None:
        """Pause the run's code for `seconds` (not again when a resumed run replays it)."""
        journal = self._journal
        if journal is not None and journal.replayed_sleep():
            return
        await asyncio.sleep(seconds)
        if journal is not None:
            journal.slept(seconds)

    async def wait(
        self,
        task_ids: Iterable[str] | str,
        timeout: float | None = None,
        return_when: ReturnWhen = "all",
    ) -> WaitOutcome:
        """Wait until the tasks finish (`"all"`) or one of them does (`"any"`), or `timeout`.

        Event-driven: the waiter wakes when a task settles, never by polling. Waiting from
        inside a running task (or a controller) lends its slots to the tasks it waits for.
        """
        records = self._table.find_all(id_list(task_ids))
        mode = checked_return_when(return_when)
        if timeout is not None:
            timeout = checked_seconds(timeout, "timeout")
        journal = self._journal
        started = time.monotonic()
        if journal is not None:
            recorded = journal.replayed_wait()
            if recorded is not None:
                return recorded
            await journal.started_when_durable(records)
        live = {r.task for r in records if r.status not in FINAL_STATUSES and r.task is not None}
        already_one = len(live) < len(records)
        if live and not (mode == "any" and already_one):
            idle = self._idle
            if idle is not None:
                idle.wait_started()
            try:
                with self._engine.tracing.wait_span(records, mode):
                    async with lend_current_lease():
                        await asyncio.wait(
                            live,
                            timeout=timeout,
                            return_when=(
                                asyncio.FIRST_COMPLETED if mode == "any" else asyncio.ALL_COMPLETED
                            ),
                        )
            finally:
                if idle is not None:
                    idle.wait_ended()
        outcome = _outcome(records, mode, time.monotonic() - started)
        if journal is not None:
            journal.waited(outcome)
            await journal.shown()
        return outcome

    async def results(self, task_ids: Iterable[str] | str) -> dict[str, Any]:
        """`{task_id: result}`; a task without a result maps to a falsy `TaskFailure`."""
        journal = self._journal
        if journal is not None:
            journal.looked("get_task_results")
        results = {
            r.task_id: (r.result if r.status is _COMPLETED else r.failure())
            for r in self._table.find_all(id_list(task_ids))
        }
        if journal is not None:
            await journal.shown()
        return results

    async def durable(self) -> None:
        """Return once every task outcome this run's journal has recorded is committed (at
        once without a journal, or when they are). `wait`, `results` and `cancel` do it
        before they return; call it before showing what `get` or `list` returned to the
        model's code, so that a crash cannot lose an outcome the model saw (its next model
        call would build on a result that a resumed run does not have)."""
        if self._journal is not None:
            await self._journal.shown()

    async def result(self, task_id: str) -> Any:
        """The result of a completed task; raises `TaskFailedError` for any other state."""
        record = self._table.find(task_id)
        if record.status is not TaskStatus.COMPLETED:
            raise TaskFailedError(str(record.failure()))
        return record.result

    async def cancel(self, task_id: str) -> TaskInfo:
        """Cancel a task and return its final snapshot (a no-op for a finished task).

        A sync task's thread cannot be killed: the task is final at once and its thread keeps
        its worker slot until it ends.
        """
        record = self._table.find(task_id)
        journal = self._journal
        if journal is not None and journal.replayed_cancel():
            return record.snapshot()  # replayed: its recorded outcome shows the cancel
        if record.task is not None and not record.task.done():
            await self._cancel_and_settle([record])
        elif journal is not None:
            journal.cancel_held(record)  # not started: held until its submission is durable
        if journal is not None:
            journal.cancel_called()
            await journal.shown()
        return record.snapshot()

    def approval_request(self, task_id: str) -> ApprovalRequest | None:
        """The request of a task of this scope that awaits approval, if it does."""
        record = self._table.records.get(task_id)
        pending = record.approval if record is not None else None
        return pending.request if pending is not None else None

    def approval_requests(self) -> builtins.list[ApprovalRequest]:
        """The requests of this scope's tasks that await approval now, in submission order."""
        return [r.approval.request for r in self._table.records.values() if r.approval is not None]

    def answer_approval(self, task_id: str, decision: ApprovalDecision) -> None:
        """Decide a task of this scope that awaits approval (once). Another run's task id is
        unknown here, so no run can decide another's."""
        record = self._table.find(task_id)
        pending = record.approval
        if pending is None:
            state = "was already decided" if record.asked_approval else "does not await approval"
            raise AgentloopError(
                f"task `{task_id}` is {record.status.value} and {state}; only a task in "
                "`awaiting_approval` can be approved or rejected, once."
            )
        pending.answer(decision)

    def events(self) -> Subscription:
        """Task events of this scope, as an async iterator (ends when the registry closes).

        The subscription starts when this is called (not at the first `anext`)."""
        return self._engine.bus.subscribe(self.scope_id)

    def listen(self, callback: Callable[[TaskEvent], None]) -> Listener:
        """Call `callback` with each task event of this scope as it happens, on the loop,
        until the returned listener is closed (for consumers with their own buffer)."""
        return self._engine.bus.listen(self.scope_id, callback)

    def running_async_targets(self, since: float) -> builtins.list[str]:
        """Names of async targets whose tasks ran at any time after `since` (wall clock)."""
        return [
            r.target.name
            for r in self._table.records.values()
            if r.target.is_async
            and r.started_at is not None
            and (r.completed_at is None or r.completed_at >= since)
        ]


class _Missing(Exception):
    """An upstream id that is not in the table (raised under the lock, explained outside)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


async def _settle_shielded(
    tasks: list[asyncio.Task[None]], grace: float
) -> asyncio.CancelledError | None:
    """Wait up to `grace` seconds for `tasks` to end, through any number of cancellations of
    the caller (anyio and Starlette deliver more than one); return the first cancellation,
    for the caller to re-raise once it has finished its own bookkeeping."""
    settling = asyncio.ensure_future(asyncio.wait(tasks, timeout=grace))
    cancelled: asyncio.CancelledError | None = None
    while not settling.done():
        try:
            await asyncio.shield(settling)
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    return cancelled


def _outcome(records: list[TaskRecord], return_when: ReturnWhen, waited: float) -> WaitOutcome:
    completed: list[str] = []
    pending: list[str] = []
    errors: dict[str, str] = {}
    for r in records:
        if r.status is _COMPLETED:
            completed.append(r.task_id)
        elif r.status in FINAL_STATUSES:
            errors[r.task_id] = f"{r.status.value}: {r.error}"
        else:
            pending.append(r.task_id)
    enough = bool(completed or errors) if return_when == "any" else not pending
    return WaitOutcome(
        completed=tuple(completed),
        failed=tuple(errors),
        pending=tuple(pending),
        timed_out=not enough,
        waited_seconds=waited,
        errors=errors,
    )
