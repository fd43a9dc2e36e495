"""Work whose slots are held until it really ends, even when its caller gave up on it.

A thread cannot be killed, and a Ray task may take a while to notice its cancellation. When the
caller of such work is cancelled or times out, the caller moves on at once, but the work keeps
running; if its slot were released then, a flood of abandoned calls would pile up far beyond
every limit. So the slot is released (through `on_end`) only when the work has ended:

- `ThreadKeeper` runs blocking calls in worker threads it starts on demand and reuses. A worker
  reports each call's end to the loop in one callback, which makes the worker idle again and
  releases the call's slots together: whoever gets those slots next finds an idle worker, so
  busy threads never outnumber the slots held. A call abandoned before a worker picks it up
  is skipped, and reported like any other.
- `Keeper` does the same for awaitable work (a Ray object ref): it runs the work in a *keeper*
  task it owns, which the caller awaits through `asyncio.shield`.

Why not `anyio.to_thread.run_sync`: a call whose waiter is cancelled before the worker starts it
strands that worker (it never returns to the idle list, and reports nothing we could release
slots on), and reporting the end before the worker is idle lets a burst of calls start more
threads than slots. Shielding each call in a keeper task avoids both, but costs more than the
whole hop below (measured: 110 µs per call against 45 µs, see `docs/performance.md`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["IDLE_EXPIRY", "Keeper", "ThreadKeeper", "ThreadOutcome"]

T = TypeVar("T")

ThreadOutcome = tuple[bool, Any]
"""`(True, value)` or `(False, exception)`: nothing raised in the thread crosses to the loop."""

IDLE_EXPIRY = 10.0
"""Seconds an idle worker thread waits for another call before it ends (anyio's figure)."""


class Keeper:
    """Owns the keeper tasks of one component (awaitable work; threads use `ThreadKeeper`)."""

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


@dataclass(slots=True, eq=False)
class _Call:
    """One blocking call on its way to a worker thread and back."""

    loop: asyncio.AbstractEventLoop
    context: contextvars.Context
    call: Callable[[], Any]
    waiter: asyncio.Future[ThreadOutcome]
    on_end: Callable[[], None]

    def run(self) -> ThreadOutcome | None:
        """In the worker: the outcome, or `None` if the caller gave up before it started."""
        if self.waiter.cancelled():  # a plain attribute read, safe from any thread
            return None
        return self.context.run(_capture, self.call)


def _capture(call: Callable[[], Any]) -> ThreadOutcome:
    try:
        return True, call()
    except BaseException as exc:  # even SystemExit: it belongs to the call, not to the loop
        return False, exc


class _Worker:
    """One worker thread and its inbox; `None` in the inbox tells it to end."""

    __slots__ = ("expiry", "inbox", "keeper", "lock", "retired", "thread")

    def __init__(self, keeper: ThreadKeeper, name: str, expiry: float) -> None:
        self.keeper = keeper
        self.expiry = expiry
        self.inbox: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.lock = threading.Lock()  # orders a hand-over against the worker's retirement
        self.retired = False
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def hand(self, job: _Call) -> bool:
        """Give this (idle) worker `job`; False if it has already retired."""
        with self.lock:
            if self.retired:
                return False
            self.inbox.put(job)
            return True

    def _serve(self) -> None:
        while True:
            try:
                job = self.inbox.get(timeout=self.expiry)
            except queue.Empty:
                with self.lock:
                    if self.inbox.empty():  # else a job arrived just now: serve it
                        self.retired = True
                        return
                continue
            if job is None:
                return
            outcome = job.run()
            try:
                job.loop.call_soon_threadsafe(self.keeper._finish, self, job, outcome)
            except RuntimeError:  # the loop is closed: nobody is left to report to
                return
            del job, outcome  # hold nothing of the call while idle


class ThreadKeeper:
    """Worker threads for blocking calls: started on demand, reused, ended when idle for
    `IDLE_EXPIRY` seconds or at `close`.

    Callers bound the threads with their own slots: every call's `on_thread_end` runs (on the
    loop) when its thread is done with it and idle again, so there are never more busy threads
    than calls holding slots. Methods other than `live` are for the event loop's thread.
    """

    def __init__(self, name: str = "agentloop-worker", idle_expiry: float = IDLE_EXPIRY) -> None:
        self._name = name
        self._idle_expiry = idle_expiry
        self._numbers = itertools.count(1)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._live = 0
        self._closing = False
        self._drained: asyncio.Future[None] | None = None
        self._drain_floor = 0
        """`settle` is woken when no more than this many calls are live."""

    @property
    def live(self) -> int:
        """Calls handed to a thread and not yet ended, including abandoned ones."""
        return self._live

    async def run_in_thread(
        self, call: Callable[[], Any], on_thread_end: Callable[[], None]
    ) -> ThreadOutcome:
        """Run `call` in a worker thread (in a copy of the current context) and return its
        outcome. If the caller is cancelled, the thread runs on and `on_thread_end` still
        runs when it ends (at once if no thread had started the call yet)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ThreadOutcome] = loop.create_future()
        job = _Call(loop, contextvars.copy_context(), call, waiter, on_thread_end)
        self._closing = False
        self._live += 1
        while self._idle:
            worker = self._idle.pop()
            if worker.hand(job):  # the most recently idle first: it is warm
                break
        else:
            worker = _Worker(self, f"{self._name}-{next(self._numbers)}", self._idle_expiry)
            worker.hand(job)
            try:
                worker.thread.start()
            except BaseException:  # no thread to be had (RuntimeError): the call never runs
                self._live -= 1
                on_thread_end()
                raise
        self._busy.add(worker)
        return await waiter

    def _finish(self, worker: _Worker, job: _Call, outcome: ThreadOutcome | None) -> None:
        """On the loop: `worker` is done with `job`; make it idle, then release the slots."""
        self._busy.discard(worker)
        if self._closing:
            worker.inbox.put(None)
        else:
            self._idle.append(worker)
        self._live -= 1
        try:
            job.on_end()
        finally:
            if outcome is not None and not job.waiter.done():
                job.waiter.set_result(outcome)
            drained = self._drained
            if drained is not None and self._live <= self._drain_floor and not drained.done():
                drained.set_result(None)

    async def settle(self, grace: float, ignore_thread: int | None = None) -> int:
        """Wait up to `grace` seconds for running calls to end; return how many still run,
        not counting a call in thread `ignore_thread` (the caller's own: it cannot end while
        its thread waits here)."""
        floor = (
            sum(1 for w in self._busy if w.thread.ident == ignore_thread) if ignore_thread else 0
        )
        if self._live > floor:
            self._drain_floor = floor
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._drained}, timeout=grace)
        return max(self._live - floor, 0)

    def close(self) -> None:
        """End the idle threads now, and each busy one when its call ends. Using the keeper
        again afterwards starts new threads."""
        self._closing = True
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.inbox.put(None)
