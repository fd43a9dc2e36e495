"""A first-come, first-served count of slots, shared by every event loop and thread of a process.

Why not `anyio.CapacityLimiter` (FIFO too, and used for runs and threads): its waiters are
tasks of one event loop. A `ModelLimits` is one budget per process: it may be created at
import time and shared by agents whose runs are on different loops (each blocking `run()`
face starts a loop of its own), and by plain smolagents managed agents, which call their
model's blocking `generate` in a worker thread and must wait there. So one `threading.Lock`
guards the count and the queue, and a waiter is either a future of its own loop or, for a
blocking caller, a `threading.Event`. A released slot goes straight to the first waiter (no
barging), so slots are granted in arrival order and no caller starves. An async waiter holds
no thread; it is woken with `call_soon_threadsafe` when the slot is released elsewhere.

A waiter cancelled while its slot was being handed to it passes the slot on: nothing is taken
that is not given back, and nothing given back that was not taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

__all__ = ["FifoSlots"]


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[None] | None,
        event: threading.Event | None,
    ) -> None:
        self.loop = loop
        self.future = future
        self.event = event
        self.granted = False


class FifoSlots:
    """`total` slots, granted in arrival order to async and blocking callers alike."""

    __slots__ = ("_free", "_lock", "_waiters", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self.total - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting on the loop (no thread) behind earlier callers."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future(), None)
            self._waiters.append(waiter)
        try:
            await waiter.future  # type: ignore[misc]
        except BaseException:
            if self._forget(waiter):
                self.release()  # it was handed to us as we were cancelled: pass it on
            raise

    def acquire_blocking(self, abandon: threading.Event | None = None) -> bool:
        """Take a slot, blocking this thread behind earlier callers; False (nothing taken)
        if `abandon` is set first (the caller's task was cancelled)."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = _Waiter(None, None, abandon or threading.Event())
            self._waiters.append(waiter)
        assert waiter.event is not None
        waiter.event.wait()
        return self._forget(waiter)

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the free count."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if self._grant(waiter):
                    return
            self._free += 1

    def _grant(self, waiter: _Waiter) -> bool:
        """Under the lock: hand the slot to `waiter`; False if it is gone (cancelled, or its
        loop closed)."""
        if waiter.event is not None:
            if waiter.event.is_set():  # abandoned: it is about to leave the queue
                return False
            waiter.granted = True
            waiter.event.set()
            return True
        future, loop = waiter.future, waiter.loop
        assert future is not None
        assert loop is not None
        if _running_loop() is loop:
            if future.done():  # cancelled: its task will find itself out of the queue
                return False
            waiter.granted = True
            future.set_result(None)
            return True
        try:
            loop.call_soon_threadsafe(_wake, future)
        except RuntimeError:  # its loop is closed: nobody will take the slot there
            return False
        waiter.granted = True  # if it is cancelled before waking, it passes the slot on
        return True

    def _forget(self, waiter: _Waiter) -> bool:
        """The waiter stops waiting: True if it had been granted the slot (now its own)."""
        with self._lock:
            if not waiter.granted:
                with contextlib.suppress(ValueError):  # already popped by a release
                    self._waiters.remove(waiter)
            return waiter.granted


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
