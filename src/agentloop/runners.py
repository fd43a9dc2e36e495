"""How one task runs: dependencies, slots, timeouts, retries; the backend runs the code.

The runner acquires a task's slots, applies its timeout and retries, and hands each attempt to
the registry's backend (`backends.LocalBackend` by default: async targets on the loop, sync
targets in worker threads). If a task is cancelled or times out it is marked at once and nobody
waits for its work, but the backend releases the slots only when the work really ends (a thread
cannot be killed), so the limits stay true.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from typing import Any

import anyio

from ._record import TaskRecord
from .backends import Backend, LocalBackend, TargetFailed, describe
from .backends.base import TARGET_ERRORS
from .errors import AgentloopError, DependencyFailedError
from .limits import Limits
from .references import resolve_references
from .tasks import FINAL_STATUSES, TaskEventKind, TaskStatus
from .tracing import Tracing

__all__ = ["CURRENT_LEASE", "CURRENT_TASK", "Lease", "TaskRunner"]

logger = logging.getLogger("agentloop")

_NO_SPAN = contextlib.nullcontext()

# Hot-path constants: a module global is ten times cheaper to read than an enum attribute.
_PENDING, _RUNNING, _COMPLETED = TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.COMPLETED

CURRENT_TASK: ContextVar[TaskRecord | None] = ContextVar("agentloop_current_task", default=None)
"""The task whose code is running in this context (inherited by its worker thread)."""


class Lease:
    """The slots one attempt of one task holds; it is the borrower the limiters see."""

    __slots__ = ("held", "runner")

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner
        self.held: tuple[anyio.CapacityLimiter, ...] = ()


CURRENT_LEASE: ContextVar[Lease | None] = ContextVar("agentloop_current_lease", default=None)

Notify = Callable[[TaskRecord, TaskEventKind, "str | None"], None]


class TaskRunner:
    """Owns the slots (capacity limiters) and the keepers of worker threads of one registry."""

    def __init__(self, limits: Limits, notify: Notify, tracing: Tracing, backend: Backend) -> None:
        self._limits = limits
        self._notify = notify
        self.tracing = tracing
        self._workers = anyio.CapacityLimiter(limits.max_workers)
        self._async_slots = anyio.CapacityLimiter(limits.max_async_tasks)
        self._per_target = {
            name: anyio.CapacityLimiter(bound) for name, bound in limits.target_limits.items()
        }
        self.backend = backend
        self._inline_async = isinstance(backend, LocalBackend)
        self._limiter_cache: dict[str, tuple[anyio.CapacityLimiter, ...]] = {}

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

    async def settle_threads(self, grace: float) -> int:
        """Wait up to `grace` seconds for running work to end; return how much still runs."""
        return await self.backend.settle(grace)

    # -- slots --------------------------------------------------------------------------------

    def _limiters_for(self, record: TaskRecord) -> tuple[anyio.CapacityLimiter, ...]:
        name = record.target.name
        limiters = self._limiter_cache.get(name)
        if limiters is None:
            pool = self._async_slots if record.target.is_async else self._workers
            per_target = self._per_target.get(name)
            limiters = (per_target, pool) if per_target is not None else (pool,)
            self._limiter_cache[name] = limiters
        return limiters

    def _acquire_nowait(self, lease: Lease, limiters: Sequence[anyio.CapacityLimiter]) -> bool:
        """Take the free slots among `limiters`, in order, up to the first full one; True if
        all were free (the common case costs no event-loop turn and no coroutine)."""
        for limiter in limiters[len(lease.held) :]:
            try:
                limiter.acquire_on_behalf_of_nowait(lease)
            except anyio.WouldBlock:
                return False
            lease.held += (limiter,)
        return True

    async def _acquire(self, lease: Lease, limiters: Sequence[anyio.CapacityLimiter]) -> None:
        """Take every slot of `limiters`, queueing fairly for the full ones."""
        while not self._acquire_nowait(lease, limiters):
            limiter = limiters[len(lease.held)]
            await limiter.acquire_on_behalf_of(lease)
            lease.held += (limiter,)

    def _release(self, lease: Lease) -> None:
        held, lease.held = lease.held, ()
        for limiter in held:
            limiter.release_on_behalf_of(lease)

    @contextlib.asynccontextmanager
    async def lend_slots(self) -> AsyncIterator[None]:
        """While a running task waits on other tasks, let them use its slots.

        This is what makes nested work deadlock-free: a task holding the only worker slot can
        still submit and wait on further tasks at `max_workers=1`.
        """
        lease = CURRENT_LEASE.get()
        if lease is None or lease.runner is not self or not lease.held:
            yield
            return
        lent = lease.held
        self._release(lease)
        try:
            yield
        finally:
            await self._acquire(lease, lent)

    # -- running ------------------------------------------------------------------------------

    async def execute(
        self,
        record: TaskRecord,
        upstream: Sequence[TaskRecord],
        settled: Callable[[TaskRecord], None],
    ) -> None:
        """The body of the task's `asyncio.Task`: leaves `record` final, then calls `settled`.

        (A task cancelled before its first step never enters this body; whoever cancels it
        finishes the record instead: see `RunScope.cancel_all`.)"""
        CURRENT_TASK.set(record)
        traced = self.tracing.enabled
        try:
            if not (upstream or traced):  # the common case: no span to open, nothing to await
                await self._attempts(record, record.arguments)
                return
            with self.tracing.task_span(record, upstream) if traced else _NO_SPAN:
                arguments = record.arguments
                if upstream:
                    await self._await_upstream(record, upstream)
                    results = {up.task_id: up.result for up in upstream}
                    arguments = resolve_references(arguments, results.__getitem__)
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

    async def _await_upstream(self, record: TaskRecord, upstream: Sequence[TaskRecord]) -> None:
        waiting = {up.task for up in upstream if not up.status.is_final and up.task is not None}
        if waiting:
            await asyncio.wait(waiting)
        for up in upstream:
            if up.status is not _COMPLETED:
                raise DependencyFailedError(
                    f"upstream task `{up.task_id}` ended {up.status.value}"
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
            exception: BaseException | None = None
            lease = Lease(self)
            handed_over = False  # once the backend has the call, it releases the slots
            try:
                if not self._acquire_nowait(lease, limiters):
                    await self._acquire(lease, limiters)
                CURRENT_LEASE.set(lease)
                if record.status is _PENDING:
                    self._mark_started(record)
                if inline:  # `LocalBackend`'s async case (`run_async_target`), inlined
                    with TARGET_ERRORS:
                        value = target.call(arguments)
                        if inspect.isawaitable(value):
                            value = await value
                else:
                    handed_over = True
                    async with asyncio.timeout(record.timeout):
                        value = await self.backend.call(
                            target, arguments, functools.partial(self._release, lease)
                        )
            except TimeoutError:
                # Targets' own exceptions arrive wrapped in TargetFailed: this is our deadline.
                status, error = TaskStatus.TIMED_OUT, f"timed out after {record.timeout}s"
                Tracing.timed_out(record)
            except TargetFailed as exc:
                status, error, exception = TaskStatus.FAILED, exc.description, exc.original
            else:
                self.finish(record, _COMPLETED, result=value)
                return
            finally:
                # CURRENT_LEASE may keep pointing here: an emptied lease lends nothing.
                if not handed_over:
                    self._release(lease)
            if attempt > record.retries:
                Tracing.failed(record, exception)
                self.finish(record, status, error=error)
                return
            Tracing.retried(record, error, exception)
            self._notify(record, TaskEventKind.RETRIED, error)
            backoff = self._limits.retry_backoff * 2 ** (attempt - 1)
            await asyncio.sleep(min(backoff, self._limits.retry_backoff_max))

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
        self._notify(record, _EVENT_FOR_STATUS[status], error)


_EVENT_FOR_STATUS = {
    TaskStatus.COMPLETED: TaskEventKind.COMPLETED,
    TaskStatus.FAILED: TaskEventKind.FAILED,
    TaskStatus.CANCELLED: TaskEventKind.CANCELLED,
    TaskStatus.TIMED_OUT: TaskEventKind.TIMED_OUT,
}
