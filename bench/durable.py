"""Durable runs side by side: agentloop's journal, LangGraph's SQLite checkpointer, and
pydantic-ai on DBOS, each against the same agent without durability.

Workload (`bench/durable_systems.py`): model -> three parallel async tool calls -> model.
Two figures, each system measured in its own child process (DBOS's state is process-global;
a fresh interpreter also leaves no threads or memory from the system before), the systems in a
rotating order. In the child, the plain and the durable agent are built once, warmed up, then
timed in pairs, alternating which goes first (`_measure.paired`); every durable run is a new
run (a new run id, thread id or workflow id) in one SQLite file in a temporary directory.

1. Fixed cost per durable run: `IN_TURN` runs one at a time, instant model, tools that only
   yield. Added cost = (durable - plain) per run, per pair. Judged: agentloop's added cost
   <= 0.5x LangGraph's. DBOS's is printed.
2. Concurrent durable runs: `CONCURRENT` runs at once, each model call `MODEL_SECONDS`, each
   tool `TOOL_SECONDS`. Ideal = the critical path of one run, 2 x model + tool. Judged:
   agentloop's durable makespan <= 1.3x ideal. Every system's ratio is printed.

Two info rows, never judged: agentloop with `synchronous="FULL"` and LangGraph with
`durability="sync"`, each side at the other's sync setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ._measure import Result, Series, Table, fmt, paired

__all__ = ["child", "durable_runs"]

logger = logging.getLogger("bench")

IN_TURN = 100
CONCURRENT = 100
TOOL_SECONDS = 0.05
MODEL_SECONDS = 0.5
FIXED_TARGET, IDEAL_TARGET = 0.5, 1.3
SYSTEMS = ("agentloop", "agentloop-full", "langgraph", "langgraph-sync", "pydantic-ai+dbos")
LABELS = {
    "agentloop": "agentloop, journal",
    "agentloop-full": "agentloop, journal FULL",
    "langgraph": "LangGraph, SqliteSaver",
    "langgraph-sync": "LangGraph, sync",
    "pydantic-ai+dbos": "pydantic-ai, DBOS",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """One figure's workload: `runs` runs, at once or in turn."""

    key: str
    runs: int
    concurrent: bool
    tool_seconds: float
    model_seconds: float

    @property
    def ideal(self) -> float:
        """One run's critical path: two model calls and one round of parallel tools."""
        return 2 * self.model_seconds + self.tool_seconds


CASES = (
    Case(key="fixed", runs=IN_TURN, concurrent=False, tool_seconds=0.0, model_seconds=0.0),
    Case(
        key="concurrent",
        runs=CONCURRENT,
        concurrent=True,
        tool_seconds=TOOL_SECONDS,
        model_seconds=MODEL_SECONDS,
    ),
)
CASE_BY_KEY = {c.key: c for c in CASES}


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    """What one child measured: seconds per batch, plain and durable, paired by index."""

    plain: list[float]
    durable: list[float]
    error: str = ""


# -- the child ---------------------------------------------------------------------------------


async def _measure_cell(system: str, case: Case, repeats: int) -> Cell:
    from .durable_systems import MAKERS, Run, Workload

    work = Workload(tool_seconds=case.tool_seconds, model_seconds=case.model_seconds)

    def batch(run: Run, runs: int) -> Callable[[], Awaitable[float]]:
        async def timed() -> float:
            start = time.perf_counter()
            if case.concurrent:
                await asyncio.gather(*(run() for _ in range(runs)))
            else:
                for _ in range(runs):
                    await run()
            return time.perf_counter() - start

        return timed

    with tempfile.TemporaryDirectory(prefix="agentloop-bench-durable-") as tmp:
        async with MAKERS[system](work, Path(tmp)) as (plain, durable):
            for run in (plain, durable):  # imports, schemas, caches
                await batch(run, 4)()
            floors, subjects = await paired(
                repeats, batch(plain, case.runs), batch(durable, case.runs)
            )
    return Cell(plain=floors, durable=subjects)


def child(argv: list[str]) -> int:
    """The subprocess: measure one cell, print it as JSON on the last line of stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.durable_child")
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("case", choices=list(CASE_BY_KEY))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cell = asyncio.run(_measure_cell(args.system, CASE_BY_KEY[args.case], args.repeats))
    print(json.dumps(asdict(cell)))
    return 0


# -- the parent --------------------------------------------------------------------------------


def _installed(system: str) -> bool:
    import importlib.util

    from .durable_systems import REQUIRES

    try:
        return all(importlib.util.find_spec(m) is not None for m in REQUIRES[system])
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _measure(system: str, case: Case, repeats: int) -> Cell:
    command = [sys.executable, "-m", "bench.durable_child", system, case.key]
    command += ["--repeats", str(repeats)]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=1200, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        logger.warning("durable %s %s failed: %s", system, case.key, done.stderr[-2000:])
        return Cell(plain=[], durable=[], error=f"error: {tail}"[:80])
    return Cell(**json.loads(lines[-1]))


def _signed(ms: float) -> str:
    """`+3.56 ms`, or `-0.2 ms` when noise makes the durable side the faster one."""
    return f"{'+' if ms >= 0 else ''}{fmt(ms)} ms"


def _added_ms(cell: Cell, runs: int) -> list[float]:
    """Per pair: (durable - plain) milliseconds per run."""
    return [(d - p) * 1e3 / runs for p, d in zip(cell.plain, cell.durable, strict=True)]


def _row(system: str, case: Case, cell: Cell | None) -> tuple[str, ...]:
    label = LABELS[system]
    if cell is None:
        return (label, "not installed", "", "", "")
    if cell.error:
        return (label, cell.error, "", "", "")
    plain, durable = statistics.median(cell.plain), statistics.median(cell.durable)
    if not case.concurrent:
        added = statistics.median(_added_ms(cell, case.runs))
        per_run = 1e3 / case.runs
        return (
            label,
            f"{fmt(plain * per_run)} ms",
            f"{fmt(durable * per_run)} ms",
            _signed(added),
            f"{durable / plain:.2f}x",
        )
    return (
        label,
        f"{fmt(plain)} s ({plain / case.ideal:.2f}x)",
        f"{fmt(durable)} s",
        f"{durable / case.ideal:.2f}x ideal",
        f"{durable / plain:.2f}x",
    )


def durable_runs(repeats: int) -> Result:
    """Both figures for every installed system; see the module docstring."""
    found: dict[tuple[str, str], Cell] = {}
    systems = [s for s in SYSTEMS if _installed(s)]
    for i, case in enumerate(CASES):
        start = i % len(systems)
        for system in systems[start:] + systems[:start]:
            found[system, case.key] = _measure(system, case, repeats)
    fixed, concurrent = CASES
    rows = [(f"{fixed.runs} in turn", *_row(s, fixed, found.get((s, fixed.key)))) for s in SYSTEMS]
    rows += [
        (
            f"{concurrent.runs} at once",
            *_row(s, concurrent, found.get((s, concurrent.key))),
        )
        for s in SYSTEMS
    ]
    checks, figures, series = _judge(found)
    return Result(
        name="durable",
        title=(
            "13. durable runs side by side: model -> 3 parallel async tools -> model "
            "(each system against itself without durability)"
        ),
        headline="; ".join(text for text, _ in checks) or "no agentloop figure",
        target=(
            f"added cost per run <= {FIXED_TARGET}x LangGraph's; "
            f"{concurrent.runs} at once <= {IDEAL_TARGET}x ideal"
        ),
        met=len(checks) == 2 and all(ok for _, ok in checks),
        series=tuple(series),
        figures=figures,
        table=Table(
            ("workload", "system", "plain", "durable", "added / x ideal", "durable / plain"),
            tuple(rows),
            "llrrrr",
        ),
        notes=(
            "medians over paired repeats, each system in its own process; durable stores: "
            "SQLite files in a temporary directory; in turn: instant model, tools that only "
            f"yield; at once: {MODEL_SECONDS} s per model call, {TOOL_SECONDS} s per tool, "
            f"ideal {fmt(concurrent.ideal)} s; info rows: agentloop with synchronous='FULL', "
            "LangGraph with durability='sync'",
        ),
    )


def _judge(
    found: dict[tuple[str, str], Cell],
) -> tuple[list[tuple[str, bool]], dict[str, float], list[Series]]:
    concurrent = CASE_BY_KEY["concurrent"]
    added: dict[str, float] = {}
    figures: dict[str, float] = {}
    series: list[Series] = []
    for (system, key), cell in found.items():
        if cell.error:
            continue
        case = CASE_BY_KEY[key]
        if case.concurrent:
            ratios = tuple(d / case.ideal for d in cell.durable)
            series.append(Series(f"{system} durable, {key}", "x ideal", ratios))
            figures[f"{system}|{key}|x_ideal"] = statistics.median(ratios)
        else:
            samples = tuple(_added_ms(cell, case.runs))
            series.append(Series(f"{system} added per run", "ms", samples))
            added[system] = figures[f"{system}|{key}|added_ms"] = statistics.median(samples)
    checks: list[tuple[str, bool]] = []
    if "agentloop" in added and added.get("langgraph"):
        ratio = added["agentloop"] / added["langgraph"]
        checks.append(
            (
                f"added per run {_signed(added['agentloop'])} = {ratio:.2f}x LangGraph's "
                f"{_signed(added['langgraph'])} (<= {FIXED_TARGET}x)",
                ratio <= FIXED_TARGET,
            )
        )
    elif "agentloop" in added:
        checks.append((f"added per run {_signed(added['agentloop'])}, no LangGraph figure", False))
    key = f"agentloop|{concurrent.key}|x_ideal"
    if key in figures:
        ratio = figures[key]
        checks.append(
            (
                f"{concurrent.runs} at once {ratio:.2f}x ideal (<= {IDEAL_TARGET}x)",
                ratio <= IDEAL_TARGET,
            )
        )
    return checks, figures, series
