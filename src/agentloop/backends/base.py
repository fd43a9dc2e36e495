"""The seam between the runner (slots, timeouts, retries) and where a target's code executes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

from .._text import truncate
from ..targets import Target

__all__ = ["TARGET_ERRORS", "Backend", "TargetFailed", "describe"]


MAX_ERROR_CHARS = 4000
"""Longest exception message kept in a task's error (the model reads it in observations)."""


def describe(exc: BaseException) -> str:
    """`Type: message`, the form task errors take everywhere.

    It never raises and stays bounded: a target's exception may have a `__str__` that raises
    (which would otherwise leave its task running forever) or a message megabytes long."""
    try:
        text = str(exc)
    except Exception:
        text = "<its message could not be read: __str__ raised>"
    text = truncate(text, MAX_ERROR_CHARS, say_how_much=True)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
