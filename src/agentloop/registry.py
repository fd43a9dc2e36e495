"""`TaskRegistry`: the asyncio core that owns every task, its limits and its run scopes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from opentelemetry.trace import TracerProvider

from ._record import TaskRecord
from .backends import BackendSpec, resolve_backend
from .errors import (
    AgentloopError,
    InvalidArgumentsError,
    RegistryClosedError,
    UnknownTargetError,
    clipped,
    close_match_hint,
    shown,
)
from .events import EventBus, Subscription
from .limits import Limits
from .runners import TaskRunner
from .scope import RunScope
from .targets import Target, agent_target, tool_target
from .tasks import (
    ReturnWhen,
    TaskEvent,
    TaskEventKind,
    TaskInfo,
    TaskStatus,
    TaskType,
    WaitOutcome,
)
from .tracing import Tracing

__all__ = ["TaskRegistry"]

logger = logging.getLogger("agentloop")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


_NO_TARGETS: dict[str, Target] = {}
_SUBMITTED, _STARTED, _RETRIED = (
    TaskEventKind.SUBMITTED,
    TaskEventKind.STARTED,
    TaskEventKind.RETRIED,
)


class TaskRegistry:
    """Runs tool calls and managed agents as `asyncio.Task`s, bounded and scoped.

    Use it inside a running event loop. Tools may be smolagents `Tool`s or plain sync/async
    callables; managed agents may be smolagents agents (a fresh copy runs per task) or objects
    with an async `arun(task)`. The registry binds to the loop that first uses it.

    The registry itself is a scope (the *root* scope) for direct Python use; `scope()` opens a
    separate one per run, which sees only its own tasks.

    Args:
        tools: tools or callables, as a list or a `{name: tool}` dict.
        managed_agents: agents to run as `managed_agent` tasks.
        max_workers: sync tasks running at once (one worker thread each).
        limits: every other bound; `max_workers` given here overrides `limits.max_workers`.
        backend: where tasks run: `"local"` (this process, the default), `"ray"` (a Ray
            cluster, with `pip install "agentloop[ray]"`), or a backend object with options.
        tracer_provider: where agentloop's spans go (default: the global provider; no spans
            at all while none is configured).
    """

    def __init__(
        self,
        tools: Iterable[Any] | Mapping[str, Any] = (),
        managed_agents: Iterable[Any] = (),
        max_workers: int | _Unset = UNSET,
        *,
        limits: Limits | None = None,
        backend: BackendSpec = "local",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        limits = limits or Limits()
        if not isinstance(max_workers, _Unset):
            limits = dataclasses.replace(limits, max_workers=max_workers)
        self.limits = limits
        self._targets: dict[TaskType, dict[str, Target]] = {t: {} for t in TaskType}
        self._bus = EventBus()
        self.tracing = Tracing(tracer_provider)
        self.backend = resolve_backend(backend)
        self._runner = TaskRunner(limits, self._notify, self.tracing, self.backend)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scopes: dict[str, RunScope] = {}
        self._scope_counter = itertools.count(1)
        self._root = RunScope(self, "root", max_tasks=None, max_history=limits.max_history)
        self._closed = False
        self._counts = dict.fromkeys(TaskEventKind, 0)
        self._pending = 0
        self._running = 0
        self.register_tools(tools)
        self.register_managed_agents(managed_agents)

    # -- registration -------------------------------------------------------------------------

    def register_tools(self, tools: Iterable[Any] | Mapping[str, Any]) -> None:
        """Add tools: smolagents `Tool`s or sync/async callables (named by `__name__`)."""
        if isinstance(tools, Mapping):
            targets = [tool_target(obj, name) for name, obj in tools.items()]
        else:
            targets = [tool_target(obj) for obj in tools]
        self._add(targets)

    def register_managed_agents(self, managed_agents: Iterable[Any]) -> None:
        """Add managed agents: smolagents agents or objects with an async `arun(task)`."""
        self._add([agent_target(agent) for agent in managed_agents])

    def _add(self, targets: list[Target]) -> None:
        taken = {name for by_name in self._targets.values() for name in by_name}
        for target in targets:
            if target.name in taken:
                raise InvalidArgumentsError(
                    f"a target named `{target.name}` is already registered; names must be unique "
                    "across tools and managed agents."
                )
            taken.add(target.name)
        for target in targets:
            self._targets[target.task_type][target.name] = target

    @property
    def tool_names(self) -> list[str]:
        return list(self._targets[TaskType.TOOL])

    @property
    def agent_names(self) -> list[str]:
        return list(self._targets[TaskType.MANAGED_AGENT])

    def targets(self, task_type: TaskType | None = None) -> list[Target]:
        """The registered targets, optionally of one type."""
        kinds = [task_type] if task_type is not None else list(TaskType)
        return [target for kind in kinds for target in self._targets[kind].values()]

    def _target(self, task_type: TaskType | str, name: str) -> Target:
        if isinstance(task_type, str) and isinstance(name, str):  # the fast path
            found: Target | None = self._targets.get(task_type, _NO_TARGETS).get(name)  # type: ignore[call-overload]
            if found is not None:
                return found
        kind = _checked_task_type(task_type)
        if not isinstance(name, str):
            raise InvalidArgumentsError(
                f"`target_name` must be a string, received {type(name).__name__} {shown(name)}."
            )
        target = self._targets[kind].get(name)
        if target is not None:
            return target
        if name == "final_answer":
            raise InvalidArgumentsError(
                "`final_answer` cannot be a task target: call `final_answer(...)` directly."
            )
        other = TaskType.MANAGED_AGENT if kind is TaskType.TOOL else TaskType.TOOL
        kind_text, other_text = kind.value.replace("_", " "), other.value.replace("_", " ")
        if name in self._targets[other]:
            raise UnknownTargetError(
                f"`{name}` is a {other_text}, not a {kind_text}: "
                f"submit it with task_type='{other.value}'."
            )
        available = list(self._targets[kind])
        listing = ", ".join(f"`{n}`" for n in available) or "none"
        raise UnknownTargetError(
            f"unknown {kind_text} `{clipped(name)}`.{close_match_hint(name, available)} "
            f"Available {kind_text}s: {listing}."
        )

    # -- scopes -------------------------------------------------------------------------------

    def open_scope(
        self, scope_id: str | None = None, *, max_tasks: int | _Unset | None = UNSET
    ) -> RunScope:
        """Open a scope that the caller must `aclose()` (or use `scope()` instead)."""
        self._bind_loop()
        if self._closed:
            raise RegistryClosedError("the registry is closed; it opens no new scopes.")
        scope_id = scope_id or f"run_{next(self._scope_counter)}"
        if scope_id in self._scopes or scope_id == "root":
            raise InvalidArgumentsError(f"a scope `{scope_id}` is already open.")
        scope = RunScope(
            self,
            scope_id,
            max_tasks=self.limits.max_tasks_per_scope
            if isinstance(max_tasks, _Unset)
            else max_tasks,
            max_history=self.limits.max_history,
        )
        self._scopes[scope_id] = scope
        return scope

    @contextlib.asynccontextmanager
    async def scope(
        self, scope_id: str | None = None, *, max_tasks: int | _Unset | None = UNSET
    ) -> AsyncIterator[RunScope]:
        """A run scope for the duration of the block; its unfinished tasks are cancelled at exit."""
        opened = self.open_scope(scope_id, max_tasks=max_tasks)
        try:
            yield opened
        finally:
            await opened.aclose()

    def _forget_scope(self, scope: RunScope) -> None:
        self._scopes.pop(scope.scope_id, None)

    @property
    def root(self) -> RunScope:
        """The registry's own scope, used by the methods below."""
        return self._root

    def __repr__(self) -> str:
        return (
            f"TaskRegistry(tools={self.tool_names}, managed_agents={self.agent_names}, "
            f"max_workers={self.limits.max_workers})"
        )

    # -- the root scope's API -----------------------------------------------------------------

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
        """Start a task in the root scope; see `RunScope.submit`."""
        return await self._root.submit(
            task_type,
            target_name,
            arguments,
            task_id=task_id,
            depends_on=depends_on,
            timeout=timeout,
            retries=retries,
        )

    async def wait(
        self,
        task_ids: Iterable[str] | str,
        timeout: float | None = None,
        return_when: ReturnWhen = "all",
    ) -> WaitOutcome:
        """Wait for root-scope tasks; see `RunScope.wait`."""
        return await self._root.wait(task_ids, timeout=timeout, return_when=return_when)

    async def results(self, task_ids: Iterable[str] | str) -> dict[str, Any]:
        """`{task_id: result}` for root-scope tasks; see `RunScope.results`."""
        return await self._root.results(task_ids)

    async def result(self, task_id: str) -> Any:
        """One root-scope task's result, raising `TaskFailedError` if it has none."""
        return await self._root.result(task_id)

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one root-scope task."""
        return self._root.get(task_id)

    def list(
        self, status: TaskStatus | str | None = None, limit: int | None = None
    ) -> list[TaskInfo]:
        """Snapshots of root-scope tasks; see `RunScope.list`."""
        return self._root.list(status=status, limit=limit)

    async def cancel(self, task_id: str) -> TaskInfo:
        """Cancel a root-scope task; see `RunScope.cancel`."""
        return await self._root.cancel(task_id)

    def events(self) -> Subscription:
        """Every task event of every scope, as an async iterator that ends at `aclose()`.

        The subscription starts when this is called (not at the first `anext`)."""
        return self._bus.subscribe(lambda event: True)

    # -- monitoring ---------------------------------------------------------------------------

    def get_statistics(self) -> dict[str, Any]:
        """Counters across all scopes, in the seed's shape plus agentloop's limits."""
        c = self._counts
        return {
            "total_submitted": c[TaskEventKind.SUBMITTED],
            "total_completed": c[TaskEventKind.COMPLETED],
            "total_failed": c[TaskEventKind.FAILED],
            "total_cancelled": c[TaskEventKind.CANCELLED],
            "total_timed_out": c[TaskEventKind.TIMED_OUT],
            "total_retries": c[TaskEventKind.RETRIED],
            "pending": self._pending,
            "running": self._running,
            "available_tools": self.tool_names,
            "available_agents": self.agent_names,
            "max_workers": self.limits.max_workers,
            "workers_in_use": self._runner.workers_in_use,
            "async_in_use": self._runner.async_in_use,
            "live_threads": self._runner.live_threads,
            "open_scopes": len(self._scopes),
        }

    def _notify(self, record: TaskRecord, kind: TaskEventKind, error: str | None) -> None:
        """Bookkeeping for one transition: counters first, then subscribers. (Hot path: it
        runs three times per task, so it compares against module constants.)"""
        self._counts[kind] += 1
        if kind is _SUBMITTED:
            self._pending += 1
        elif kind is _STARTED:
            self._pending -= 1
            self._running += 1
        elif kind is not _RETRIED:
            if record.started_at is None:
                self._pending -= 1
            else:
                self._running -= 1
            if error is not None:
                logger.debug("task %s %s: %s", record.task_id, kind.value, error)
        if self._bus.active:
            self._bus.publish(
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

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this registry is bound to, once something has used it."""
        return self._loop

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed() and self._has_live_tasks():
            raise AgentloopError(
                "this registry is in use on another event loop; create one registry per loop."
            )
        self._loop = loop

    def _has_live_tasks(self) -> bool:
        return bool(self._pending or self._running or self._runner.live_threads)

    async def __aenter__(self) -> TaskRegistry:
        self._bind_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel and settle every task of every scope, then wait a bounded grace for worker
        threads still running abandoned calls (`limits.thread_grace`). Idempotent."""
        self._closed = True
        for scope in [*self._scopes.values(), self._root]:
            await scope.aclose()
        still_running = await self._runner.settle_threads(self.limits.thread_grace)
        if still_running:
            logger.warning(
                "%d worker thread(s) still running abandoned calls after %.1fs; not waiting longer",
                still_running,
                self.limits.thread_grace,
            )
        await self.backend.aclose()
        self._bus.close()


def _checked_task_type(task_type: TaskType | str) -> TaskType:
    if isinstance(task_type, TaskType):
        return task_type
    hint = ""
    if isinstance(task_type, str):  # checked first: the enum lookup would hash any value
        with contextlib.suppress(ValueError):
            return TaskType(task_type)
        hint = close_match_hint(task_type, [t.value for t in TaskType])
    raise InvalidArgumentsError(
        f"unknown task_type {shown(task_type)}.{hint} "
        "Use 'tool' for a registered tool or 'managed_agent' for a managed agent."
    )
