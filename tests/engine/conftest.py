from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from agentloop import Limits, TaskRegistry


class Gate:
    """A gate that sync tools block on, so a test decides when their work ends.

    `pass_through()` runs in worker threads; `wait_entered(n)` lets the test await, without
    sleeping, until n callers are inside.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._changed = asyncio.Event()
        self.entered = 0
        self.inside = 0
        self.max_inside = 0

    def open(self) -> None:
        self._opened.set()

    def pass_through(self) -> None:
        with self._lock:
            self.entered += 1
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
        self._loop.call_soon_threadsafe(self._changed.set)
        try:
            if not self._opened.wait(10):
                raise TimeoutError("gate never opened")
        finally:
            with self._lock:
                self.inside -= 1
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._changed.set)

    async def wait_entered(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.entered < count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_inside(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.inside != count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate(asyncio.get_running_loop())
    yield g
    g.open()


@pytest.fixture
async def registry() -> AsyncIterator[TaskRegistry]:
    async def add(a: int, b: int = 1) -> int:
        return a + b

    def mul(a: int, b: int) -> int:
        return a * b

    async with TaskRegistry(tools=[add, mul], limits=Limits(retry_backoff=0.0)) as reg:
        yield reg
