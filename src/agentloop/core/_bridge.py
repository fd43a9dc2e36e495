"""Calls from a plain thread into the event loop, with a deadlock guard and a bound on time.

The controller thread (smolagents' blocking agent loop) and worker threads reach the registry
through here. `asyncio.run_coroutine_threadsafe` schedules the coroutine from a callback whose
context is a copy of the *calling thread's* context, so contextvars (OpenTelemetry's current
span included) set around the call are visible to the coroutine and the tasks it creates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import AgentloopError, RegistryClosedError, WouldBlockLoopError

__all__ = ["LoopBridge"]

T = TypeVar("T")

_CLOSED_CHECK_INTERVAL = 1.0
"""A safety net only: waits normally end by the coroutine finishing or being cancelled."""


class LoopBridge:
    """Runs coroutines on one loop on behalf of other threads and blocks them for the result."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        name: str = "agentloop",
        on_loop_closed: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.name = name
        self._loop_thread_id: int | None = None
        self._lock = threading.Lock()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._on_loop_closed = on_loop_closed
        """Called once, in the calling thread, when a call finds the loop closed."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop.call_soon_threadsafe(self._remember_thread)
        else:
            self._remember_thread()

    @property
    def closed(self) -> bool:
        """True once `close()` was called: the run this bridge served has ended."""
        return self._closed

    def close(self) -> None:
        """Refuse new calls and cancel the ones in flight; their callers get an error at once.

        Safe from any thread. This is how ending a run reaches a controller thread that is
        blocked in a tool call such as `sleep` or `wait_for_tasks`."""
        with self._lock:
            self._closed = True
            inflight = list(self._inflight)
            self._on_loop_closed = None  # closed now: never called (and holds the run no more)
        for future in inflight:
            future.cancel()

    def _loop_closed(self, what: str, detail: str) -> RegistryClosedError:
        """The loop is gone: refuse every later call and tell the owner, once."""
        with self._lock:
            first = not self._closed
            self._closed = True
        if first and self._on_loop_closed is not None:
            self._on_loop_closed()
        return RegistryClosedError(f"`{what}`: {detail}")

    def _remember_thread(self) -> None:
        self._loop_thread_id = threading.get_ident()

    def _refuse_on_loop_thread(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or threading.get_ident() == self._loop_thread_id:
            raise WouldBlockLoopError(
                f"`{what}` blocks until the event loop answers, but it was called on a thread "
                "that is running an event loop, where it would deadlock. From async code, "
                "await the async API instead (e.g. `await agent.arun(...)`, "
                "`await scope.wait(...)`)."
            )

    def call(
        self,
        make_coroutine: Callable[[], Coroutine[Any, Any, T]],
        *,
        timeout: float,
        what: str = "this call",
    ) -> T:
        """Run `make_coroutine()` on the loop and return its result, within `timeout` seconds."""
        self._refuse_on_loop_thread(what)
        if self.loop.is_closed():
            raise self._loop_closed(what, "the event loop is closed.")
        with self._lock:
            if self._closed:
                raise RegistryClosedError(f"`{what}`: {self.name} has ended; no further calls.")
            coroutine = make_coroutine()
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
            except RuntimeError:  # the loop closed between the check and the call
                coroutine.close()
                loop_gone = True
            else:
                loop_gone = False
                self._inflight.add(future)
        if loop_gone:
            raise self._loop_closed(what, "the event loop is closed.")
        try:
            return _result_within(future, timeout, self.loop)
        except _LoopClosed:
            raise self._loop_closed(what, "the event loop closed while it was waiting.") from None
        except concurrent.futures.CancelledError:
            raise RegistryClosedError(
                f"`{what}` was cancelled: {self.name} or its event loop is shutting down."
            ) from None
        except TimeoutError:
            future.cancel()
            raise AgentloopError(
                f"`{what}` got no answer from the event loop within {timeout:.0f}s."
            ) from None
        finally:
            with self._lock:
                self._inflight.discard(future)


class _LoopClosed(Exception):
    pass


def _result_within(
    future: concurrent.futures.Future[T], timeout: float, loop: asyncio.AbstractEventLoop
) -> T:
    remaining = timeout
    while True:
        step = min(remaining, _CLOSED_CHECK_INTERVAL)
        try:
            return future.result(step)
        except concurrent.futures.TimeoutError:
            remaining -= step
            if loop.is_closed() and not future.done():
                # Not `future.cancel()`: its callback would schedule onto the closed loop.
                raise _LoopClosed() from None
            if remaining <= 0:
                raise TimeoutError from None
