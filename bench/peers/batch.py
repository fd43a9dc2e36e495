"""W5: the demo's batch scenario end to end, 10 files x (clean -> analyse -> chart).

Every system gets fresh copies of the demo's tools (uneven durations: each stage has one slow
file; `analyze_data` is sync; the first chart of `sales_09` fails once, as a flaky service
would) and a scripted model that takes 0.5 s per call. The floor runs the same tools as a bare
asyncio pipeline, with no model at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

from agentloop.demo.scenarios import BATCH_PIPELINED, BATCH_STAGED
from agentloop.demo.scenarios import FILES as PATHS
from agentloop.demo.scenarios import _batch_tools as batch_tools

from ._common import BatchRun

__all__ = ["FAILING", "FILES", "MODEL_DELAY", "RUNS", "floor"]

MODEL_DELAY = 0.5
FAILING = "data/sales_09.csv"
"""The file whose first chart fails (the demo's flaky chart service)."""
WORKERS = 10
FILES = len(PATHS)


def _tools() -> list[Callable[..., Any]]:
    """Fresh tools: their transient failure happens once per set."""
    return list(batch_tools()[0])


def floor() -> BatchRun:
    """Each file's three steps chained with plain awaits, all files at once, 10 threads for
    the sync step, the failed chart retried at once."""
    clean, analyse, chart = _tools()

    async def one(path: str, pool: ThreadPoolExecutor) -> str:
        cleaned = await clean(path=path)
        loop = asyncio.get_running_loop()
        stats = await loop.run_in_executor(pool, lambda: analyse(data=cleaned))
        try:
            return str(await chart(stats=stats))
        except ConnectionError:
            return str(await chart(stats=stats))

    async def run() -> BatchRun:
        with ThreadPoolExecutor(WORKERS) as pool:
            start = perf_counter()
            charts = await asyncio.gather(*[one(path, pool) for path in PATHS])
            return BatchRun(seconds=perf_counter() - start, model_calls=0, charts=len(charts))

    return asyncio.run(run())


def _agentloop(plan_name: str) -> BatchRun:
    from .sys_agentloop import run_plan

    plan = {"staged": BATCH_STAGED, "pipelined": BATCH_PIPELINED}[plan_name]
    start = perf_counter()
    answer, calls = asyncio.run(run_plan(plan, _tools(), workers=WORKERS, delay=MODEL_DELAY))
    seconds = perf_counter() - start
    charts = sum(p.replace("data/", "charts/").replace(".csv", ".png") in answer for p in PATHS)
    return BatchRun(seconds=seconds, model_calls=calls, charts=charts)


def _smolagents(kind: str) -> BatchRun:
    from .sys_smolagents import batch_code_agent, batch_tool_calling

    run = {"code": batch_code_agent, "tool_calling": batch_tool_calling}[kind]
    return run(_tools(), list(PATHS), FAILING, MODEL_DELAY)


RUNS: dict[str, tuple[str, str, Callable[[], BatchRun]]] = {
    "smolagents CodeAgent": (
        "smolagents",
        "sequential: 30 calls, one per line",
        lambda: _smolagents("code"),
    ),
    "smolagents ToolCallingAgent": (
        "smolagents",
        "3 steps x 10 parallel calls (10 threads)",
        lambda: _smolagents("tool_calling"),
    ),
    "agentloop stage-by-stage": (
        "",
        "3 waves: submit 10, wait, collect",
        lambda: _agentloop("staged"),
    ),
    "agentloop pipelined": (
        "",
        "30 tasks chained per file, one wait",
        lambda: _agentloop("pipelined"),
    ),
}
"""name -> (required module or "", plan, run)."""
