"""The registry's target sources (MCP servers): listing them, naming their targets, and
closing them.

Sources are listed before a run needs their targets: at `async with registry` (or agent), and
at the start of each run for a source that was never listed or said its targets changed. So a
server's new tools reach the next run, never a run midway. A source that cannot be listed the
first time fails the run that needed it, loudly (its model would not know the tools exist);
one listed before keeps its earlier targets, with a warning, and its calls try to reconnect.

Naming, the same whatever the order of the sources: a source's target keeps its own name
unless that name is also a hand-registered target's, another source's target's, or reserved
(the agent's task tools and the builtins model code uses); then it is called
`{source}_{name}`, in every source that has it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from .._text import describe
from ..core._effects import CURRENT_TASK
from ..core._sources import ProgressSink, SourceContext, SourceSpec, TargetSource
from ..core._targets import RESERVED_NAMES, Target
from ..errors import AgentloopError, InvalidArgumentsError
from ..tasks import TaskProgress
from ._engine import TaskEngine
from ._record import TaskRecord

__all__ = ["SourceSet", "resolve_names"]

logger = logging.getLogger("agentloop")


class SourceSet:
    """The sources of one registry, and the targets they gave it."""

    def __init__(
        self, specs: Iterable[Any], engine: TaskEngine, reserved: Iterable[str] = ()
    ) -> None:
        self._engine = engine
        self._reserved = frozenset(reserved) | RESERVED_NAMES
        context = SourceContext(tracer=self._tracer, progress_sink=_progress_sink(engine))
        self.context = context
        """Also handed to managed agents that run remote work (`agent_target`)."""
        self._sources: list[TargetSource] = []
        names: set[str] = set()
        for spec in specs:
            if not isinstance(spec, SourceSpec):
                raise InvalidArgumentsError(
                    f"`mcp_servers` takes `agentloop.mcp.MCPServer` descriptions, received "
                    f"{type(spec).__name__}. Use `MCPServer.stdio(command, args=[...])` or "
                    "`MCPServer.http(url)`."
                )
            if spec.name in names:
                raise InvalidArgumentsError(
                    f"two MCP servers are named `{spec.name}`; give each a unique `name=`."
                )
            names.add(spec.name)
            self._sources.append(spec.open_source(context))
        self._listed: dict[str, list[Target]] = {}
        self._dirty = False
        self._lock: asyncio.Lock | None = None

    def __bool__(self) -> bool:
        return bool(self._sources)

    @property
    def needs_refresh(self) -> bool:
        return self._dirty or any(source.needs_listing for source in self._sources)

    def local_targets_changed(self) -> None:
        """Targets were registered by hand: the sources' names are worked out again."""
        self._dirty = bool(self._listed)

    def _tracer(self) -> Any:
        tracing = self._engine.tracing
        return tracing.tracer if tracing.enabled else None

    async def refresh(self) -> None:
        """List the sources that need it (concurrently) and register their targets. Raises
        when a source that was never listed cannot be (the others are registered first)."""
        if not self.needs_refresh:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            stale = [source for source in self._sources if source.needs_listing]
            outcomes = await asyncio.gather(
                *(source.list_targets() for source in stale), return_exceptions=True
            )
            failures: list[Exception] = []
            for source, outcome in zip(stale, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome  # cancelled: nothing to register
                    if source.name in self._listed:
                        logger.warning(
                            "could not list the tools of `%s` again (%s); keeping its earlier "
                            "tools",
                            source.name,
                            _text(outcome),
                        )
                    else:
                        failures.append(outcome)
                else:
                    self._listed[source.name] = outcome
            self._dirty = False
            self._register()
            if len(failures) == 1:
                raise failures[0]
            if failures:
                raise AgentloopError("; ".join(_text(failure) for failure in failures))

    def _register(self) -> None:
        catalog = self._engine.catalog
        resolved = resolve_names(catalog.local_names(), self._listed, self._reserved)
        catalog.replace_sourced(resolved)
        self._engine.runner.forget_limiters()

    async def aclose(self) -> None:
        """Close every source (their sessions and subprocesses), concurrently."""
        outcomes = await asyncio.gather(
            *(source.aclose() for source in self._sources), return_exceptions=True
        )
        for source, outcome in zip(self._sources, outcomes, strict=True):
            if isinstance(outcome, Exception):
                logger.warning("closing `%s` failed: %s", source.name, describe(outcome))


def resolve_names(
    local: set[str], listed: dict[str, list[Target]], reserved: frozenset[str]
) -> list[Target]:
    """The sources' targets named as the module docstring says, each marked with its
    source. Refuses (naming both) a clash that a prefix does not resolve."""
    counts = collections.Counter(t.name for targets in listed.values() for t in targets)
    resolved: dict[str, Target] = {}
    for source, targets in listed.items():
        for target in targets:
            name = target.name
            if counts[name] > 1 or name in local or name in reserved:
                name = f"{source}_{name}"
            if name in resolved or name in local:
                raise InvalidArgumentsError(
                    f"the tool `{target.name}` of `{source}` would be named `{name}`, which is "
                    "taken; give the server another `name=` or a `prefix=`."
                )
            resolved[name] = dataclasses.replace(target, name=name, source=source)
    return list(resolved.values())


def _text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, AgentloopError) else describe(exc)


def _progress_sink(engine: TaskEngine) -> Any:
    def sink_of_current_task() -> ProgressSink | None:
        running = CURRENT_TASK.get()
        if running is None:
            return None
        record = running[0]
        assert isinstance(record, TaskRecord)

        def report(progress: TaskProgress) -> None:
            engine.progress(record, progress)

        return report

    return sink_of_current_task
