"""What showing a run as AG-UI costs per event, beside the service's own SSE frame of it.

The events are a real run's (a fan-out of no-op tasks and a direct call, three task events
each, its steps and answer), recorded once as the service holds them. Per event, the native
path is `EventHub`'s frame (`id:`, `event:`, `data:` JSON); the AG-UI path is the mapper (the
event's AG-UI events: a tool call's start, arguments and end, a state patch, a result) and
their SSE text. For reference, the same AG-UI events built as `ag_ui.core` models and written
by the package's `EventEncoder` (the bytes are the same: tests/serve/test_agui.py checks it).
"""

from __future__ import annotations

import asyncio
import gc
from time import perf_counter
from typing import Any

from agentloop import Limits, create_async_agent
from agentloop.serve._agui_map import AguiMapper
from agentloop.serve._events import frame
from agentloop.serve.agui import encode
from agentloop.testing import ScriptedModel

from ._measure import Result, Series

__all__ = ["agui_cost"]

TASKS = 300
RATIO_TARGET = 1.5
ROUNDS = 20
"""Each repeat maps and encodes the run's events this many times (timing noise)."""


async def noop(n: int) -> int:
    """Return `n`.

    Args:
        n: a number.
    """
    return n


CODE = f"""
ids = [submit_task("tool", "noop", {{"n": i}}) for i in range({TASKS})]
first = noop(n=-1)
wait_for_tasks(ids)
final_answer(len(ids))
"""


async def _record() -> list[dict[str, Any]]:
    agent = create_async_agent(
        tools=[noop], model=ScriptedModel([CODE]), limits=Limits(max_tasks_per_scope=TASKS + 2)
    )
    async with agent, agent.astream("go") as stream:
        return [e.to_dict() async for e in stream if e.kind.value != "model_delta"]


def _native(events: list[dict[str, Any]]) -> float:
    start = perf_counter()
    for data in events:
        frame("run-1", data["seq"], data)
    return perf_counter() - start


def _agui(events: list[dict[str, Any]]) -> float:
    start = perf_counter()
    mapper = AguiMapper(key="run-1", thread_id="t", run_id="r", interrupts=True)
    encode(mapper.start_run("r"))
    for data in events:
        encode(mapper.feed(data), data["seq"])
    return perf_counter() - start


def _paired(events: list[dict[str, Any]]) -> tuple[float, float]:
    """Both paths, `ROUNDS` times each, interleaved (alternating which goes first) so that
    the shared machine's drift falls on both."""
    native = agui = 0.0
    for index in range(ROUNDS):
        if index % 2:
            agui += _agui(events)
            native += _native(events)
        else:
            native += _native(events)
            agui += _agui(events)
    return native, agui


def _agui_models(events: list[dict[str, Any]]) -> float:
    from ag_ui.core import Event
    from ag_ui.encoder import EventEncoder
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(Event)
    encoder = EventEncoder()
    start = perf_counter()
    mapper = AguiMapper(key="run-1", thread_id="t", run_id="r", interrupts=True)
    for wire in mapper.start_run("r"):
        encoder.encode(adapter.validate_json(wire))
    for data in events:
        for wire in mapper.feed(data):
            encoder.encode(adapter.validate_json(wire))
    return (perf_counter() - start) * ROUNDS


def agui_cost(repeats: int) -> Result:
    events = asyncio.run(_record())
    native, agui, models = [], [], []
    for _ in range(repeats):
        gc.collect()
        timed = _paired(events)
        native.append(timed[0])
        agui.append(timed[1])
        models.append(_agui_models(events))
    per = len(events) * ROUNDS / 1e6
    native_s = Series("native SSE frame", "us/event", tuple(t / per for t in native))
    agui_s = Series("AG-UI: mapped + encoded", "us/event", tuple(t / per for t in agui))
    models_s = Series(
        "AG-UI via ag_ui.core models + EventEncoder", "us/event", tuple(t / per for t in models)
    )
    ratios = Series("AG-UI / native", "x", tuple(a / n for a, n in zip(agui, native, strict=True)))
    return Result(
        name="agui",
        title=f"AG-UI encoding of a run's {len(events)} events, beside the native SSE frame",
        headline=f"{ratios.median:.2f}x the native frame ({agui_s.median:.1f} us per event)",
        target=f"<= {RATIO_TARGET:g}x",
        met=ratios.median <= RATIO_TARGET,
        series=(native_s, agui_s, models_s, ratios),
        figures={
            "ratio": ratios.median,
            "agui_us": agui_s.median,
            "native_us": native_s.median,
            "models_us": models_s.median,
            "events": len(events),
        },
        notes=(
            "per service event: the AG-UI events it becomes (a submitted task is four)",
            "the models line builds and dumps pydantic models for the same wire events",
        ),
    )
