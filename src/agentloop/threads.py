"""Work whose slots are held until it really ends, even when its caller gave up on it.

A thread cannot be killed, and a Ray task may take a while to notice its cancellation. When the
caller of such work is cancelled or times out, the caller moves on at once, but the work keeps
running; if its slot were released then, a flood of abandoned calls would pile up far beyond
every limit. A `Keeper` runs each piece of work inside a *keeper* task it owns: the caller awaits
the keeper through `asyncio.shield`, and the keeper releases the work's slots (through
`on_end`) only when the work has ended.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["Keeper", "ThreadKeeper", "ThreadOutcome"]

T = TypeVar("T")

ThreadOutcome = tuple[bool, Any]
"""`(True, value)` or `(False, exception)`: nothing raised in the thread crosses to the loop."""


def _capture(call: Callable[[], Any]) -> ThreadOutcome:
    try:
        return True, call()
    except BaseException as exc:  # even SystemExit: it belongs to the call, not to the loop
        return False, exc


class Keeper:
    """Owns the keeper tasks of one component."""

    def __init__(self) -> None:
        self._keepers: set[asyncio.Task[Any]] = set()

    @property
    def live(self) -> int:
        """Work still running, including work whose caller has given up on it."""
        return len(self._keepers)

    async def run(self, work: Awaitable[T], on_end: Callable[[], None]) -> T:
        """Await `work` in a keeper task; `on_end` runs once, when the work has ended."""
        keeper = asyncio.get_running_loop().create_task(_keep(work, on_end))
        self._keepers.add(keeper)
        keeper.add_done_callback(self._keepers.discard)
        return await asyncio.shield(keeper)

    async def settle(self, grace: float) -> int:
        """Wait up to `grace` seconds for running work to end; return how much still runs."""
        if self._keepers:
            await asyncio.wait(set(self._keepers), timeout=grace)
        return len(self._keepers)


async def _keep(work: Awaitable[T], on_end: Callable[[], None]) -> T:
    try:
        return await work
    finally:
        on_end()


class ThreadKeeper(Keeper):
    """A `Keeper` for blocking calls in anyio worker threads."""

    def __init__(self) -> None:
        super().__init__()
        # Callers bound threads with their own slots; this limiter only satisfies anyio.
        self._unbounded = anyio.CapacityLimiter(math.inf)

    async def run_in_thread(
        self, call: Callable[[], Any], on_thread_end: Callable[[], None]
    ) -> ThreadOutcome:
        """Run `call` in a worker thread (in a copy of the current context) and return its
        outcome. If the caller is cancelled, the thread runs on and `on_thread_end` still
        runs when it ends."""
        work = anyio.to_thread.run_sync(_capture, call, limiter=self._unbounded)
        return await self.run(work, on_thread_end)
