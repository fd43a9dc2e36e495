"""Memory a finished task keeps while its scope holds it in history (up to `max_history`).

A long session can hold thousands of finished tasks, so the record itself (result excluded:
the targets return `None`) must stay small. tracemalloc counts the blocks that survive a full
collection, against a snapshot taken before submitting; the floor is what bare asyncio keeps
for the same work when each finished `asyncio.Task` is held by id.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

from agentloop import TaskRegistry

from ._measure import Result, Series, paired

__all__ = ["record_memory"]

TASKS = 5000
TARGET_BYTES = 4096
# tracemalloc's own snapshots, and allocations it cannot attribute, are not the registry's.
_FILTERS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<unknown>"),
)


async def returns_none() -> None:
    """A no-op target whose result costs nothing, so only the record is measured."""


def _snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(_FILTERS)


def _grown(before: tracemalloc.Snapshot, top: list[str] | None = None) -> float:
    """Bytes per task still allocated since `before`; optionally the largest sites into `top`."""
    stats = _snapshot().compare_to(before, "lineno")
    if top is not None:
        top[:] = [
            f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno} "
            f"{s.size_diff / TASKS:+.0f} B/task"
            for s in sorted(stats, key=lambda s: -s.size_diff)[:4]
        ]
    return sum(s.size_diff for s in stats) / TASKS


async def _raw_bytes() -> float:
    before = _snapshot()
    tasks = {f"returns_none_{i}": asyncio.create_task(returns_none()) for i in range(TASKS)}
    await asyncio.wait(tasks.values())
    return _grown(before)  # `tasks` is still alive here: it is what this floor retains


async def _registry_bytes(top: list[str]) -> float:
    async with TaskRegistry([returns_none]) as registry:
        # One task first, so lazy first-use allocations are not charged to the measured ones.
        await registry.wait(await registry.submit("tool", "returns_none"))
        before = _snapshot()
        ids = [await registry.submit("tool", "returns_none") for _ in range(TASKS)]
        await registry.wait(ids)
        del ids  # our list of ids is not the registry's; the id strings stay in its records
        return _grown(before, top)


async def _measure(repeats: int, top: list[str]) -> tuple[list[float], list[float]]:
    tracemalloc.start(1)
    try:
        return await paired(repeats, _raw_bytes, lambda: _registry_bytes(top))
    finally:
        tracemalloc.stop()


def record_memory(repeats: int) -> Result:
    """Retained bytes per finished task record, against a `< 4 KB` target."""
    top: list[str] = []
    raw, reg = asyncio.run(_measure(repeats, top))
    floor = Series("dict of finished asyncio.Tasks", "B/task", tuple(raw))
    subject = Series("registry record (root scope)", "B/task", tuple(reg))
    return Result(
        name="memory",
        title=f"4. retained memory per finished task, {TASKS} no-op tasks",
        headline=(
            f"{subject.median:,.0f} B/task median; floor {floor.median:,.0f} B/task; "
            f"ratio {subject.median / floor.median:.2f}x"
        ),
        target=f"< {TARGET_BYTES / 1024:g} KB/task",
        met=subject.median < TARGET_BYTES,
        series=(floor, subject),
        figures={
            "floor_bytes_per_task": floor.median,
            "registry_bytes_per_task": subject.median,
            "ratio_median": subject.median / floor.median,
        },
        notes=("largest registry sites (last repeat): " + "; ".join(top),),
    )
