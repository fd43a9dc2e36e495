"""Notice when something blocks the event loop, and say which async target was running.

An `async def` tool that calls `time.sleep` (or does seconds of CPU work) stalls every run in
the process, and nothing fails: everything just gets slow. asyncio's debug mode reports slow
callbacks, but it costs too much to leave on. This is the cheap half of it: while the engine
has work, one timer callback ticks every `interval` seconds and measures how late it ran. A
tick later than `threshold` logs one warning naming the async targets that were running in
that window (the suspects), so the culprit can be made a sync tool or fixed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("agentloop")

TICK_INTERVAL = 0.1


class LoopWatchdog:
    """A timer on one loop; `ensure_running()` is cheap enough for every task start."""

    def __init__(
        self,
        threshold: float | None,
        suspects: Callable[[float], list[str]],
        busy: Callable[[], bool],
        interval: float = TICK_INTERVAL,
    ) -> None:
        self._threshold = threshold
        self._suspects = suspects
        """Names of async targets that ran at any time since the given wall-clock time."""
        self._busy = busy
        """Whether there is still work to watch; the timer stops when there is none."""
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._wall_at_last_tick = 0.0
        self.worst_lag = 0.0
        """The longest lag seen, in seconds (for tests and statistics)."""

    @property
    def running(self) -> bool:
        return self._handle is not None

    def ensure_running(self) -> None:
        if self._handle is None and self._threshold is not None:
            self._schedule(asyncio.get_running_loop())

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self._interval
        self._wall_at_last_tick = time.time()
        self._handle = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        lag = loop.time() - self._due
        self.worst_lag = max(self.worst_lag, lag)
        if self._threshold is not None and lag > self._threshold:
            names = self._suspects(self._wall_at_last_tick - self._interval)
            logger.warning(
                "the event loop was blocked for %.2fs; async target(s) running then: %s. An "
                "`async def` tool must not block (time.sleep, CPU-heavy work, blocking I/O): "
                "await instead, or make it a plain `def` tool so it runs in a worker thread.",
                lag,
                ", ".join(f"`{name}`" for name in names) or "none of agentloop's",
            )
        if self._busy():
            self._schedule(loop)
        else:
            self._handle = None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
