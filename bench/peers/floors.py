"""The floors (bare threads and bare asyncio doing each workload), and plain `asyncio.to_thread`.

Every ratio in the peers tables is a system's run divided by the floor's run of the same repeat.
"""

from __future__ import annotations

import asyncio
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter

from ._common import EXECUTOR_THREADS, WAKE_SLEEP, WAKE_TASKS, Probe, System

__all__ = ["ASYNCIO", "async_sleeps", "noops", "thread_sleeps", "wakeups"]


def thread_sleeps(tools: int, seconds: float) -> float:
    """W1 floor: a thread per tool (started on submission, as every pool does), no scheduling."""
    with ThreadPoolExecutor(tools) as pool:
        start = perf_counter()
        futures.wait([pool.submit(time.sleep, seconds) for _ in range(tools)])
        return perf_counter() - start


def async_sleeps(tools: int, seconds: float) -> float:
    """W2 floor: `gather` of `asyncio.sleep` tasks."""

    async def run() -> float:
        start = perf_counter()
        await asyncio.gather(*[asyncio.create_task(asyncio.sleep(seconds)) for _ in range(tools)])
        return perf_counter() - start

    return asyncio.run(run())


async def _noop() -> None:
    pass


def noops(tools: int, probe: Probe) -> None:
    """W3 floor: `create_task` + `gather` of no-op coroutines."""

    async def run() -> None:
        with probe:
            await asyncio.gather(*[asyncio.create_task(_noop()) for _ in range(tools)])

    asyncio.run(run())


async def stamped_nap(stamps: list[float]) -> None:
    """W4's tool: sleep, then record the time just before returning."""
    await asyncio.sleep(WAKE_SLEEP)
    stamps.append(perf_counter())


def wakeups(trials: int) -> list[float]:
    """W4 floor: `asyncio.wait` on the tasks, resuming in the coroutine that awaited them."""

    async def run() -> list[float]:
        latencies = []
        for _ in range(trials):
            stamps: list[float] = []
            await asyncio.wait(
                [asyncio.create_task(stamped_nap(stamps)) for _ in range(WAKE_TASKS)]
            )
            latencies.append(perf_counter() - max(stamps))
        return latencies

    return asyncio.run(run())


def _to_thread_sleeps(tools: int, seconds: float, workers: int | None) -> float:
    async def run() -> float:
        if workers is not None:  # how a user raises it: a bigger default executor
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
        start = perf_counter()
        await asyncio.gather(*[asyncio.to_thread(time.sleep, seconds) for _ in range(tools)])
        return perf_counter() - start

    return asyncio.run(run())


ASYNCIO = System(
    name="asyncio.to_thread",
    default_limit=f"{EXECUTOR_THREADS} threads",
    sync_fanout=_to_thread_sleeps,
    notes={
        "w2": "is the floor",
        "w3": "is the floor",
        "w4": "is the floor",
    },
)
