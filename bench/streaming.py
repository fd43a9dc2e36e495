"""What streaming a run costs: per event delivered to a consumer, against the same run unwatched.

The run fans out no-op async tasks (three task events each) from one code step; the same run is
timed through `arun` (nobody listening: the bus builds no event) and through `astream` with a
consumer that reads every event. The difference over the events delivered is the cost of one
event: built on the loop, buffered, and handed to the consumer.
"""

from __future__ import annotations

import asyncio
import statistics
from time import perf_counter

from smolagents.models import ChatMessage, MessageRole

from agentloop import Limits, create_async_agent
from agentloop.testing import ScriptedModel

from ._measure import Result, Series, paired

__all__ = ["delta_cost", "stream_cost"]

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


REPLY_CHARS = 4000
CHUNK_CHARS = 4  # about a token: 1000 deltas per reply
DELTA_CODE = "final_answer(1)  # " + "x" * (REPLY_CHARS - 40)


async def _measure_deltas(repeats: int) -> tuple[list[float], list[float], list[float], int]:
    model = ScriptedModel([DELTA_CODE], chunk_chars=CHUNK_CHARS)
    agent = create_async_agent(model=model)
    messages = [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "go"}])]
    deltas = 0

    async def unwatched() -> float:
        start = perf_counter()
        await agent.arun("go")
        return perf_counter() - start

    async def streamed() -> float:
        nonlocal deltas
        start = perf_counter()
        async with agent.astream("go") as stream:
            count = sum([1 async for event in stream if event.delta is not None])
        deltas = count
        return perf_counter() - start

    async def model_alone() -> float:
        """The model's own stream, read by nobody but this loop: what a provider's chunks
        cost to receive, whoever receives them (the floor under the streamed run)."""
        start = perf_counter()
        async for _ in model.agenerate_stream(messages):
            pass
        return perf_counter() - start - await _whole(model, messages)

    async with agent:
        runs, streams = await paired(repeats, unwatched, streamed)
        floors = [await model_alone() for _ in range(repeats)]
    return runs, streams, floors, deltas


async def _whole(model: ScriptedModel, messages: list[ChatMessage]) -> float:
    start = perf_counter()
    await model.agenerate(messages)
    return perf_counter() - start


def delta_cost(repeats: int) -> Result:
    """What streaming the model's words costs, per `model_delta` event a consumer reads."""
    runs, streams, floors, deltas = asyncio.run(_measure_deltas(repeats))
    floor = statistics.median(floors)
    run = Series("arun, whole reply", "ms/run", tuple(t * 1e3 for t in runs))
    stream = Series("astream, reads every delta", "ms/run", tuple(t * 1e3 for t in streams))
    model_stream = Series("the model's stream alone", "ms/reply", tuple(t * 1e3 for t in floors))
    per_delta = Series(
        "cost per delta streamed",
        "us/event",
        tuple((s - r - floor) * 1e6 / deltas for s, r in zip(streams, runs, strict=True)),
    )
    return Result(
        name="deltas",
        title=(
            f"11b. streaming a {REPLY_CHARS}-character reply in {CHUNK_CHARS}-character chunks "
            f"({deltas} model_delta events) to a consumer"
        ),
        headline=f"{per_delta.median:.1f} us per delta (min {per_delta.min:.1f})",
        target=f"<= {PER_EVENT_TARGET_US:g} us per event",
        met=per_delta.median <= PER_EVENT_TARGET_US,
        series=(run, stream, model_stream, per_delta),
        figures={"per_delta_us": per_delta.median, "deltas": deltas},
        notes=(
            "paired with the same run through arun, where the model gives its reply whole;",
            "less the model's own stream read alone (a provider's chunks cost that to receive)",
        ),
    )
