"""What streaming a run costs: per event delivered to a consumer, against the same run unwatched.

The run fans out no-op async tasks (three task events each) from one code step; the same run is
timed through `arun` (nobody listening: the bus builds no event) and through `astream` with a
consumer that reads every event. The difference over the events delivered is the cost of one
event: built on the loop, buffered, and handed to the consumer.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from agentloop import Limits, create_async_agent
from agentloop.testing import ScriptedModel

from ._measure import Result, Series, paired

__all__ = ["stream_cost"]

TASKS = 333  # ~1000 task events
PER_EVENT_TARGET_US = 20.0


async def noop() -> None:
    """Do nothing."""


CODE = f"""
ids = [submit_task("tool", "noop") for _ in range({TASKS})]
wait_for_tasks(ids)
final_answer(len(ids))
"""


async def _measure(repeats: int) -> tuple[list[float], list[float], int]:
    limits = Limits(max_tasks_per_scope=TASKS + 1)
    agent = create_async_agent(tools=[noop], model=ScriptedModel([CODE]), limits=limits)
    events = 0

    async def unwatched() -> float:
        start = perf_counter()
        await agent.arun("go")
        return perf_counter() - start

    async def streamed() -> float:
        nonlocal events
        start = perf_counter()
        async with agent.astream("go") as stream:
            count = sum([1 async for _ in stream])
        events = count
        return perf_counter() - start

    async with agent:
        runs, streams = await paired(repeats, unwatched, streamed)
    return runs, streams, events


def stream_cost(repeats: int) -> Result:
    runs, streams, events = asyncio.run(_measure(repeats))
    run = Series("arun, nobody listening", "ms/run", tuple(t * 1e3 for t in runs))
    stream = Series("astream, consumer reads all", "ms/run", tuple(t * 1e3 for t in streams))
    per_event = Series(
        "cost per event streamed",
        "us/event",
        tuple((s - r) * 1e6 / events for s, r in zip(streams, runs, strict=True)),
    )
    return Result(
        name="streaming",
        title=f"11. streaming a run of {TASKS} tasks ({events} events) to a consumer",
        headline=f"{per_event.median:.1f} us per event (min {per_event.min:.1f})",
        target=f"<= {PER_EVENT_TARGET_US:g} us per event",
        met=per_event.median <= PER_EVENT_TARGET_US,
        series=(run, stream, per_event),
        figures={"per_event_us": per_event.median, "events": events},
        notes=("paired with the same run through arun, where the event bus builds nothing",),
    )
