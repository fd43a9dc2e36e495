"""W6: many concurrent runs, what a service pays per request (makespan, threads, memory).

Each run: a model call (simulated latency) -> one async tool (sleeps 0.1 s) that the model's
reply starts and waits for -> a second model call -> the answer. So one run's ideal makespan
is `2 * latency + 0.1` s, and N concurrent runs ideally take no longer than one.

- agentloop: `ScriptedModel(delay=latency)`, a model with an async path (where agentloop awaits
  the model on the loop its latency is awaited there; otherwise it sleeps in the controller
  thread, as a blocking smolagents model does); its first step is `submit_task` +
  `wait_for_tasks` + `get_task_results` from model code, its second `final_answer`. The
  `agentloop-sync` system runs the same script on a model with only a blocking `generate`
  (`blocking_model.py`), for the scaling scenario (`scaling.py`).
- pydantic-ai: a `FunctionModel` whose async reply sleeps on the loop, then calls the tool.
- openai-agents: a fake `Model` whose `get_response` sleeps on the loop, then calls the tool.

Every cell is measured in its own subprocess (fresh loop, no threads or freed-but-kept memory
left by another system), the systems in a rotating order. In it: imports and one small warm-up
run, then `repeats` timed batches. Peak threads and RSS come from a sampler thread reading
`/proc/self/status` every 5 ms (itself not counted); RSS growth is the first batch's peak over
the RSS just before it (later batches reuse that memory); CPU time is the process's over each
batch (all its threads, user + system, from `getrusage`: microseconds, where `os.times` counts
10 ms ticks), and the system part of it apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._measure import Result, Series, Table, fmt

__all__ = ["SWEEP", "child", "concurrent_runs", "runs_sweep"]

logger = logging.getLogger("bench")

TOOL_SECONDS = 0.1
SYSTEMS = ("agentloop", "pydantic-ai", "openai-agents")
REQUIRES = {
    "agentloop": "agentloop",
    "agentloop-sync": "agentloop",
    "pydantic-ai": "pydantic_ai",
    "openai-agents": "agents",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """One W6 row: `runs` runs at once (1 = sequential, `runs` times one after the other)."""

    key: str
    label: str
    runs: int
    latency: float
    concurrent: bool = True
    tool_seconds: float = TOOL_SECONDS

    @property
    def ideal(self) -> float:
        one = 2 * self.latency + self.tool_seconds
        return one if self.concurrent else one * self.runs


CASES = (
    Case(key="n100", label="N=100 x 0.5 s model", runs=100, latency=0.5),
    Case(key="n200", label="N=200, instant model", runs=200, latency=0.0),
    Case(key="n1000", label="N=1000 x 1 s model", runs=1000, latency=1.0),
    Case(
        key="fixed",
        label="fixed cost, 200 runs in turn",
        runs=200,
        latency=0.0,
        concurrent=False,
        tool_seconds=0.0,
    ),
)
CASE_BY_KEY = {c.key: c for c in CASES}


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    """What one subprocess measured: makespans and CPU seconds of each batch (all, and the
    part spent in the kernel), peak threads, RSS growth."""

    seconds: list[float]
    threads: int
    rss_mib: float
    cpu_seconds: list[float] = field(default_factory=list)
    sys_seconds: list[float] = field(default_factory=list)
    error: str = ""


# -- the three systems, in the subprocess ------------------------------------------------------


async def nap(seconds: float) -> None:
    """Sleep on the loop, like a tool awaiting I/O.

    Args:
        seconds: how long to sleep.
    """
    await asyncio.sleep(seconds)


STEP_1 = (
    'tid = submit_task("tool", "nap", {{"seconds": {seconds}}})\n'
    "wait_for_tasks([tid])\n"
    "r = get_task_results([tid])"
)
STEP_2 = 'final_answer("done")'


def _agentloop(case: Case, concurrency: int | None) -> Callable[[int], Awaitable[None]]:
    from agentloop.testing import ScriptedModel

    return _agentloop_on(ScriptedModel(_steps(case), delay=case.latency), concurrency)


def _agentloop_sync(case: Case, concurrency: int | None) -> Callable[[int], Awaitable[None]]:
    from .blocking_model import BlockingScriptedModel

    return _agentloop_on(BlockingScriptedModel(_steps(case), latency=case.latency), concurrency)


def _steps(case: Case) -> list[str]:
    return [STEP_1.format(seconds=case.tool_seconds), STEP_2]


def _agentloop_on(model: Any, concurrency: int | None) -> Callable[[int], Awaitable[None]]:
    from agentloop import create_async_agent

    options = {} if concurrency is None else {"max_concurrent_runs": concurrency}
    agent = create_async_agent(tools=[nap], model=model, **options)

    async def run(_: int) -> None:
        if await agent.arun("Run the benchmark.") != "done":
            raise RuntimeError("unexpected answer")

    return run


def _pydantic_ai(case: Case, concurrency: int | None) -> Callable[[int], Awaitable[None]]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if case.latency:
            await asyncio.sleep(case.latency)
        if len(messages) > 1:
            return ModelResponse(parts=[TextPart("done")])
        call = ToolCallPart("nap", {"seconds": case.tool_seconds}, tool_call_id="call_1")
        return ModelResponse(parts=[call])

    agent = Agent(FunctionModel(reply), tools=[nap])

    async def run(_: int) -> None:
        if (await agent.run("Run the benchmark.")).output != "done":
            raise RuntimeError("unexpected answer")

    return run


def _openai_agents(case: Case, concurrency: int | None) -> Callable[[int], Awaitable[None]]:
    from agents import Agent, RunConfig, Runner, function_tool
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    payload = json.dumps({"seconds": case.tool_seconds})

    class FakeModel(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *a: Any, **k: Any
        ) -> Any:
            if case.latency:
                await asyncio.sleep(case.latency)
            answered = isinstance(input, list) and any(
                (item.get("type") if isinstance(item, dict) else None) == "function_call_output"
                for item in input
            )
            output: list[Any]
            if not answered:
                output = [
                    ResponseFunctionToolCall(
                        id="call_1",
                        call_id="call_1",
                        type="function_call",
                        name="nap",
                        arguments=payload,
                    )
                ]
            else:
                text = ResponseOutputText(text="done", type="output_text", annotations=[])
                output = [
                    ResponseOutputMessage(
                        id="answer",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[text],
                    )
                ]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark does not stream")

    agent = Agent(name="bench", model=FakeModel(), tools=[function_tool(nap)])
    config = RunConfig(tracing_disabled=True)

    async def run(_: int) -> None:
        result = await Runner.run(agent, "Run the benchmark.", run_config=config)
        if result.final_output != "done":
            raise RuntimeError(f"unexpected answer {result.final_output!r}")

    return run


MAKERS = {
    "agentloop": _agentloop,
    "agentloop-sync": _agentloop_sync,
    "pydantic-ai": _pydantic_ai,
    "openai-agents": _openai_agents,
}


class Sampler:
    """Peak OS threads (this one excluded) and peak RSS, read from /proc every 5 ms."""

    def __init__(self) -> None:
        self.threads = 0
        self.rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.base_rss = _status()[1]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            threads, rss = _status()
            self.threads = max(self.threads, threads - 1)
            self.rss = max(self.rss, rss)
            if self._stop.wait(0.005):
                return


def _status() -> tuple[int, int]:
    """(OS threads, RSS bytes) of this process."""
    threads = rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return threads, rss


async def _batch(run: Callable[[int], Awaitable[None]], case: Case) -> float:
    start = time.perf_counter()
    if case.concurrent:
        await asyncio.gather(*[run(i) for i in range(case.runs)])
    else:
        for i in range(case.runs):
            await run(i)
    return time.perf_counter() - start


async def _measure_cell(system: str, case: Case, concurrency: int | None, repeats: int) -> Cell:
    run = MAKERS[system](case, concurrency)
    warm = Case(key="warm", label="", runs=4, latency=0.0, tool_seconds=0.0)
    await _batch(MAKERS[system](warm, concurrency), warm)
    await _batch(run, Case(key="warm", label="", runs=2, latency=0.0, tool_seconds=0.0))
    seconds = []
    cpu: list[float] = []
    kernel: list[float] = []
    threads = 0
    rss = 0
    for i in range(repeats):
        with Sampler() as sampler:
            before = resource.getrusage(resource.RUSAGE_SELF)
            seconds.append(await _batch(run, case))
            after = resource.getrusage(resource.RUSAGE_SELF)
            kernel.append(after.ru_stime - before.ru_stime)
            cpu.append(kernel[-1] + after.ru_utime - before.ru_utime)
        threads = max(threads, sampler.threads)
        if i == 0:
            rss = sampler.rss - sampler.base_rss
    return Cell(
        seconds=seconds,
        threads=threads,
        rss_mib=rss / 2**20,
        cpu_seconds=cpu,
        sys_seconds=kernel,
    )


def child(argv: list[str]) -> int:
    """The subprocess: measure one cell, print it as JSON on the last line of stdout.

    The case comes as JSON (its fields), so a scenario can measure cases of its own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=list(MAKERS))
    parser.add_argument("case", type=json.loads, help="the Case's fields, as JSON")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    case = Case(**args.case)
    cell = asyncio.run(_measure_cell(args.system, case, args.concurrency, args.repeats))
    print(json.dumps(asdict(cell)))
    return 0


# -- the parent: one subprocess per cell -------------------------------------------------------


def _installed(system: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(REQUIRES[system]) is not None


def measure(
    system: str,
    case: Case,
    repeats: int,
    concurrency: int | None = None,
    *,
    bound: float = 1200.0,
) -> Cell:
    """One cell, in a fresh interpreter (a failure is a cell with `error`).

    `bound` is the whole subprocess's time limit, start-up and warm-up included: past it the
    subprocess is killed and the cell says "not finished after `bound` s"."""
    command = [sys.executable, "-m", "bench.peers.runs_child", system, json.dumps(asdict(case))]
    command += ["--repeats", str(repeats)]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=bound, check=False
        )
    except subprocess.TimeoutExpired:
        logger.warning("cell %s %s: not finished after %.0f s", system, case.key, bound)
        return Cell(seconds=[], threads=0, rss_mib=0.0, error=f"not finished after {bound:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        logger.warning("cell %s %s failed: %s", system, case.key, done.stderr[-2000:])
        return Cell(seconds=[], threads=0, rss_mib=0.0, error=f"error: {tail}"[:80])
    return Cell(**json.loads(lines[-1]))


def _cells(cell: Cell, case: Case) -> tuple[str, ...]:
    if cell.error:
        return (cell.error, "", "", "")
    median = statistics.median(cell.seconds)
    if case.concurrent:
        figure = f"{fmt(median)} ({fmt(min(cell.seconds))})"
        ratio = f"{median / case.ideal:.2f}x"
    else:
        figure = f"{fmt(median * 1e3 / case.runs)} ms/run"
        ratio = f"{fmt(min(cell.seconds) * 1e3 / case.runs)} ms min"
    return figure, ratio, str(cell.threads), f"{cell.rss_mib:.1f}"


def _median(cell: Cell | None) -> float | None:
    return statistics.median(cell.seconds) if cell is not None and cell.seconds else None


N100_TARGET, N200_TARGET = 1.3, 0.5


def _variants(case: Case) -> list[tuple[str, str, int | None]]:
    """`(key, label, max_concurrent_runs)` of the rows a case gets: agentloop at its defaults
    (except at N=1000, where they queue the runs in waves of 32 for a minute: see the sweep)
    and with the limit raised to N, then the peers."""
    rows: list[tuple[str, str, int | None]] = []
    if case.key != "n1000":
        rows.append(("agentloop", "agentloop, defaults", None))
    if case.concurrent:
        rows.append((f"agentloop@{case.runs}", f"agentloop, limit {case.runs}", case.runs))
    return rows + [(s, s, None) for s in SYSTEMS[1:]]


def _system(variant: str) -> str:
    return variant.split("@")[0]


def concurrent_runs(repeats: int) -> Result:
    """W6: the four rows, agentloop at its defaults and with `max_concurrent_runs` raised to
    N (as a service would set it), and the two peers."""
    repeats = min(repeats, 3)
    found: dict[tuple[str, str], Cell] = {}
    for i, case in enumerate(CASES):
        variants = [v for v in _variants(case) if _installed(_system(v[0]))]
        start = i % len(variants)
        for variant, _, limit in variants[start:] + variants[:start]:
            found[variant, case.key] = measure(_system(variant), case, repeats, limit)
    rows: list[tuple[str, ...]] = []
    for case in CASES:
        ideal = f"{fmt(case.ideal)} s" if case.concurrent else ""
        for variant, label, _ in _variants(case):
            cell = found.get((variant, case.key))
            cells = _cells(cell, case) if cell else ("not installed", "", "", "")
            rows.append((case.label, ideal, label, *cells))

    def median(variant: str, key: str) -> float | None:
        return _median(found.get((variant, key)))

    checks: list[tuple[str, bool]] = []
    n100, n200, n1000, fixed = (
        median("agentloop", "n100"),
        median("agentloop", "n200"),
        median("agentloop@1000", "n1000"),
        median("agentloop", "fixed"),
    )
    pyd200, pyd1000 = median("pydantic-ai", "n200"), median("pydantic-ai", "n1000")
    if n100 is not None:
        ratio = n100 / CASE_BY_KEY["n100"].ideal
        checks.append((f"N=100 {ratio:.2f}x ideal (<= {N100_TARGET}x)", ratio <= N100_TARGET))
    if n200 is not None and pyd200:
        ratio = n200 / pyd200
        checks.append((f"N=200 {ratio:.2f}x pydantic-ai (<= {N200_TARGET}x)", ratio <= N200_TARGET))
    if n1000 is not None and pyd1000:
        ratio = n1000 / pyd1000
        mem = found["agentloop@1000", "n1000"].rss_mib <= found["pydantic-ai", "n1000"].rss_mib
        checks.append(
            (f"N=1000 {ratio:.2f}x pydantic-ai, RSS {'<=' if mem else '>'}", ratio <= 1 and mem)
        )
    if fixed is not None:
        checks.append((f"fixed cost {fixed * 1e3 / CASE_BY_KEY['fixed'].runs:.2f} ms/run", True))
    series = [Series("floor", "s", (CASE_BY_KEY["n100"].ideal,))]  # the chart wants one
    for (system, key), cell in found.items():
        if cell.seconds:
            series.append(Series(f"{system}|{key}", "s", tuple(cell.seconds)))
            if CASE_BY_KEY[key].concurrent:
                ideal = CASE_BY_KEY[key].ideal
                ratios = tuple(s / ideal for s in cell.seconds)
                series.append(Series(f"{system}|{key}", "x ideal", ratios))
    return Result(
        name="w6",
        title="W6. concurrent runs: model call -> one async 0.1 s tool, waited -> model call",
        headline="agentloop: " + "; ".join(text for text, _ in checks),
        target=f"defaults: N=100 <= {N100_TARGET}x ideal, N=200 <= {N200_TARGET}x pydantic-ai; "
        "limit 1000: N=1000 <= pydantic-ai (time and RSS)",
        met=len(checks) == 4 and all(ok for _, ok in checks),
        series=tuple(series),
        figures={
            f"{system}|{key} {what}": value
            for (system, key), cell in found.items()
            for what, value in (("threads", float(cell.threads)), ("rss MiB", cell.rss_mib))
        },
        table=Table(
            ("workload", "ideal", "system", "makespan s", "x ideal", "peak threads", "RSS +MiB"),
            tuple(rows),
            "lrlrrrr",
        ),
        notes=(
            "cells: median (min) over the batches, each cell in its own subprocess; the fixed-"
            "cost row gives ms per run (median, then min); threads exclude the sampler; "
            "limit N: max_concurrent_runs=N",
        ),
    )


SWEEP = (32, 100, 250, 1000)
"""`max_concurrent_runs` values the sweep measures agentloop at (32 is the default)."""


def runs_sweep(repeats: int) -> Result:
    """W6 sweep: agentloop's N=1000 x 1 s row at several `max_concurrent_runs` (slow: the
    default queues the runs in waves of 32)."""
    case = CASE_BY_KEY["n1000"]
    rows = []
    series = []
    for concurrency in SWEEP:
        cell = measure("agentloop", case, 1, concurrency)
        rows.append((f"max_concurrent_runs={concurrency}", *_cells(cell, case)))
        if cell.seconds:
            series.append(Series(f"agentloop|{concurrency}", "s", tuple(cell.seconds)))
    return Result(
        name="w6-sweep",
        title="W6 sweep: agentloop, N=1000 x 1 s model, by max_concurrent_runs",
        headline=f"ideal {fmt(case.ideal)} s",
        target=None,
        met=True,
        series=tuple(series),
        table=Table(
            ("setting", "makespan s", "x ideal", "peak threads", "RSS +MiB"), tuple(rows), "lrrrr"
        ),
    )
