"""`TaskRegistry`: a task engine, the table of its open run scopes, and a root scope.

The engine (`engine.TaskEngine`) runs tasks; each scope holds its own records; the registry
only opens and forgets scopes, registers targets, and offers the root scope's API to Python
callers who do not need runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any

from opentelemetry.trace import TracerProvider

from .._util import UNSET, Unset
from ..backends import Backend, BackendSpec
from ..core._approving import ApprovalPolicy
from ..core._budgets import Usage
from ..core._targets import Target, agent_target, tool_target
from ..core.approvals import DEFAULT_APPROVAL_TIMEOUT, Approver, NeedsApproval
from ..errors import InvalidArgumentsError, RegistryClosedError
from ..limits import Limits
from ..tasks import ReturnWhen, TaskInfo, TaskStatus, TaskType, WaitOutcome
from ..tracing._spans import Tracing
from ._bus import Subscription
from ._engine import TaskEngine
from ._sources import SourceSet
from .scope import RunScope

__all__ = ["TaskRegistry"]


class TaskRegistry:
    """Runs tool calls and managed agents as `asyncio.Task`s, bounded and scoped.

    Use it inside a running event loop. Tools may be smolagents `Tool`s or plain sync/async
    callables; managed agents may be smolagents agents (a fresh copy runs per task) or objects
    with an async `arun(task)`. The registry binds to the loop that first uses it, and refuses
    another loop while it is in use there.

    The methods below act on the registry's *root* scope, for direct Python use; `scope()`
    opens a separate one per run, which sees only its own tasks.

    Args:
        tools: tools or callables, as a list or a `{name: tool}` dict.
        managed_agents: agents to run as `managed_agent` tasks.
        max_workers: sync tasks running at once (one worker thread each).
        limits: every other bound; `max_workers` given here overrides `limits.max_workers`.
        backend: where tasks run: `"local"` (this process, the default), `"ray"` (a Ray
            cluster, with `pip install "agentloop-smol[ray]"`), or a backend object with options.
        tracer_provider: where agentloop's spans go (default: the global provider; no spans
            at all while none is configured).
        needs_approval: target names (or a callable `(name, arguments) -> bool`, sync or
            async) whose tasks wait in `awaiting_approval` until decided (see `approvals`).
        approver: an async callable that decides an `ApprovalRequest`; without one, the
            application decides through the run's stream.
        approval_timeout: seconds a request waits before it is rejected.
        mcp_servers: `agentloop.mcp.MCPServer` descriptions: their tools become targets
            once listed (`async with registry`, or `await registry.refresh_targets()`);
            their sessions close with the registry (docs/mcp.md).
        reserved_names: names a server's tool never takes as they are (an agent's task
            tools): such a tool is named `{server}_{tool}` instead.
    """

    def __init__(
        self,
        tools: Iterable[Any] | Mapping[str, Any] = (),
        managed_agents: Iterable[Any] = (),
        max_workers: int | Unset = UNSET,
        *,
        limits: Limits | None = None,
        backend: BackendSpec = "local",
        tracer_provider: TracerProvider | None = None,
        needs_approval: NeedsApproval = None,
        approver: Approver | None = None,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
        mcp_servers: Iterable[Any] = (),
        reserved_names: Iterable[str] = (),
    ) -> None:
        limits = limits or Limits()
        approvals = (
            ApprovalPolicy(needs=needs_approval, approver=approver, timeout=approval_timeout)
            if needs_approval is not None
            else None
        )
        if not isinstance(max_workers, Unset):
            limits = dataclasses.replace(limits, max_workers=max_workers)
        self._engine = TaskEngine(
            limits,
            backend=backend,
            tracer_provider=tracer_provider,
            suspects=self._suspects,
            approvals=approvals,
        )
        self._scopes: dict[str, RunScope] = {}
        self._scope_counter = itertools.count(1)
        self._root = RunScope(self._engine, "root", max_tasks=None, max_history=limits.max_history)
        self._sources = SourceSet(mcp_servers, self._engine, reserved_names)
        self.register_tools(tools)
        self.register_managed_agents(managed_agents)

    @property
    def limits(self) -> Limits:
        return self._engine.limits

    @property
    def tracing(self) -> Tracing:
        return self._engine.tracing

    @property
    def backend(self) -> Backend:
        return self._engine.backend

    @property
    def model_usage(self) -> Usage:
        """Model calls and tokens spent by every run that uses this registry (an agent's
        runs charge it through their budgets)."""
        return self._engine.usage

    def scope_is_open(self, scope_id: str) -> bool:
        """Whether a scope `scope_id` is open now (a run of that id is in progress here)."""
        return scope_id in self._scopes

    # -- registration -------------------------------------------------------------------------

    def register_tools(self, tools: Iterable[Any] | Mapping[str, Any]) -> None:
        """Add tools: smolagents `Tool`s or sync/async callables (named by `__name__`)."""
        if isinstance(tools, Mapping):
            targets = [tool_target(obj, name) for name, obj in tools.items()]
        else:
            targets = [tool_target(obj) for obj in tools]
        self._engine.catalog.add(targets)
        if targets:
            self._sources.local_targets_changed()

    def register_managed_agents(self, managed_agents: Iterable[Any]) -> None:
        """Add managed agents: smolagents agents or objects with an async `arun(task)`."""
        targets = [agent_target(agent, self._sources.context) for agent in managed_agents]
        self._engine.catalog.add(targets)
        if targets:
            self._sources.local_targets_changed()

    async def refresh_targets(self) -> None:
        """List the MCP servers' tools where needed: servers not listed yet (their sessions
        open now) and servers whose tools changed (`tools/list_changed`). Agents call it at
        the start of each run; a no-op without servers or when nothing changed.

        Raises:
            AgentloopError: a server that was never listed cannot be reached (the message
                names it and why); the other servers' tools are registered first.
        """
        if self._sources.needs_refresh:
            await self._sources.refresh()

    @property
    def tool_names(self) -> list[str]:
        return self._engine.catalog.names(TaskType.TOOL)

    @property
    def agent_names(self) -> list[str]:
        return self._engine.catalog.names(TaskType.MANAGED_AGENT)

    def targets(self, task_type: TaskType | None = None) -> list[Target]:
        """The registered targets, optionally of one type."""
        return self._engine.catalog.all(task_type)

    def target(self, name: str) -> Target | None:
        """The registered target called `name` (tool or managed agent), if any."""
        return self._engine.catalog.named(name)

    # -- scopes -------------------------------------------------------------------------------

    def open_scope(
        self, scope_id: str | None = None, *, max_tasks: int | Unset | None = UNSET
    ) -> RunScope:
        """Open a scope that the caller must `aclose()` (or use `scope()` instead)."""
        engine = self._engine
        if engine.closed:
            raise RegistryClosedError("the registry is closed; it opens no new scopes.")
        scope_id = scope_id or f"run_{next(self._scope_counter)}"
        if scope_id in self._scopes or scope_id == "root":
            raise InvalidArgumentsError(f"a scope `{scope_id}` is already open.")
        engine.enter()
        scope = RunScope(
            engine,
            scope_id,
            max_tasks=self.limits.max_tasks_per_scope
            if isinstance(max_tasks, Unset)
            else max_tasks,
            max_history=self.limits.max_history,
            on_closed=self._forget_scope,
        )
        self._scopes[scope_id] = scope
        return scope

    @contextlib.asynccontextmanager
    async def scope(
        self, scope_id: str | None = None, *, max_tasks: int | Unset | None = UNSET
    ) -> AsyncIterator[RunScope]:
        """A run scope for the duration of the block; its unfinished tasks are cancelled at exit."""
        opened = self.open_scope(scope_id, max_tasks=max_tasks)
        try:
            yield opened
        finally:
            await opened.aclose()

    def _forget_scope(self, scope: RunScope) -> None:
        """Called by a scope once it has settled (never before: see `RunScope.aclose`)."""
        if self._scopes.pop(scope.scope_id, None) is not None:
            self._engine.leave()

    def _suspects(self, since: float) -> list[str]:
        names: dict[str, None] = {}
        for scope in [self._root, *self._scopes.values()]:
            names.update(dict.fromkeys(scope.running_async_targets(since)))
        return list(names)

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
        return self._engine.bus.subscribe(None)

    # -- monitoring ---------------------------------------------------------------------------

    def get_statistics(self) -> dict[str, Any]:
        """Counters across all scopes, with `async_task_system`'s keys plus agentloop's limits."""
        return {
            **self._engine.statistics(),
            "available_tools": self.tool_names,
            "available_agents": self.agent_names,
            "open_scopes": len(self._scopes),
        }

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._engine.closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this registry is bound to, once something has used it."""
        return self._engine.loop

    async def __aenter__(self) -> TaskRegistry:
        self._engine.bind()
        await self.refresh_targets()  # MCP sessions open here, so a bad server fails fast
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, spare_thread: int | None = None) -> None:
        """Cancel and settle every task of every scope, then wait a bounded grace for work
        still running abandoned calls (`limits.thread_grace`). Idempotent.

        Args:
            spare_thread: the id of a thread not to wait for: the one asking for the close,
                when it is one of this registry's own workers (an agent shut down by its own
                tool), which would otherwise wait for itself.
        """
        self._engine.close()
        for scope in [*self._scopes.values(), self._root]:
            await scope.aclose()
        if self._sources:  # after the tasks: their calls were cancelled first
            await self._sources.aclose()
        await self._engine.aclose(spare_thread)
