"""The task engine: what every scope of one registry shares.

Targets, the runner (slots, timeouts, retries), the backend, tracing, the event bus, the
counters, the event loop the engine is bound to, and whether it is closed. Scopes use it
through this small interface and never reach each other through it: an engine holds no table
of scopes (that is `TaskRegistry`'s), so a scope's records are reachable only from its scope.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import TracerProvider

from ..backends import BackendSpec, resolve_backend
from ..core._approving import ApprovalPolicy
from ..core._budgets import Usage
from ..errors import AgentloopError
from ..limits import Limits
from ..tasks import TaskEvent, TaskEventKind, TaskProgress
from ..tracing._spans import Tracing
from ._bus import EventBus
from ._catalog import TargetCatalog
from ._record import TaskRecord
from ._runner import TaskRunner
from ._watchdog import LoopWatchdog

__all__ = ["TaskEngine"]

logger = logging.getLogger("agentloop")

_SUBMITTED, _STARTED, _RETRIED, _ASKED = (
    TaskEventKind.SUBMITTED,
    TaskEventKind.STARTED,
    TaskEventKind.RETRIED,
    TaskEventKind.APPROVAL_REQUESTED,
)


class TaskEngine:
    """Runs the tasks of every scope of one registry; bound to one event loop at a time."""

    def __init__(
        self,
        limits: Limits,
        *,
        backend: BackendSpec,
        tracer_provider: TracerProvider | None,
        suspects: Callable[[float], list[str]],
        approvals: ApprovalPolicy | None = None,
    ) -> None:
        self.limits = limits
        self.catalog = TargetCatalog()
        self.bus = EventBus()
        self.tracing = Tracing(tracer_provider)
        self.backend = resolve_backend(backend)
        self.approvals = approvals
        self.runner = TaskRunner(limits, self.notify, self.tracing, self.backend, approvals)
        self.watchdog = LoopWatchdog(limits.loop_lag_warning, suspects, self._has_live_tasks)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: str = ""
        self._bind_lock = threading.Lock()
        self._users = 0
        self._closed = False
        self.usage = Usage()
        """Model calls and tokens of every run's budget (see `budgets`)."""
        self.counts = dict.fromkeys(TaskEventKind, 0)
        self.pending = 0
        self.running = 0

    # -- the loop -----------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this engine is bound to, once something has used it."""
        return self._loop

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Accept no new scopes or tasks (the owner then settles what runs)."""
        self._closed = True

    def enter(self) -> asyncio.AbstractEventLoop:
        """A scope opens on the running loop: bind to it, or refuse if the engine is in use on
        another loop (its tasks, threads and scopes belong there). Thread-safe."""
        loop = self.bind()
        with self._bind_lock:
            self._users += 1
        return loop

    def leave(self) -> None:
        with self._bind_lock:
            self._users -= 1

    def bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        with self._bind_lock:
            current = self._loop
            in_use = self._users or self._has_live_tasks() or self.runner.live_threads
            if current is not None and current is not loop and not current.is_closed() and in_use:
                raise AgentloopError(
                    f"this agent (or registry) is in use on another event loop (in thread "
                    f"`{self._loop_thread}`); one registry serves one loop at a time. Call "
                    "it from that loop, wait until its runs have ended, or create one "
                    "agent per loop."
                )
            if current is not None and current is not loop:
                self.watchdog.stop()
            self._loop = loop
            self._loop_thread = threading.current_thread().name
        return loop

    def _has_live_tasks(self) -> bool:
        return bool(self.pending or self.running)

    # -- accounting ---------------------------------------------------------------------------

    def notify(self, record: TaskRecord, kind: TaskEventKind, error: str | None) -> None:
        """Bookkeeping for one transition: counters first, then subscribers. (Hot path: it
        runs three times per task, so it compares against module constants.)"""
        self.counts[kind] += 1
        if kind is _SUBMITTED:
            self.pending += 1
            if not self.watchdog.running:
                self.watchdog.ensure_running()
        elif kind is _STARTED:
            self.pending -= 1
            self.running += 1
        elif kind is not _RETRIED and kind is not _ASKED:
            if record.started_at is None:
                self.pending -= 1
            else:
                self.running -= 1
            if error is not None:
                logger.debug("task %s %s: %s", record.task_id, kind.value, error)
        if self.bus.active:
            self.bus.publish(
                TaskEvent(
                    kind=kind,
                    task_id=record.task_id,
                    target_name=record.target.name,
                    scope_id=record.scope_id,
                    status=record.status,
                    at=time.time(),
                    attempt=record.attempts,
                    error=error,
                )
            )

    def progress(self, record: TaskRecord, progress: TaskProgress) -> None:
        """A running task reported how far it got: kept on its record (what `check_task`
        shows) and published as a `progress` event. Not a transition: no counter moves."""
        if record.status.is_final:
            return  # a late notification of a task that has ended
        record.progress = progress
        self.counts[TaskEventKind.PROGRESS] += 1
        if self.bus.active:
            self.bus.publish(
                TaskEvent(
                    kind=TaskEventKind.PROGRESS,
                    task_id=record.task_id,
                    target_name=record.target.name,
                    scope_id=record.scope_id,
                    status=record.status,
                    at=time.time(),
                    attempt=record.attempts,
                    progress=progress,
                )
            )

    def statistics(self) -> dict[str, Any]:
        c = self.counts
        runner = self.runner
        return {
            "total_submitted": c[TaskEventKind.SUBMITTED],
            "total_completed": c[TaskEventKind.COMPLETED],
            "total_failed": c[TaskEventKind.FAILED],
            "total_cancelled": c[TaskEventKind.CANCELLED],
            "total_timed_out": c[TaskEventKind.TIMED_OUT],
            "total_retries": c[TaskEventKind.RETRIED],
            "pending": self.pending,
            "running": self.running,
            "max_workers": self.limits.max_workers,
            "workers_in_use": runner.workers_in_use,
            "async_in_use": runner.async_in_use,
            "live_threads": runner.live_threads,
            "abandoned": runner.abandoned,
            "worst_loop_lag_ms": round(self.watchdog.worst_lag * 1000, 1),
            "model_calls": self.usage.model_calls,
            "total_tokens": self.usage.total_tokens,
            "cost_usd": self.usage.snapshot().cost_usd,
        }

    # -- shutting down ------------------------------------------------------------------------

    async def aclose(self, ignore_thread: int | None = None) -> None:
        """After every scope has settled: wait a bounded grace for abandoned work and worker
        threads (not for `ignore_thread`, the caller's own), then release the backend."""
        self._closed = True
        grace = self.limits.thread_grace
        still_running = await self.runner.settle(grace, ignore_thread)
        if still_running:
            logger.warning(
                "%d abandoned call(s) still running after %.1fs; not waiting longer",
                still_running,
                grace,
            )
        self.watchdog.stop()
        await self.backend.aclose()
        self.bus.close()
