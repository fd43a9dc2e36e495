"""The agent layer's costs: tool round trips from the controller thread, fan-out and wake-up
from model code.

The controller's code runs in a plain thread and reaches the loop through `LoopBridge`, one
`asyncio.run_coroutine_threadsafe` hop per tool call, so each figure is set beside bare hops
doing the same crossing in the same process. Figures "from model code" are timed inside the code
step with `time.perf_counter` (smolagents' executor allows `time`), so model calls and the
agent's own per-step work stay out of them; the executor's AST walking stays in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread
from smolagents import Tool

from agentloop import AsyncAgent, Limits, TaskRegistry, ToolSettings, create_async_agent
from agentloop.agent.tools import task_tools
from agentloop.core._bridge import LoopBridge
from agentloop.testing import ScriptedModel

from ._measure import Result, Series, paired, ratios

__all__ = ["direct_call", "fanout_from_model", "tool_cycle", "wait_wakeup_from_model"]

CYCLES = 300
CYCLE_TARGET = 3.0
FANOUT = 1000
NAP = 0.1
FANOUT_TARGET_S = 0.5
WAKE_TRIALS = 50
WAKE_SLEEP = 0.005
WAKE_TARGET_MS = 2.0


async def noop() -> None:
    """Do nothing: a task whose whole cost is the round trip."""


async def nap() -> None:
    """Sleep 0.1 s, like a tool waiting on I/O."""
    await asyncio.sleep(NAP)


async def stamp() -> float:
    """Sleep 5 ms (so the waiter is surely blocked), then return the time just before returning."""
    await asyncio.sleep(WAKE_SLEEP)
    return perf_counter()


def _agent(code: str, limits: Limits | None = None) -> AsyncAgent:
    """An agent whose controller runs `code` as its one step (it must call `final_answer`)."""
    return create_async_agent(tools=[noop, nap, stamp], model=ScriptedModel([code]), limits=limits)


async def _answer(agent: AsyncAgent) -> Any:
    return await agent.arun("Run the benchmark step.")


# -- 6. one submit -> wait -> results cycle ---------------------------------------------------


async def _trivial() -> None:
    pass


def _nothing() -> None:
    pass


async def _to_thread_hop() -> None:
    await anyio.to_thread.run_sync(_nothing)


def _floor_cycles(
    loop: asyncio.AbstractEventLoop, middle: Callable[[], Coroutine[Any, Any, None]]
) -> float:
    """Three bare hops into the loop; the middle one runs `middle`."""
    hop = asyncio.run_coroutine_threadsafe
    start = perf_counter()
    for _ in range(CYCLES):
        hop(_trivial(), loop).result()
        hop(middle(), loop).result()
        hop(_trivial(), loop).result()
    return perf_counter() - start


def _tool_cycles(tools: dict[str, Tool]) -> float:
    submit, wait, results = (
        tools[n] for n in ("submit_task", "wait_for_tasks", "get_task_results")
    )
    start = perf_counter()
    for _ in range(CYCLES):
        task_id = submit.forward("tool", "noop")
        wait.forward([task_id])
        results.forward([task_id])
    return perf_counter() - start


async def _floor_from_thread() -> float:
    return await asyncio.to_thread(_floor_cycles, asyncio.get_running_loop(), _to_thread_hop)


async def _bare_hops_from_thread() -> float:
    return await asyncio.to_thread(_floor_cycles, asyncio.get_running_loop(), _trivial)


async def _tools_from_thread() -> float:
    async with TaskRegistry([noop]) as registry, registry.scope() as scope:
        bridge = LoopBridge(asyncio.get_running_loop(), name="bench")
        tools = {tool.name: tool for tool in task_tools(scope, bridge, ToolSettings())}
        return await asyncio.to_thread(_tool_cycles, tools)


CYCLE_CODE = f"""
import time
t0 = time.perf_counter()
for i in range({CYCLES}):
    tid = submit_task("tool", "noop")
    wait_for_tasks([tid])
    get_task_results([tid])
final_answer(time.perf_counter() - t0)
"""


async def _cycles(repeats: int) -> list[list[float]]:
    async with _agent(CYCLE_CODE) as agent:

        async def from_model() -> float:
            return float(await _answer(agent))

        return [
            *await paired(repeats, _floor_from_thread, _tools_from_thread),
            *await paired(repeats, _bare_hops_from_thread, _tools_from_thread),
            *await paired(repeats, _tools_from_thread, from_model),
        ]


def tool_cycle(repeats: int) -> Result:
    """A no-op task's submit + wait + results through the tools, against bare loop hops."""
    floors, direct, bare, direct_2, direct_3, model = (
        tuple(t * 1e6 / CYCLES for t in samples) for samples in asyncio.run(_cycles(repeats))
    )
    floor = Series("floor: 3 hops + 1 to_thread hop", "us/cycle", floors)
    subject = Series("tools' forward, plain thread", "us/cycle", direct)
    ratio = ratios(subject.samples, floor.samples)
    bare_ratio = Series("ratio vs 3 bare hops", "x", ratios(direct_2, bare).samples)
    in_code = Series("tools from model code", "us/cycle", model)
    code_ratio = Series("ratio model code / forward", "x", ratios(model, direct_3).samples)
    return Result(
        name="tool_cycle",
        title=f"6. tool cycle submit -> wait -> results, {CYCLES} no-op tasks, controller side",
        headline=(
            f"ratio {ratio.median:.2f}x median (min {ratio.min:.2f}x), "
            f"{bare_ratio.median:.2f}x vs 3 bare hops; model code {in_code.median:.0f} us/cycle"
        ),
        target=f"ratio <= {CYCLE_TARGET:g}x",
        met=ratio.median <= CYCLE_TARGET,
        series=(floor, subject, ratio, bare_ratio, in_code, code_ratio),
        figures={
            "floor_us_per_cycle": floor.median,
            "tools_us_per_cycle": subject.median,
            "ratio_median": ratio.median,
            "ratio_min": ratio.min,
            "bare_hops_ratio_median": bare_ratio.median,
            "model_code_us_per_cycle": in_code.median,
            "model_code_ratio_median": code_ratio.median,
        },
        notes=(
            "each extra ratio pairs its own runs of the tools: with 3 bare hops (no to_thread "
            "hop), and with the same loop in model code (executor AST walking, Tool.__call__)",
        ),
    )


# -- 7. fan-out of many sleeping tasks from one code step ------------------------------------

FANOUT_CODE = f"""
import time
t0 = time.perf_counter()
ids = [submit_task("tool", "nap") for _ in range({FANOUT})]
t1 = time.perf_counter()
outcome = wait_for_tasks(ids)
t2 = time.perf_counter()
get_task_results(ids)
final_answer([t1 - t0, t2 - t0, len(outcome.completed)])
"""


async def _raw_naps() -> float:
    start = perf_counter()
    await asyncio.gather(*[asyncio.create_task(nap()) for _ in range(FANOUT)])
    return perf_counter() - start


async def _fanouts(repeats: int) -> tuple[list[float], list[float], list[float]]:
    limits = Limits(max_async_tasks=FANOUT, max_tasks_per_scope=2 * FANOUT)
    submits: list[float] = []

    async def from_model() -> float:
        submitted, waited, completed = await _answer(agent)
        if completed != FANOUT:
            raise RuntimeError(f"only {completed} of {FANOUT} tasks completed in the wait")
        submits.append(submitted)
        return float(waited)

    async with _agent(FANOUT_CODE, limits) as agent:
        raw, model = await paired(repeats, _raw_naps, from_model)
    return raw, model, submits


def fanout_from_model(repeats: int) -> Result:
    """1000 `sleep(0.1)` tasks submitted in one code step, then one `wait_for_tasks`."""
    raw, model, submits = asyncio.run(_fanouts(repeats))
    floor = Series("asyncio gather", "ms", tuple(t * 1e3 for t in raw))
    subject = Series("step start -> wait returns", "ms", tuple(t * 1e3 for t in model))
    submit = Series(f"of which {FANOUT} submit_task", "ms", tuple(t * 1e3 for t in submits))
    seconds = subject.median / 1e3
    return Result(
        name="fanout_from_model",
        title=f"7. fan-out from model code, {FANOUT} tasks x sleep({NAP:g}), one wait_for_tasks",
        headline=(
            f"{seconds:.3f} s median (min {subject.min / 1e3:.3f} s); floor "
            f"{floor.median / 1e3:.3f} s; submits {submit.median / FANOUT * 1e3:.0f} us/task"
        ),
        target=f"< {FANOUT_TARGET_S:g} s",
        met=seconds < FANOUT_TARGET_S,
        series=(floor, subject, submit),
        figures={
            "floor_ms": floor.median,
            "model_ms": subject.median,
            "submit_ms": submit.median,
            "ratio_median": ratios(subject.samples, floor.samples).median,
        },
    )


# -- 8. wake-up of wait_for_tasks in the controller thread -----------------------------------

WAKE_CODE = f"""
import time
latencies = []
for i in range({WAKE_TRIALS}):
    tid = submit_task("tool", "stamp")
    wait_for_tasks([tid])
    woke = time.perf_counter()
    latencies.append(woke - get_task_results([tid])[tid])
final_answer(latencies)
"""


def _floor_wakeups(loop: asyncio.AbstractEventLoop) -> list[float]:
    """A thread blocked on a bare hop's future, from the coroutine's stamp to waking."""
    latencies = []
    for _ in range(WAKE_TRIALS):
        stamped = asyncio.run_coroutine_threadsafe(stamp(), loop).result()
        latencies.append(perf_counter() - stamped)
    return latencies


async def _wakeups(repeats: int) -> tuple[list[float], list[float]]:
    raw: list[float] = []
    model: list[float] = []
    loop = asyncio.get_running_loop()
    async with _agent(WAKE_CODE) as agent:
        for i in range(repeats):
            # Alternate which side runs first, as `paired` does; every trial is a sample.
            if i % 2 == 0:
                raw += await asyncio.to_thread(_floor_wakeups, loop)
            model += await _answer(agent)
            if i % 2 == 1:
                raw += await asyncio.to_thread(_floor_wakeups, loop)
    return raw, model


def wait_wakeup_from_model(repeats: int) -> Result:
    """Time from a task's last line to the model code running again after `wait_for_tasks`."""
    raw, model = asyncio.run(_wakeups(repeats))
    floor = Series("thread on run_coroutine_threadsafe", "us", tuple(t * 1e6 for t in raw))
    subject = Series("wait_for_tasks in model code", "us", tuple(t * 1e6 for t in model))
    median_ms, p95_ms = subject.median / 1e3, subject.percentile(95) / 1e3
    return Result(
        name="wait_wakeup_from_model",
        title=f"8. wake-up of wait_for_tasks from model code, {repeats} x {WAKE_TRIALS} trials",
        headline=(
            f"median {median_ms:.3f} ms, p95 {p95_ms:.3f} ms; floor median "
            f"{floor.median / 1e3:.3f} ms; ratio {subject.median / floor.median:.2f}x"
        ),
        target=f"median <= {WAKE_TARGET_MS:g} ms",
        met=median_ms <= WAKE_TARGET_MS,
        series=(floor, subject),
        figures={
            "floor_median_ms": floor.median / 1e3,
            "floor_p95_ms": floor.percentile(95) / 1e3,
            "model_median_ms": median_ms,
            "model_p95_ms": p95_ms,
            "ratio_median": subject.median / floor.median,
        },
    )


# -- 10. a direct call against the submit -> wait -> results cycle, from model code ----------

DIRECT_CODE = f"""
import time
t0 = time.perf_counter()
for i in range({CYCLES}):
    noop()
final_answer(time.perf_counter() - t0)
"""
DIRECT_TARGET = 1.0


async def _direct_versus_cycle(repeats: int) -> list[list[float]]:
    async with _agent(CYCLE_CODE) as cycles, _agent(DIRECT_CODE) as direct:

        async def cycle_from_model() -> float:
            return float(await _answer(cycles))

        async def direct_from_model() -> float:
            return float(await _answer(direct))

        return [*await paired(repeats, cycle_from_model, direct_from_model)]


def direct_call(repeats: int) -> Result:
    """`noop()` called directly from model code, against submit + wait + results of it."""
    cycle, direct = (
        tuple(t * 1e6 / CYCLES for t in samples)
        for samples in asyncio.run(_direct_versus_cycle(repeats))
    )
    floor = Series("submit + wait + results, model code", "us/call", cycle)
    subject = Series("direct call, model code", "us/call", direct)
    ratio = ratios(subject.samples, floor.samples)
    return Result(
        name="direct_call",
        title=f"10. a direct call of a no-op tool from model code, {CYCLES} calls",
        headline=f"ratio {ratio.median:.2f}x median (min {ratio.min:.2f}x) of the task-tool cycle",
        target=f"ratio <= {DIRECT_TARGET:g}x",
        met=ratio.median <= DIRECT_TARGET,
        series=(floor, subject, ratio),
        figures={
            "cycle_us": floor.median,
            "direct_us": subject.median,
            "ratio_median": ratio.median,
            "ratio_min": ratio.min,
        },
        notes=("a direct call is a foreground task: one submit and one loop round trip",),
    )
