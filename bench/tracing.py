"""What agentloop's own spans cost: the same cycles with tracing off and with the SDK on.

"Off" is the default: no tracer provider configured, so agentloop starts no span at all. "On" is
an SDK `TracerProvider` exporting every span to memory through a `SimpleSpanProcessor` (the most
expensive in-process setup: export happens inline when each span ends).
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentloop import TaskRegistry, ToolSettings
from agentloop.agent.tools import task_tools
from agentloop.core._bridge import LoopBridge

from ._measure import Result, Series, paired, ratios

__all__ = ["tracing_overhead"]

CYCLES = 300
CORE_TASKS = 2000
TARGET = 1.5


async def noop() -> None:
    """Do nothing: the cycle's cost is all bookkeeping (and spans, when on)."""


def _sdk_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return provider


def _tool_cycles(registry_tools: dict[str, object]) -> float:
    submit, wait, results = (
        registry_tools[n] for n in ("submit_task", "wait_for_tasks", "get_task_results")
    )
    start = perf_counter()
    for _ in range(CYCLES):
        task_id = submit.forward("tool", "noop")  # type: ignore[attr-defined]
        wait.forward([task_id])  # type: ignore[attr-defined]
        results.forward([task_id])  # type: ignore[attr-defined]
    return perf_counter() - start


async def _tool_cycle(provider: TracerProvider | None) -> float:
    """Seconds per submit -> wait -> results cycle through the tools, from a plain thread."""
    async with (
        TaskRegistry([noop], tracer_provider=provider) as registry,
        registry.scope() as scope,
    ):
        bridge = LoopBridge(asyncio.get_running_loop(), name="bench")
        tools = {tool.name: tool for tool in task_tools(scope, bridge, ToolSettings())}
        return await asyncio.to_thread(_tool_cycles, tools) / CYCLES


async def _core_cycle(provider: TracerProvider | None) -> float:
    """Seconds per task for submit + wait + results of no-op tasks through the Python API."""
    async with TaskRegistry([noop], tracer_provider=provider) as registry:
        start = perf_counter()
        ids = [await registry.submit("tool", "noop") for _ in range(CORE_TASKS)]
        await registry.wait(ids)
        await registry.results(ids)
        return (perf_counter() - start) / CORE_TASKS


async def _measure(repeats: int) -> tuple[list[float], ...]:
    provider = _sdk_provider()
    try:
        off, on = await paired(repeats, lambda: _tool_cycle(None), lambda: _tool_cycle(provider))
        core_off, core_on = await paired(
            repeats, lambda: _core_cycle(None), lambda: _core_cycle(provider)
        )
    finally:
        provider.shutdown()
    return off, on, core_off, core_on


def tracing_overhead(repeats: int) -> Result:
    off, on, core_off, core_on = asyncio.run(_measure(repeats))
    us = 1e6
    ratio = ratios(on, off)
    core_ratio = ratios(core_on, core_off)
    met = ratio.median <= TARGET
    return Result(
        name="tracing",
        title=f"9. tracing overhead: {CYCLES} tool cycles from a thread; {CORE_TASKS} core tasks",
        headline=(
            f"tool cycle {ratio.median:.2f}x with spans (min {ratio.min:.2f}x); "
            f"core API {core_ratio.median:.2f}x"
        ),
        target=f"tool cycle with SDK <= {TARGET}x off",
        met=met,
        series=(
            Series("tool cycle, tracing off", "us/cycle", tuple(v * us for v in off)),
            Series("tool cycle, SDK + memory exporter", "us/cycle", tuple(v * us for v in on)),
            ratio,
            Series("core task, tracing off", "us/task", tuple(v * us for v in core_off)),
            Series("core task, SDK + memory exporter", "us/task", tuple(v * us for v in core_on)),
            Series("core ratio", "x", core_ratio.samples),
        ),
        figures={"ratio_median": ratio.median, "core_ratio_median": core_ratio.median},
        notes=(
            "tool cycle = submit_task, wait_for_tasks, get_task_results (3 loop hops, 2 spans: "
            "task and wait); core = the Python API with no thread hop (informational)",
        ),
    )
