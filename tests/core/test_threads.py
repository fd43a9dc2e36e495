"""`ThreadKeeper`: worker threads that never outnumber the calls holding slots."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import anyio
import pytest

from agentloop.core._threads import ThreadKeeper, _Call

request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


class Ends:
    """Counts `on_thread_end` calls; the test awaits them instead of sleeping."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._changed.set()

    async def until(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


async def test_a_call_runs_in_a_named_worker_in_a_copy_of_the_callers_context() -> None:
    keeper = ThreadKeeper(name="test-worker")
    ends = Ends()
    request.set("r-1")

    def where() -> tuple[str, str]:
        request.set("changed in the thread")  # a copy: the caller's value stays
        return threading.current_thread().name, "r-1"

    ok, (thread_name, _) = await keeper.run_in_thread(where, ends)
    assert ok and thread_name == "test-worker-1"
    assert request.get() == "r-1" and ends.count == 1 and keeper.live == 0
    keeper.close()


async def test_exceptions_even_system_exit_come_back_as_outcomes() -> None:
    keeper = ThreadKeeper()

    def leave() -> None:
        raise SystemExit(3)

    ok, exc = await keeper.run_in_thread(leave, Ends())
    assert not ok and isinstance(exc, SystemExit)
    keeper.close()


async def test_threads_never_outnumber_the_calls_holding_slots() -> None:
    """The worker is idle again before the slot is released, so whoever takes the slot next
    reuses it: bursts through 4 slots need exactly 4 threads."""
    keeper = ThreadKeeper(name="bounded")
    slots = anyio.CapacityLimiter(4)
    seen: set[str] = set()

    async def one() -> None:
        token = object()
        await slots.acquire_on_behalf_of(token)
        await keeper.run_in_thread(
            lambda: seen.add(threading.current_thread().name),
            lambda: slots.release_on_behalf_of(token),
        )

    for _ in range(20):
        await asyncio.gather(*(one() for _ in range(25)))
    assert len(seen) == 4
    keeper.close()


async def test_an_abandoned_call_keeps_its_slot_until_its_thread_ends() -> None:
    keeper = ThreadKeeper()
    ends = Ends()
    started, release = threading.Event(), threading.Event()

    def blocked() -> str:
        started.set()
        release.wait(10)
        return "late"

    caller = asyncio.create_task(keeper.run_in_thread(blocked, ends))
    await asyncio.to_thread(started.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert (ends.count, keeper.live) == (0, 1)  # the caller moved on; the thread did not
    release.set()
    assert await keeper.settle(10) == 0
    assert ends.count == 1
    keeper.close()


def test_a_call_abandoned_before_a_worker_picks_it_up_is_skipped() -> None:
    loop = asyncio.new_event_loop()
    try:
        waiter: asyncio.Future[Any] = loop.create_future()
        ran: list[bool] = []
        job = _Call(loop, contextvars.copy_context(), lambda: ran.append(True), waiter, Ends())
        waiter.cancel()
        assert job.run() is None and not ran
    finally:
        loop.close()


async def test_idle_workers_end_after_the_expiry_and_new_ones_start_when_needed() -> None:
    keeper = ThreadKeeper(name="expiring", idle_expiry=0.01)
    names = []
    for _ in range(2):
        ok, thread = await keeper.run_in_thread(threading.current_thread, Ends())
        assert ok
        thread.join(10)  # returns once the idle worker has retired
        assert not thread.is_alive()
        names.append(thread.name)
    assert names == ["expiring-1", "expiring-2"]


async def test_close_ends_idle_workers_at_once_and_busy_ones_after_their_call() -> None:
    keeper = ThreadKeeper()
    ends = Ends()
    started, release = threading.Event(), threading.Event()

    def blocked() -> threading.Thread:
        started.set()
        release.wait(10)
        return threading.current_thread()

    busy_call = asyncio.create_task(keeper.run_in_thread(blocked, ends))
    await asyncio.to_thread(started.wait, 10)
    _, idle = await keeper.run_in_thread(threading.current_thread, ends)  # a second worker
    keeper.close()
    idle.join(10)
    assert not idle.is_alive()
    release.set()
    _, busy = await busy_call
    busy.join(10)
    assert not busy.is_alive() and ends.count == 2


def test_workers_end_when_their_loop_is_gone() -> None:
    keeper = ThreadKeeper(name="orphan")
    started, release = threading.Event(), threading.Event()

    def blocked() -> None:
        started.set()
        release.wait(10)

    loop = asyncio.new_event_loop()
    caller = loop.create_task(keeper.run_in_thread(blocked, Ends()))
    loop.run_until_complete(asyncio.sleep(0))  # the caller's first step hands the call over
    assert started.wait(10)
    caller.cancel()
    loop.run_until_complete(asyncio.gather(caller, return_exceptions=True))
    loop.close()
    worker = next(t for t in threading.enumerate() if t.name == "orphan-1")
    release.set()
    worker.join(10)  # it cannot report to a closed loop, so it ends instead of idling
    assert not worker.is_alive()


async def test_a_thread_that_cannot_start_releases_the_slot_and_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    keeper = ThreadKeeper()
    ends = Ends()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        await keeper.run_in_thread(lambda: None, ends)
    assert (ends.count, keeper.live) == (1, 0)
