"""Instruments for the reliability suite: gates, concurrency meters, a thread sampler, servers.

Synchronisation is by events and observable state; the only timed loop here is the
`ThreadSampler`, which measures (it never decides when a test proceeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import socketserver
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

from agentloop import TaskRegistry, TaskStatus

from .._net import served

T = TypeVar("T")

WORKER_PREFIX, CONTROLLER_PREFIX = "agentloop-worker-", "agentloop-controller-"
"""How agentloop names its worker threads (sync tools) and controller threads (runs)."""


def agentloop_threads(
    prefixes: tuple[str, ...] = (WORKER_PREFIX, CONTROLLER_PREFIX),
) -> list[threading.Thread]:
    """agentloop's live threads whose name starts with one of `prefixes`."""
    return [t for t in threading.enumerate() if t.name.startswith(prefixes) and t.is_alive()]


# -- gates and meters ----------------------------------------------------------------------------


class ThreadGate:
    """Sync tool bodies block on it until the test opens it; the test awaits how many are in.

    Built on the loop: `pass_through()` is called from worker threads, `wait_entered(n)` and
    `wait_left(n)` are awaited on the loop without sleeping.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._changed = asyncio.Event()
        self.entered = 0
        self.left = 0

    def open(self) -> None:
        self._opened.set()

    def _notify(self) -> None:
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._changed.set)

    def pass_through(self, limit: float = 30.0) -> None:
        with self._lock:
            self.entered += 1
        self._notify()
        try:
            if not self._opened.wait(limit):
                raise TimeoutError("gate never opened")
        finally:
            with self._lock:
                self.left += 1
            self._notify()

    async def _until(self, check: Callable[[], bool], limit: float) -> None:
        async with asyncio.timeout(limit):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    async def wait_entered(self, count: int, limit: float = 10.0) -> None:
        await self._until(lambda: self.entered >= count, limit)

    async def wait_left(self, count: int, limit: float = 10.0) -> None:
        await self._until(lambda: self.left >= count, limit)


class Concurrency:
    """Counts how many calls are inside a block at once (thread-safe); keeps the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.calls = 0

    @contextlib.contextmanager
    def inside_call(self) -> Iterator[None]:
        with self._lock:
            self.inside += 1
            self.calls += 1
            self.peak = max(self.peak, self.inside)
        try:
            yield
        finally:
            with self._lock:
                self.inside -= 1


@dataclass
class ThreadSampler:
    """Samples thread counts (and an optional probe) from its own thread while a load runs.

    `peak_workers` is the most agentloop threads (its controller and worker threads)
    alive at once beyond those alive at start; `peak_total` the same for all threads.
    """

    probe: Callable[[], dict[str, int]] | None = None
    interval: float = 0.001
    peak_workers: int = 0
    peak_total: int = 0
    peaks: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ThreadSampler:
        base_workers = len(agentloop_threads())
        base_total = threading.active_count() + 1  # + the sampler itself

        def sample() -> None:
            while not self._stop.is_set():
                self.peak_workers = max(self.peak_workers, len(agentloop_threads()) - base_workers)
                self.peak_total = max(self.peak_total, threading.active_count() - base_total)
                if self.probe is not None:
                    for key, value in self.probe().items():
                        self.peaks[key] = max(self.peaks.get(key, 0), value)
                self.samples += 1
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, name="reliability-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def registry_probe(registry: TaskRegistry) -> Callable[[], dict[str, int]]:
    """Read the registry's worker slots in use from another thread (a plain int read).

    (Threads themselves are counted by `ThreadSampler`, from `threading.enumerate()`.)"""
    runner = registry._engine.runner

    def probe() -> dict[str, int]:
        return {"workers_in_use": runner.workers_in_use}

    return probe


# -- settling and memory -------------------------------------------------------------------------


def assert_all_final(registry: TaskRegistry) -> dict[str, Any]:
    """Every task the registry ever started is in a final state; nothing is lost."""
    stats = registry.get_statistics()
    finals = (
        stats["total_completed"]
        + stats["total_failed"]
        + stats["total_cancelled"]
        + stats["total_timed_out"]
    )
    assert (stats["pending"], stats["running"]) == (0, 0), stats
    assert finals == stats["total_submitted"], stats
    return stats


def assert_scope_final(records: list[Any]) -> None:
    """Snapshots (`TaskInfo`s) are all in a final state."""
    waiting = [info.task_id for info in records if not TaskStatus(info.status).is_final]
    assert not waiting, f"tasks not in a final state: {waiting}"


def rss_bytes() -> int:
    """Resident set size of this process (Linux), without psutil."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _page_size()


def _page_size() -> int:
    import resource

    return resource.getpagesize()


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def heap_point() -> tuple[int, int]:
    """(RSS bytes, allocated Python blocks) after a full collection."""
    gc.collect()
    return rss_bytes(), sys.getallocatedblocks()


def live_instances(*type_names: str) -> dict[str, int]:
    """How many objects of each named type are alive (after a full collection)."""
    gc.collect()
    counts = dict.fromkeys(type_names, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


# -- an event loop in a thread, as a server runs one ---------------------------------------------


class LoopThread:
    """An event loop running in its own thread; other threads hand it coroutines.

    The loop runs `asyncio.run(main)`, so anyio's worker threads belong to a root task that ends
    at `close()`, and everything is torn down the way a server's loop is.
    """

    def __init__(self, name: str = "reliability-loop") -> None:
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), name=name)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()

    def __enter__(self) -> LoopThread:
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loop thread did not start")
        return self

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)

    def responsive(self, timeout: float = 5.0) -> bool:
        """The loop still runs callbacks promptly (it has not crashed or blocked)."""
        if self.loop is None or self.loop.is_closed() or not self.thread.is_alive():
            return False
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        return done.wait(timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


# -- servers -------------------------------------------------------------------------------------


def listening_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 and already listening: clients may connect
    before the server accepts, so nobody has to poll for readiness."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    """A real uvicorn server for `app` on this loop, on 127.0.0.1; yields its base URL."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        sock.close()


class CuttingServer:
    """Accepts HTTP requests and closes the connection without answering (a cut connection)."""

    def __init__(self) -> None:
        self.connections = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer._lock:
                    outer.connections += 1
                data = b""
                with contextlib.suppress(OSError):
                    self.request.settimeout(5)
                    while b"\r\n\r\n" not in data:
                        chunk = self.request.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                # close at once: the client sees the connection drop mid-request

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._serving = contextlib.ExitStack()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> CuttingServer:
        self._serving.enter_context(served(self._server, "cut-server"))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._serving.close()


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await with a bound: a hang fails the test with a TimeoutError instead of freezing it."""
    async with asyncio.timeout(seconds):
        return await awaitable


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


class LoopLagProbe:
    """Measures how late the event loop runs a callback while the block runs: the longest
    stall anything caused (a probe, not a synchronisation: nothing waits on it).

    A subclass measures more at each tick by overriding `sample` (it runs on the loop)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = loop.time() - due
            self.worst = max(self.worst, lag)
            self.lagged(lag)
            self.sample()

    def lagged(self, lag: float) -> None:
        """Called on the loop with each tick's lag; does nothing here."""

    def sample(self) -> None:
        """Called on the loop after each tick; measures nothing here."""

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
