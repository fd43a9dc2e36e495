"""The default backend: async targets on the event loop, sync targets in worker threads."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..core._targets import Target
from ..core._threads import ThreadKeeper
from .base import TARGET_ERRORS, TargetFailed

__all__ = ["LocalBackend", "run_async_target"]


async def run_async_target(target: Target, arguments: dict[str, Any]) -> Any:
    """Await an async target on this loop; any exception it raises becomes `TargetFailed`."""
    with TARGET_ERRORS:
        value = target.call(arguments)
        return (await value) if inspect.isawaitable(value) else value


class LocalBackend:
    """Runs everything in this process: no thread for async targets, a worker thread (its
    slots kept until it ends, see `ThreadKeeper`) for sync ones."""

    name = "local"
    runs_async_inline = True

    def __init__(self) -> None:
        self._threads = ThreadKeeper()

    def check(self, target: Target, arguments: dict[str, Any]) -> None:
        """Anything runs locally."""

    @property
    def live(self) -> int:
        return self._threads.live

    async def settle(self, grace: float, ignore_thread: int | None = None) -> int:
        return await self._threads.settle(grace, ignore_thread)

    async def aclose(self) -> None:
        """End the idle worker threads (busy ones end with their call, see `settle`)."""
        self._threads.close()

    async def call(
        self, target: Target, arguments: dict[str, Any], release: Callable[[], None]
    ) -> Any:
        if target.is_async:
            try:
                return await run_async_target(target, arguments)
            finally:
                release()
        call = functools.partial(_described_call, target, arguments)
        ok, value = await self._threads.run_in_thread(call, on_thread_end=release)
        if not ok:
            raise value if isinstance(value, TargetFailed) else TargetFailed(value)
        if inspect.iscoroutine(value):
            value.close()
            raise TargetFailed(
                TypeError("coroutine returned"),
                f"`{target.name}` returned a coroutine from a sync call; declare it "
                "`async def` so agentloop awaits it",
            )
        return value


def _described_call(target: Target, arguments: dict[str, Any]) -> Any:
    """In the worker thread: the target's exception is described here, so its `__str__` (user
    code, maybe slow or huge) never runs on the event loop."""
    try:
        return target.call(arguments)
    except BaseException as exc:
        raise TargetFailed(exc) from None
