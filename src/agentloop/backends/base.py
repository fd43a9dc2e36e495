"""The seam between the runner (slots, timeouts, retries) and where a target's code executes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

from .._text import describe
from ..core._targets import Target

__all__ = ["TARGET_ERRORS", "Backend", "TargetFailed", "describe"]


class TargetFailed(Exception):
    """The target raised (anything, even `SystemExit`); carries the original for tracing."""

    def __init__(self, original: BaseException, description: str | None = None) -> None:
        self.original = original
        self.description = description or describe(original)
        super().__init__(self.description)


class _TargetErrors:
    """`with TARGET_ERRORS:` around a target's code turns anything it raises (even
    `SystemExit`) into `TargetFailed`; cancellation passes through. A plain class, not a
    `contextmanager`: it sits on the per-task hot path."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return False
        raise TargetFailed(exc) from None


TARGET_ERRORS = _TargetErrors()
"""Stateless, so one instance serves every call."""


@runtime_checkable
class Backend(Protocol):
    """Where targets execute. The runner keeps limits, timeouts, retries and bookkeeping.

    `call` runs one attempt and must call `release` exactly once, when the work has *really*
    ended, which may be after the caller was cancelled (a thread cannot be killed; a remote
    task takes time to stop). It raises `TargetFailed` when the target raised.
    """

    name: str

    runs_async_inline: bool
    """Capability: async targets run on the caller's event loop, in the task itself. The runner
    then awaits them inline, without a hand-over (the per-task hot path)."""

    def check(self, target: Target, arguments: dict[str, Any]) -> None:
        """At submit: raise `InvalidArgumentsError` if this task cannot run here."""

    async def call(
        self, target: Target, arguments: dict[str, Any], release: Callable[[], None]
    ) -> Any:
        """Run one attempt and return its result."""

    @property
    def live(self) -> int:
        """Calls still running, including abandoned ones."""

    async def settle(self, grace: float, ignore_thread: int | None = None) -> int:
        """Wait up to `grace` seconds for running calls; return how many still run. A call
        running in thread `ignore_thread` (the one asking, say a tool that shuts its agent
        down) is not waited for: it cannot end while it waits."""

    async def aclose(self) -> None:
        """Release what the backend holds (connections, actors)."""
