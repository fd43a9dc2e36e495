"""Targets that come from somewhere else: a source lists them, and may list them again later.

An MCP server is the first such source: its tools are known only once a session with it is
open, and the server may change them while it runs (`tools/list_changed`). The registry holds
the sources it was given and asks each for its targets before a run needs them (see
`engine._sources`); it knows nothing of what a source is, only this protocol. The source
description (`agentloop.mcp.MCPServer`) makes a fresh source for each registry, so two agents
given the same description each own their own session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from opentelemetry.trace import Tracer

from ..tasks import TaskProgress
from ._targets import Target

__all__ = ["ProgressSink", "SourceContext", "SourceSpec", "TargetSource"]

ProgressSink = Callable[[TaskProgress], None]
"""Where a running task's progress goes (its record, and a `progress` event)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceContext:
    """What a registry hands the sources it opens."""

    tracer: Callable[[], Tracer | None]
    """The registry's tracer while tracing is on, else None (asked per call: cheap)."""
    progress_sink: Callable[[], ProgressSink | None]
    """Called inside a running task: where that task's progress goes (None outside one)."""


@runtime_checkable
class TargetSource(Protocol):
    """A live source of targets, owned by one registry."""

    @property
    def name(self) -> str:
        """Unique among the registry's sources; the prefix its targets get on a name clash."""

    @property
    def needs_listing(self) -> bool:
        """True before the first listing, and when the source said its targets changed."""

    async def list_targets(self) -> list[Target]:
        """Open the source if needed and return its targets, named as the source names them
        (the registry may rename them: `Target.source` is set to `name`). Raises
        `AgentloopError` with a message that names the source when it cannot."""

    async def aclose(self) -> None:
        """Close whatever the source holds (sessions, subprocesses); idempotent."""


@runtime_checkable
class SourceSpec(Protocol):
    """A description of a source (an `MCPServer`) that can open one for a registry."""

    @property
    def name(self) -> str: ...

    def open_source(self, context: SourceContext) -> TargetSource:
        """A new, not yet connected source for one registry (no I/O here)."""
