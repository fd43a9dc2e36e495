"""MCP tool calls through agentloop, side by side with the bare SDK and with smolagents' client.

1. Per call, against a bare `mcp` `ClientSession` (the SDK's stdio transport) on its own copy
   of the same server: calls one after another (200 per repeat, the sides alternating call by
   call; medians), then 100 at once (paired batches). agentloop's call is a
   task (validated, slotted, traced when tracing is on, counted), on agentloop's own bounded
   stdio transport. Target: <= 1.15x.
2. 100 calls of a 20 ms tool from a `CodeAgent`'s code: agentloop's run submits them and waits
   (they run together, bounded by the server's `max_concurrent`); smolagents' `MCPClient` (its
   session in a thread with a loop of its own, the tools sync) calls them one after another,
   as model code must (it cannot start threads). Target: agentloop's makespan lower. The
   smolagents side runs in a child process in its own virtualenv (`mcp` 1.x: mcpadapt 0.1.19
   imports a 1.x name that 2.x removed), named by `AGENTLOOP_BENCH_SMOLAGENTS_MCP_PYTHON`
   (`nox -s bench` makes it); without it, that side is reported as not measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from time import perf_counter

from ._measure import Result, Series, Table, fmt, paired, ratios

__all__ = ["mcp_calls", "mcp_from_model"]

SERVER = Path(__file__).with_name("mcp_server.py")
CHILD = Path(__file__).with_name("mcp_smolagents_child.py")
SEQUENTIAL = 200
"""Calls in a row per repeat, each side's alternating call by call (the round trip is ~2-3 ms
of the two processes' work here, so a neighbour's burst moves a batch's time by 15%)."""
CONCURRENT = 100
PAUSE_MS = 20
OVERHEAD_TARGET = 1.15
SMOLAGENTS_PYTHON = "AGENTLOOP_BENCH_SMOLAGENTS_MCP_PYTHON"


async def _calls(repeats: int) -> tuple[list[float], list[float], list[float], list[float]]:
    from mcp.client.stdio import stdio_client

    from agentloop import TaskRegistry
    from agentloop.mcp import MCPServer
    from mcp import ClientSession, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)])
    ours = MCPServer.stdio(sys.executable, [str(SERVER)], name="bench", max_concurrent=CONCURRENT)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as raw,
        TaskRegistry(mcp_servers=[ours]) as registry,
    ):
        await raw.initialize()

        async def one_by_one(calls: int) -> tuple[list[float], list[float]]:
            """Per-call times, the two sides alternating call by call: a neighbour's burst
            hits both, and the medians ignore it."""
            raw_times: list[float] = []
            our_times: list[float] = []
            for i in range(calls):
                start = perf_counter()
                await raw.call_tool("add", {"a": i, "b": 1})
                middle = perf_counter()
                task = await registry.submit("tool", "add", {"a": i, "b": 1})
                await registry.wait(task)
                raw_times.append(middle - start)
                our_times.append(perf_counter() - middle)
            return raw_times, our_times

        async def raw_at_once() -> float:
            start = perf_counter()
            await asyncio.gather(
                *(raw.call_tool("add", {"a": i, "b": 1}) for i in range(CONCURRENT))
            )
            return perf_counter() - start

        async def ours_at_once() -> float:
            start = perf_counter()
            ids = [
                await registry.submit("tool", "add", {"a": i, "b": 1}) for i in range(CONCURRENT)
            ]
            await registry.wait(ids)
            return perf_counter() - start

        await one_by_one(20)  # warm up both sessions (validators, caches)
        raw_seq, ours_seq = await one_by_one(SEQUENTIAL * repeats)
        raw_con, ours_con = await paired(2 * repeats, raw_at_once, ours_at_once)
    return raw_seq, ours_seq, raw_con, ours_con


def mcp_calls(repeats: int) -> Result:
    raw_seq, ours_seq, raw_con, ours_con = asyncio.run(_calls(repeats))
    raw_call = Series("bare ClientSession, in a row", "us/call", tuple(t * 1e6 for t in raw_seq))
    our_call = Series("agentloop, in a row", "us/call", tuple(t * 1e6 for t in ours_seq))
    per_call = our_call.median / raw_call.median
    at_once = ratios(ours_con, raw_con)
    worst = max(per_call, at_once.median)
    rows = (
        (
            f"{len(raw_seq)} calls in a row (median)",
            f"{fmt(raw_call.median)} us/call",
            f"{fmt(our_call.median)} us/call",
            f"{per_call:.2f}x",
        ),
        (
            f"{CONCURRENT} calls at once (min)",
            f"{fmt(min(raw_con) * 1e3)} ms",
            f"{fmt(min(ours_con) * 1e3)} ms",
            f"{at_once.median:.2f}x",
        ),
    )
    return Result(
        name="mcp",
        title="14. an MCP tool call through agentloop vs a bare `mcp` ClientSession (stdio)",
        headline=f"{per_call:.2f}x per call in a row, {at_once.median:.2f}x at once",
        target=f"<= {OVERHEAD_TARGET:g}x",
        met=worst <= OVERHEAD_TARGET,
        series=(
            raw_call,
            our_call,
            Series("bare ClientSession, at once", "ms", tuple(t * 1e3 for t in raw_con)),
            Series("agentloop, at once", "ms", tuple(t * 1e3 for t in ours_con)),
            at_once,
        ),
        figures={"ratio_sequential": per_call, "ratio_concurrent": at_once.median},
        table=Table(
            ("calls", "bare ClientSession", "agentloop", "ratio (median)"),
            rows,
            "lrrr",
        ),
        notes=(
            "each side has its own copy of the server (bench/mcp_server.py, the SDK's MCPServer)",
            "agentloop's calls are tasks of a TaskRegistry: submit + wait, per call",
        ),
    )


FROM_MODEL_CODE = f"""
ids = [submit_task("tool", "pause", {{"ms": {PAUSE_MS}}}) for _ in range({CONCURRENT})]
wait_for_tasks(ids, max_wait_time=120)
final_answer(len(get_task_results(ids)))
"""


async def _agentloop_from_model(repeats: int) -> list[float]:
    from agentloop import create_async_agent
    from agentloop.mcp import MCPServer
    from agentloop.testing import ScriptedModel

    server = MCPServer.stdio(sys.executable, [str(SERVER)], name="bench", max_concurrent=CONCURRENT)
    agent = create_async_agent(model=ScriptedModel([FROM_MODEL_CODE]), mcp_servers=[server])
    makespans = []
    async with agent:
        await agent.arun("warm up")
        for _ in range(repeats):
            start = perf_counter()
            assert await agent.arun("go") == CONCURRENT
            makespans.append(perf_counter() - start)
    await agent.aclose()
    return makespans


def _smolagents_from_model(repeats: int) -> tuple[list[float] | None, str]:
    python = os.environ.get(SMOLAGENTS_PYTHON)
    if not python:
        return None, (
            f"smolagents' MCPClient not measured: set {SMOLAGENTS_PYTHON} to a Python with "
            "smolagents[mcp] and mcp<2 (`nox -s bench` does); mcpadapt 0.1.19 cannot import "
            "with mcp 2.x"
        )
    done = subprocess.run(
        [python, str(CHILD), sys.executable, str(SERVER), str(CONCURRENT), str(PAUSE_MS),
         str(repeats)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None, f"smolagents' MCPClient failed: {done.stderr.strip()[-300:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return list(json.loads(lines[-1])["makespans"]), "smolagents side: mcp 1.x, its own venv"


def mcp_from_model(repeats: int) -> Result:
    ours = asyncio.run(_agentloop_from_model(repeats))
    theirs, note = _smolagents_from_model(repeats)
    series = [Series("agentloop (submit_task + wait)", "s", tuple(ours))]
    rows = [("agentloop: submit_task x100, wait_for_tasks", f"{min(ours):.3f} s", "-")]
    if theirs is None:
        headline = f"agentloop {min(ours):.3f} s; smolagents' MCPClient not measured"
        met = True
        target = None
    else:
        series.append(Series("smolagents MCPClient (calls in a row)", "s", tuple(theirs)))
        speedup = min(theirs) / min(ours)
        rows.append(
            ("smolagents MCPClient: 100 calls in code", f"{min(theirs):.3f} s", f"{speedup:.1f}x")
        )
        headline = f"agentloop {min(ours):.3f} s vs smolagents {min(theirs):.3f} s"
        met = min(ours) < min(theirs)
        target = "agentloop's makespan lower"
    return Result(
        name="mcp_from_model",
        title=f"15. {CONCURRENT} calls of a {PAUSE_MS} ms MCP tool from a CodeAgent's code",
        headline=headline,
        target=target,
        met=met,
        series=tuple(series),
        figures={"agentloop_s": min(ours), **({"smolagents_s": min(theirs)} if theirs else {})},
        table=Table(("system", "makespan (min)", "agentloop faster by"), tuple(rows), "lrr"),
        notes=(note,),
    )
