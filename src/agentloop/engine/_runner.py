"""How one task runs: dependencies, slots, timeouts, retries; the backend runs the code.

The runner acquires a task's slots, applies its timeout and retries, and hands each attempt to
the registry's backend (`backends.LocalBackend` by default: async targets on the loop, sync
targets in worker threads). Each attempt runs with its `TaskContext` in `CURRENT_TASK` (what
`agentloop.current_task()` reads); a task an earlier process left in flight first asks its
reconcile hook (`_reconcile`). If a task is cancelled or times out it is marked at once and nobody
waits for its work, but the backend releases the slots only when the work really ends (a thread
cannot be killed), so the limits stay true.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from .._text import describe
from ..backends import Backend, TargetFailed
from ..backends.base import TARGET_ERRORS
from ..core._approving import APPROVAL_RELAY, ASKING_PATH, ApprovalPolicy, PendingApproval
from ..core._cancellation import CURRENT_CANCEL, CancelSignal
from ..core._effects import CURRENT_TASK
from ..core._slots import CURRENT_LEASE, Lease
from ..core.approvals import ApprovalRequest
from ..core.references import resolve_references
from ..errors import AgentloopError, ApprovalRejectedError, DependencyFailedError
from ..limits import Limits
from ..tasks import FINAL_STATUSES, TaskEventKind, TaskStatus
from ..tracing._spans import Tracing
from ._reconcile import reconciled
from ._record import TaskRecord

__all__ = ["TaskRunner"]

logger = logging.getLogger("agentloop")

_NO_SPAN = contextlib.nullcontext()

# Hot-path constants: a module global is ten times cheaper to read than an enum attribute.
_PENDING, _RUNNING, _COMPLETED = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED

Notify = Callable[[TaskRecord, TaskEventKind, "str | None"], None]


class TaskRunner:
    """Owns the slots (capacity limiters) and the keepers of worker threads of one registry."""

    def __init__(
        self,
        limits: Limits,
        notify: Notify,
        tracing: Tracing,
        backend: Backend,
        approvals: ApprovalPolicy | None = None,
    ) -> None:
        self._approvals = approvals
        self._limits = limits
        self._notify = notify
        self.tracing = tracing
        self._workers = anyio.CapacityLimiter(limits.max_workers)
        self._async_slots = anyio.CapacityLimiter(limits.max_async_tasks)
        self._per_target = {
            name: anyio.CapacityLimiter(bound) for name, bound in limits.target_limits.items()
        }
        self.backend = backend
        self._inline_async = backend.runs_async_inline
        self._limiter_cache: dict[str, tuple[anyio.CapacityLimiter, ...]] = {}
        self._abandoned: set[asyncio.Future[Any]] = set()
        """Attempts given up on (a timeout, a cancel) whose code has not ended yet."""

    # -- accounting ---------------------------------------------------------------------------

    @property
    def workers_in_use(self) -> int:
        return int(self._workers.borrowed_tokens)

    @property
    def async_in_use(self) -> int:
        return int(self._async_slots.borrowed_tokens)

    @property
    def live_threads(self) -> int:
        """Worker threads still running a call, including abandoned ones."""
        return self.backend.live

    @property
    def abandoned(self) -> int:
        """Attempts that were given up on and whose code still runs."""
        return len(self._abandoned)

    async def settle(self, grace: float, ignore_thread: int | None = None) -> int:
        """Wait up to `grace` seconds for abandoned and running work to end; return how much
        still runs (not counting a call running in thread `ignore_thread`)."""
        deadline = time.monotonic() + grace
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=grace)
        left = max(deadline - time.monotonic(), 0.0)
        return len(self._abandoned) + await self.backend.settle(left, ignore_thread)

    # -- slots --------------------------------------------------------------------------------

    def _limiters_for(self, record: TaskRecord) -> tuple[anyio.CapacityLimiter, ...]:
        name = record.target.name
        limiters = self._limiter_cache.get(name)
        if limiters is None:
            pool = self._async_slots if record.target.is_async else self._workers
            per_target = self._per_target.get(name)
            limiters = (per_target, pool) if per_target is not None else (pool,)
            shared = record.target.shared_limiter
            if shared is not None:  # first: a full server queues before it takes a pool slot
                limiters = (shared, *limiters)
            self._limiter_cache[name] = limiters
        return limiters

    def forget_limiters(self) -> None:
        """The targets changed (a source listed its tools again): work the limiters out anew."""
        self._limiter_cache = {}

    # -- running ------------------------------------------------------------------------------

    async def execute(
        self,
        record: TaskRecord,
        upstream: Sequence[TaskRecord],
        settled: Callable[[TaskRecord], None],
    ) -> None:
        """The body of the task's `asyncio.Task`: leaves `record` final, then calls `settled`.

        (A task cancelled before its first step never enters this body; whoever cancels it
        finishes the record instead: see `RunScope`.)"""
        traced = self.tracing.enabled
        try:
            if not (upstream or traced or self._approvals or record.reconcile):  # the common case
                await self._attempts(record, record.arguments)
                return
            with self.tracing.task_span(record, upstream) if traced else _NO_SPAN:
                arguments = record.arguments
                if upstream:
                    await self._await_upstream(upstream)
                    results = {up.task_id: up.result for up in upstream}
                    arguments = resolve_references(arguments, results.__getitem__)
                if record.reconcile is not None and not await reconciled(
                    record, arguments, self.finish, self.abandon
                ):
                    return  # its hook found out how the interrupted attempt ended
                if self._approvals is not None:
                    await self._approved(record, self._approvals, arguments)
                await self._attempts(record, arguments)
        except asyncio.CancelledError:
            self.finish(record, TaskStatus.CANCELLED, error="cancelled")
            raise
        except AgentloopError as exc:
            self.finish(record, TaskStatus.FAILED, error=describe(exc))
        except Exception as exc:
            # A bug of ours or a hostile value (say, an upstream result whose `__getitem__`
            # raises): the task must still end in a final state, never stay running forever.
            logger.exception("task %s failed inside agentloop", record.task_id)
            self.finish(record, TaskStatus.FAILED, error=f"internal error: {describe(exc)}")
        finally:
            settled(record)

    async def _approved(
        self, record: TaskRecord, policy: ApprovalPolicy, arguments: dict[str, Any]
    ) -> None:
        """Wait in `awaiting_approval` if the policy asks for it; raise if rejected."""
        if not await policy.required(record.target.name, arguments):
            return
        journal = record.journal
        recorded = journal.recorded_decision(record.task_id) if journal is not None else None
        if recorded is not None:  # decided before a restart: not asked again
            record.asked_approval = True
            if not recorded.approved:
                raise ApprovalRejectedError(f"rejected: {recorded.reason or 'no reason given'}")
            return
        pending = PendingApproval(
            ApprovalRequest(
                run_id=record.scope_id,
                task_id=record.task_id,
                target=record.target.name,
                arguments=arguments,
                asked_by=ASKING_PATH.get(),
            )
        )
        record.approval = pending
        record.asked_approval = True
        record.status = TaskStatus.AWAITING_APPROVAL
        self._notify(record, TaskEventKind.APPROVAL_REQUESTED, None)
        relay = APPROVAL_RELAY.get()
        if relay is not None and policy.approver is None:
            relay(pending)  # a stream of an enclosing run shows it, and may decide it
        try:
            decision = await pending.decided(policy)
        finally:
            record.approval = None
        if journal is not None:
            journal.approval_decided(record, decision)
        if not decision.approved:
            raise ApprovalRejectedError(f"rejected: {decision.reason or 'no reason given'}")
        record.status = _PENDING

    async def _await_upstream(self, upstream: Sequence[TaskRecord]) -> None:
        waiting = {up.task for up in upstream if not up.status.is_final and up.task is not None}
        if waiting:
            await asyncio.wait(waiting)
        for up in upstream:
            if up.status is not _COMPLETED:
                # Not final yet: cancelled before its first step (its canceller marks it next).
                ended = up.status if up.status.is_final else TaskStatus.CANCELLED
                raise DependencyFailedError(
                    f"upstream task `{up.task_id}` ended {ended.value}"
                    + (f" ({up.error})" if up.error else "")
                    + "; this task did not run."
                )

    async def _attempts(self, record: TaskRecord, arguments: dict[str, Any]) -> None:
        """Run attempts until one succeeds or the retries run out; leaves `record` final.

        One coroutine for all of it (the attempt inlined): on the per-task hot path each
        coroutine level costs as much as a tenth of a no-op task's whole overhead."""
        target = record.target
        inline = self._inline_async and target.is_async and record.timeout is None
        limiters = self._limiters_for(record)
        for attempt in range(1, record.retries + 2):
            record.attempts = attempt
            number = record.attempt_base + attempt  # numbering goes on after a resume
            if number > 1 and record.journal is not None:
                await record.journal.attempt_started(record, number)
            exception: BaseException | None = None
            lease = Lease()
            lease_token = CURRENT_LEASE.set(lease)
            task_token = CURRENT_TASK.set((record, number))  # what `current_task()` reads
            signal: CancelSignal | None = None
            handed_over = False  # once the backend has the call, it ends the lease
            try:
                if not lease.acquire_nowait(limiters):
                    await lease.acquire(limiters)
                if record.status is _PENDING:
                    self._mark_started(record)
                if inline:  # the backend runs async targets on this loop: no hand-over
                    with TARGET_ERRORS:
                        value = target.call(arguments)
                        if inspect.isawaitable(value):
                            value = await value
                else:
                    if target.interruptible:
                        signal = CancelSignal()
                        CURRENT_CANCEL.set(signal)
                    handed_over = True
                    call = self.backend.call(target, arguments, lease.end)
                    if record.timeout is None:
                        value = await call
                    else:
                        value = await self._before_deadline(record, call, signal)
            except TimeoutError:
                # Targets' own exceptions arrive wrapped in TargetFailed: this is our deadline.
                status, error = TaskStatus.TIMED_OUT, f"timed out after {record.timeout}s"
                Tracing.timed_out(record)
            except TargetFailed as exc:
                status, error, exception = TaskStatus.FAILED, exc.description, exc.original
            except BaseException:  # cancelled: tell code in a thread that listens for it
                if signal is not None:
                    signal.fire()
                raise
            else:
                if record.journal is not None:  # a result the journal cannot store fails here
                    try:
                        record.encoded = await record.journal.encode_result(record, value)
                    except AgentloopError as exc:
                        self.finish(record, TaskStatus.FAILED, error=str(exc))
                        return
                self.finish(record, _COMPLETED, result=value)
                return
            finally:
                try:  # both at once: one handler per attempt on the hot path
                    CURRENT_TASK.reset(task_token)
                    CURRENT_LEASE.reset(lease_token)
                except ValueError:  # closed by the GC in another context: see reset_context_var
                    pass
                if not handed_over:
                    lease.end()
            if attempt > record.retries:
                Tracing.failed(record, exception)
                self.finish(record, status, error=error)
                return
            Tracing.retried(record, error, exception)
            self._notify(record, TaskEventKind.RETRIED, error)
            await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, and drawn from its upper half (jitter)."""
        limits = self._limits
        ceiling = min(limits.retry_backoff * 2 ** (attempt - 1), limits.retry_backoff_max)
        return float(ceiling * random.uniform(0.5, 1.0))

    async def _before_deadline(
        self, record: TaskRecord, call: Awaitable[Any], signal: CancelSignal | None
    ) -> Any:
        """`await call`, but the task's timeout is a deadline: at it the attempt is over,
        whether or not the target's code honours its cancellation (code that swallows
        `CancelledError` keeps running, abandoned and logged; its slots stay taken until it
        ends). The attempt runs as a child task so that nothing it does can delay us."""
        attempt = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({attempt}, timeout=record.timeout)
        except asyncio.CancelledError:
            self.abandon(record, attempt)
            raise
        if done:
            return attempt.result()
        if signal is not None:
            signal.fire()
        self.abandon(record, attempt)
        raise TimeoutError

    def abandon(self, record: TaskRecord, work: asyncio.Future[Any], *, warn: bool = True) -> None:
        """Cancel `work` and stop waiting for it; the runner keeps it until it ends. With
        `warn`, say so if it is still running after the cancel grace (it ignores its
        cancellation)."""
        if work.done():
            return
        work.cancel()
        self._abandoned.add(work)
        work.add_done_callback(self._forget_abandoned)
        if warn:
            grace = self._limits.cancel_grace
            work.get_loop().call_later(grace, self._warn_if_running, record, work, grace)

    def _forget_abandoned(self, work: asyncio.Future[Any]) -> None:
        self._abandoned.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved: its outcome no longer matters to anyone

    @staticmethod
    def _warn_if_running(record: TaskRecord, work: asyncio.Future[Any], grace: float) -> None:
        if not work.done():
            logger.warning(
                "task %s (`%s`) did not stop within %.1fs of being cancelled: its code ignores "
                "cancellation. It was abandoned; its slots stay taken until it ends.",
                record.task_id,
                record.target.name,
                grace,
            )

    def _mark_started(self, record: TaskRecord) -> None:
        record.status = _RUNNING
        record.started_at = time.time()
        self._notify(record, TaskEventKind.STARTED, None)
        Tracing.started(record)

    def finish(
        self,
        record: TaskRecord,
        status: TaskStatus,
        *,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        if record.status in FINAL_STATUSES:
            return
        record.status = status
        record.result = result
        record.error = error
        record.completed_at = time.time()
        self._notify(record, EVENT_FOR_STATUS[status], error)


EVENT_FOR_STATUS = {
    TaskStatus.COMPLETED: TaskEventKind.COMPLETED,
    TaskStatus.FAILED: TaskEventKind.FAILED,
    TaskStatus.CANCELLED: TaskEventKind.CANCELLED,
    TaskStatus.TIMED_OUT: TaskEventKind.TIMED_OUT,
}
