"""The worker-thread hop of sync targets, against the `anyio.to_thread.run_sync` it wraps.

Informational: the thread hop itself dominates, and what matters is that the registry's
bookkeeping around it (slots, keeper task, context copy) stays a modest multiple of it.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import anyio
import anyio.to_thread

from agentloop import TaskRegistry

from ._measure import Result, Series, paired, ratios
from .core import submit_wait_results

__all__ = ["sync_hop"]

TASKS = 500
WORKERS = 4


def noop_sync() -> None:
    """A no-op sync target: its whole cost is the hop to a worker thread and back."""


async def _raw_hops() -> float:
    limiter = anyio.CapacityLimiter(WORKERS)
    start = perf_counter()
    await asyncio.gather(
        *[
            asyncio.create_task(anyio.to_thread.run_sync(noop_sync, limiter=limiter))
            for _ in range(TASKS)
        ]
    )
    return perf_counter() - start


async def _registry_hops() -> float:
    async with TaskRegistry([noop_sync], max_workers=WORKERS) as registry:
        return await submit_wait_results(registry, "noop_sync", TASKS)


def sync_hop(repeats: int) -> Result:
    """Per-task cost of a no-op sync target through the registry, `max_workers=4`."""
    raw, reg = asyncio.run(paired(repeats, _raw_hops, _registry_hops))
    per_task = 1e6 / TASKS
    floor = Series("anyio.to_thread.run_sync", "us/task", tuple(t * per_task for t in raw))
    subject = Series("registry submit+wait+results", "us/task", tuple(t * per_task for t in reg))
    ratio = ratios(subject.samples, floor.samples)
    return Result(
        name="sync",
        title=f"5. sync hop, {TASKS} no-op sync tasks, {WORKERS} workers",
        headline=f"ratio {ratio.median:.2f}x median (min {ratio.min:.2f}x)",
        target=None,
        met=True,
        series=(floor, subject, ratio),
        figures={
            "floor_us_per_task": floor.median,
            "registry_us_per_task": subject.median,
            "ratio_median": ratio.median,
            "ratio_min": ratio.min,
        },
    )
