"""What streaming a run costs: per event delivered to a consumer, against the same run unwatched.

The run fans out no-op async tasks (three task events each) from one code step; the same run is
timed through `arun` (nobody listening: the bus builds no event) and through `astream` with a
consumer that reads every event. The difference over the events delivered is the cost of one
event: built on the loop, buffered, and handed to the consumer.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from smolagents.models import ChatMessage, MessageRole

from agentloop import Limits, create_async_agent
from agentloop.testing import ScriptedModel, code_reply

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


async def _measure_deltas(repeats: int) -> tuple[list[float], list[float], int]:
    """Pairs of (the run through `arun` plus the model's own stream read alone, the run
    through `astream` read to its end): their difference is what streaming adds."""
    model = ScriptedModel([DELTA_CODE], chunk_chars=CHUNK_CHARS)
    agent = create_async_agent(model=model)
    messages = [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "go"}])]
    deltas = 0

    async def unwatched_plus_model_stream() -> float:
        """The floor: the run with the reply whole, plus what the model's stream costs to
        read (a provider's chunks cost that to receive, whoever receives them)."""
        start = perf_counter()
        await agent.arun("go")
        async for _ in model.agenerate_stream(messages):
            pass
        streaming = perf_counter() - start
        start = perf_counter()
        await model.agenerate(messages)
        return streaming - (perf_counter() - start)

    async def streamed() -> float:
        nonlocal deltas
        start = perf_counter()
        async with agent.astream("go") as stream:
            count = sum([1 async for event in stream if event.delta is not None])
        deltas = count
        return perf_counter() - start

    async with agent:
        floors, streams = await paired(repeats, unwatched_plus_model_stream, streamed)
    return floors, streams, deltas


def delta_cost(repeats: int) -> Result:
    """What streaming the model's words costs, per chunk of text the model streams."""
    floors, streams, deltas = asyncio.run(_measure_deltas(repeats))
    chunks = -(-len(code_reply(DELTA_CODE)) // CHUNK_CHARS)
    floor = Series("arun + the model's stream read alone", "ms/run", tuple(t * 1e3 for t in floors))
    stream = Series("astream, reads every delta", "ms/run", tuple(t * 1e3 for t in streams))
    per_chunk = Series(
        "cost per chunk streamed",
        "us/chunk",
        tuple((s - f) * 1e6 / chunks for s, f in zip(streams, floors, strict=True)),
    )
    return Result(
        name="deltas",
        title=(
            f"11b. streaming a {REPLY_CHARS}-character reply in {CHUNK_CHARS}-character chunks "
            f"({chunks} chunks, {deltas} model_delta events delivered) to a consumer"
        ),
        headline=f"{per_chunk.median:.1f} us per chunk (min {per_chunk.min:.1f})",
        target=f"<= {PER_EVENT_TARGET_US:g} us per chunk (so per event delivered, too)",
        met=per_chunk.median <= PER_EVENT_TARGET_US,
        series=(floor, stream, per_chunk),
        figures={"per_chunk_us": per_chunk.median, "chunks": chunks, "deltas": deltas},
        notes=(
            "paired with the same run through arun (the reply whole) plus the model's own",
            "stream read alone (what a provider's chunks cost to receive, whoever reads them);",
            "a burst is delivered in few events (at most one per 10 ms after the first)",
        ),
    )
