"""Blocking calls in worker threads whose slots are held until the thread really ends.

A thread cannot be killed. When its caller is cancelled or times out, the caller moves on at
once, but the thread keeps running; if its slot were released then, a flood of abandoned calls
would pile up threads far beyond every limit. A `ThreadKeeper` runs each call inside a *keeper*
task it owns: the caller awaits the keeper through `asyncio.shield`, and the keeper releases the
call's slots (through `on_thread_end`) only when the thread returns.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import anyio

__all__ = ["ThreadKeeper", "ThreadOutcome"]

ThreadOutcome = tuple[bool, Any]
"""`(True, value)` or `(False, exception)`: nothing raised in the thread crosses to the loop."""


def _capture(call: Callable[[], Any]) -> ThreadOutcome:
    try:
        return True, call()
    except BaseException as exc:  # even SystemExit: it belongs to the call, not to the loop
        return False, exc


class ThreadKeeper:
    """Owns the keeper tasks of one component's worker threads."""

    def __init__(self) -> None:
        self._keepers: set[asyncio.Task[ThreadOutcome]] = set()
        # Callers bound threads with their own slots; this limiter only satisfies anyio.
        self._unbounded = anyio.CapacityLimiter(math.inf)

    @property
    def live(self) -> int:
        """Threads still running a call, including abandoned ones."""
        return len(self._keepers)

    async def run(
        self, call: Callable[[], Any], on_thread_end: Callable[[], None]
    ) -> ThreadOutcome:
        """Run `call` in a worker thread (in a copy of the current context) and return its
        outcome. If the caller is cancelled, the thread runs on and `on_thread_end` still
        runs when it ends."""
        keeper = asyncio.get_running_loop().create_task(self._keep(call, on_thread_end))
        self._keepers.add(keeper)
        keeper.add_done_callback(self._keepers.discard)
        return await asyncio.shield(keeper)

    async def _keep(
        self, call: Callable[[], Any], on_thread_end: Callable[[], None]
    ) -> ThreadOutcome:
        try:
            outcome: ThreadOutcome = await anyio.to_thread.run_sync(
                _capture, call, limiter=self._unbounded
            )
            return outcome
        finally:
            on_thread_end()

    async def settle(self, grace: float) -> int:
        """Wait up to `grace` seconds for running threads to end; return how many still run."""
        if self._keepers:
            await asyncio.wait(set(self._keepers), timeout=grace)
        return len(self._keepers)
