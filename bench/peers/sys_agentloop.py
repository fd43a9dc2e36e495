"""agentloop, two ways: the Python API (`TaskRegistry`) and model code (an `AsyncAgent` whose one
code step submits every task, then waits).

From model code the figure is timed inside the code step with `time.perf_counter`, as
`bench/agent.py` does: the controller's model call and per-step bookkeeping stay out of it, the
executor's AST walking and every thread -> loop hop stay in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from time import perf_counter
from typing import Any

from ._common import WAKE_SLEEP, WAKE_TASKS, Probe, System

__all__ = ["API", "MODEL_CODE", "run_plan"]


def nap_sync(seconds: float) -> None:
    """Sleep in a worker thread, like a tool blocked on a sync client."""
    time.sleep(seconds)


async def nap(seconds: float) -> None:
    """Sleep on the loop, like a tool awaiting I/O."""
    await asyncio.sleep(seconds)


async def noop() -> None:
    """Do nothing: the whole cost is the task's overhead."""


async def stamp() -> float:
    """Sleep, then return the time just before returning."""
    await asyncio.sleep(WAKE_SLEEP)
    return perf_counter()


def _workers(workers: int | None) -> dict[str, Any]:
    """`max_workers` when given; agentloop's default otherwise."""
    return {} if workers is None else {"max_workers": workers}


# -- through the Python API -------------------------------------------------------------------


async def _api_fanout(
    target: str, tools: int, arguments: dict[str, Any], workers: int | None = None
) -> float:
    from agentloop import TaskRegistry

    async with TaskRegistry([nap_sync, nap, noop], **_workers(workers)) as registry:
        start = perf_counter()
        ids = [await registry.submit("tool", target, arguments) for _ in range(tools)]
        await registry.wait(ids)
        await registry.results(ids)
        return perf_counter() - start


def _api_sync(tools: int, seconds: float, workers: int | None) -> float:
    return asyncio.run(_api_fanout("nap_sync", tools, {"seconds": seconds}, workers))


def _api_async(tools: int, seconds: float) -> float:
    return asyncio.run(_api_fanout("nap", tools, {"seconds": seconds}))


def _api_noops(tools: int, probe: Probe) -> None:
    from agentloop import TaskRegistry

    async def run() -> None:
        async with TaskRegistry([noop]) as registry:
            with probe:
                ids = [await registry.submit("tool", "noop") for _ in range(tools)]
                await registry.wait(ids)
                await registry.results(ids)

    asyncio.run(run())


def _api_wakeups(trials: int) -> list[float]:
    from agentloop import TaskRegistry

    async def run() -> list[float]:
        latencies = []
        async with TaskRegistry([stamp]) as registry:
            for _ in range(trials):
                ids = [await registry.submit("tool", "stamp") for _ in range(WAKE_TASKS)]
                await registry.wait(ids)
                woke = perf_counter()
                latencies.append(woke - max((await registry.results(ids)).values()))
        return latencies

    return asyncio.run(run())


API = System(
    name="agentloop (Python API)",
    default_limit="3 workers",
    sync_fanout=_api_sync,
    async_fanout=_api_async,
    noops=_api_noops,
    wakeups=_api_wakeups,
    wake_point="after `await registry.wait(ids)`",
)

# -- from model code --------------------------------------------------------------------------

FANOUT_CODE = """
import time
t0 = time.perf_counter()
ids = [submit_task("tool", "{target}", {arguments}) for _ in range({tools})]
wait_for_tasks(ids, max_wait_time=600)
get_task_results(ids)
final_answer(time.perf_counter() - t0)
"""

WAKE_CODE = """
import time
latencies = []
for _ in range({trials}):
    ids = [submit_task("tool", "stamp") for _ in range({tasks})]
    wait_for_tasks(ids)
    woke = time.perf_counter()
    latencies.append(woke - max(get_task_results(ids).values()))
final_answer(latencies)
"""


async def run_plan(
    steps: list[str],
    tools: list[Any],
    *,
    workers: int | None = None,
    limits: Any = None,
    delay: float = 0.0,
    probe: Probe | None = None,
) -> tuple[Any, int]:
    """Run a scripted controller to its final answer; return the answer and the model calls.

    `workers` is `max_workers` (agentloop's default when `None`). `probe`, if given, brackets
    the `arun` call (the agent is built before it)."""
    from agentloop import create_async_agent
    from agentloop.testing import ScriptedModel

    model = ScriptedModel(steps, delay=delay)
    agent = create_async_agent(tools=tools, model=model, limits=limits, **_workers(workers))
    async with agent:
        with probe or contextlib.nullcontext():
            answer = await agent.arun("Run the benchmark plan.")
    return answer, model.calls


def _code_fanout(
    target: str, tools: int, arguments: dict[str, Any], workers: int | None = None
) -> float:
    code = FANOUT_CODE.format(target=target, tools=tools, arguments=arguments)
    answer, _ = asyncio.run(run_plan([code], [nap_sync, nap, noop], workers=workers))
    return float(answer)


def _code_sync(tools: int, seconds: float, workers: int | None) -> float:
    return _code_fanout("nap_sync", tools, {"seconds": seconds}, workers)


def _code_async(tools: int, seconds: float) -> float:
    return _code_fanout("nap", tools, {"seconds": seconds})


def _code_noops(tools: int, probe: Probe) -> None:
    from agentloop import Limits

    code = FANOUT_CODE.format(target="noop", tools=tools, arguments={})
    limits = Limits(max_tasks_per_scope=2 * tools)
    answer, _ = asyncio.run(run_plan([code], [noop], limits=limits, probe=probe))
    probe.seconds = float(answer)  # timed inside the step; the probe's memory peak stands


def _code_wakeups(trials: int) -> list[float]:
    code = WAKE_CODE.format(trials=trials, tasks=WAKE_TASKS)
    answer, _ = asyncio.run(run_plan([code], [stamp]))
    return list(answer)


MODEL_CODE = System(
    name="agentloop (model code)",
    default_limit="3 workers",
    sync_fanout=_code_sync,
    async_fanout=_code_async,
    noops=_code_noops,
    wakeups=_code_wakeups,
    wake_point="the code line after `wait_for_tasks(ids)`",
)
