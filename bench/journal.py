"""What recording a run in the SQLite journal costs, against the same run unrecorded.

Three figures, each a ratio of paired runs in this process (one agent with a journal in a
temporary directory, one without, alternating which goes first):

- W6 N=200, instant model (issue 17's workload): 200 concurrent runs, each a model call, one
  async 0.1 s tool submitted and waited for from model code, and a second model call. Judged:
  the journaled makespan <= 1.3x the unjournaled one.
- fixed cost, 200 runs in turn with a no-op tool: what the journal adds to one run's own cost
  (claim, a few batched commits, the end), nothing hidden behind a sleep. Informational.
- W3 from model code: 1000 no-op tools submitted from one code step and waited for, timed
  inside the step. Judged: per-task overhead with a journal <= 2x without.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentloop import Limits, create_async_agent
from agentloop.testing import ScriptedModel

from ._measure import Result, Series, Table, fmt, paired, ratios

__all__ = ["journal_cost"]

RUNS = 200
NOOPS = 1000
W6_TARGET, W3_TARGET = 1.3, 2.0


async def nap(seconds: float) -> None:
    """Sleep on the loop, like a tool awaiting I/O."""
    await asyncio.sleep(seconds)


async def noop() -> None:
    """Do nothing: the whole cost is the task's overhead."""


RUN_STEPS = [
    'tid = submit_task("tool", "nap", {{"seconds": {seconds}}})\n'
    "wait_for_tasks([tid])\n"
    "r = get_task_results([tid])",
    'final_answer("done")',
]
NOOP_CODE = f"""
import time
t0 = time.perf_counter()
ids = [submit_task("tool", "noop") for _ in range({NOOPS})]
wait_for_tasks(ids, max_wait_time=600)
get_task_results(ids)
final_answer(time.perf_counter() - t0)
"""


def _pair(journal: Path, make: Callable[[Any], Any]) -> tuple[Any, Any]:
    return make(None), make(journal)


async def _makespans(
    repeats: int, directory: Path, seconds: float, concurrent: bool
) -> tuple[list[float], list[float]]:
    steps = [RUN_STEPS[0].format(seconds=seconds), RUN_STEPS[1]]

    def make(journal: Path | None) -> Any:
        return create_async_agent(
            tools=[nap], model=ScriptedModel(steps), journal=journal, max_concurrent_runs=1000
        )

    plain, journaled = _pair(directory / "w6.sqlite", make)

    def timed(agent: Any) -> Callable[[], Awaitable[float]]:
        async def batch() -> float:
            start = time.perf_counter()
            if concurrent:
                await asyncio.gather(*(agent.arun("go") for _ in range(RUNS)))
            else:
                for _ in range(RUNS):
                    await agent.arun("go")
            return time.perf_counter() - start

        return batch

    async with plain, journaled:
        await timed(plain)()  # warm-up: imports, prompt cache, the journal's schema
        await timed(journaled)()
        return await paired(repeats, timed(plain), timed(journaled))


async def _noops(repeats: int, directory: Path) -> tuple[list[float], list[float]]:
    limits = Limits(max_tasks_per_scope=2 * NOOPS)

    def make(journal: Path | None) -> Any:
        return create_async_agent(
            tools=[noop],
            model=ScriptedModel([NOOP_CODE]),
            journal=journal,
            limits=limits,
            additional_authorized_imports=["time"],
        )

    plain, journaled = _pair(directory / "w3.sqlite", make)

    def timed(agent: Any) -> Callable[[], Awaitable[float]]:
        async def step() -> float:
            return float(await agent.arun("go")) * 1e6 / NOOPS

        return step

    async with plain, journaled:
        await timed(plain)()
        await timed(journaled)()
        return await paired(repeats, timed(plain), timed(journaled))


def journal_cost(repeats: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-journal-") as tmp:
        directory = Path(tmp)
        w6_plain, w6_journal = asyncio.run(_makespans(repeats, directory, 0.1, True))
        seq_plain, seq_journal = asyncio.run(_makespans(repeats, directory, 0.0, False))
        w3_plain, w3_journal = asyncio.run(_noops(repeats, directory))
    w6 = ratios(w6_journal, w6_plain)
    seq = ratios(seq_journal, seq_plain)
    w3 = ratios(w3_journal, w3_plain)
    rows = (
        _row(f"W6 N={RUNS}, instant model (s)", w6_plain, w6_journal, w6, f"<= {W6_TARGET}x"),
        _row(
            f"fixed cost, {RUNS} runs in turn (ms/run)",
            [s * 1e3 / RUNS for s in seq_plain],
            [s * 1e3 / RUNS for s in seq_journal],
            seq,
            "info",
        ),
        _row(f"W3, {NOOPS} no-op tools (us/task)", w3_plain, w3_journal, w3, f"<= {W3_TARGET}x"),
    )
    met = w6.median <= W6_TARGET and w3.median <= W3_TARGET
    return Result(
        name="journal",
        title="12. durable runs: the SQLite journal against no journal (paired, medians)",
        headline=(
            f"W6 N={RUNS} journaled {w6.median:.2f}x, W3 per task {w3.median:.2f}x, "
            f"fixed cost per run {seq.median:.2f}x"
        ),
        target=f"W6 <= {W6_TARGET}x and W3 <= {W3_TARGET}x",
        met=met,
        series=(
            Series("W6 ratio", "x", w6.samples),
            Series("fixed-cost ratio", "x", seq.samples),
            Series("W3 ratio", "x", w3.samples),
        ),
        figures={
            "w6_ratio": w6.median,
            "fixed_cost_ratio": seq.median,
            "w3_ratio": w3.median,
            "fixed_cost_ms_per_run_journaled": statistics.median(seq_journal) * 1e3 / RUNS,
        },
        table=Table(("workload", "no journal", "journal", "ratio", "target"), rows, "lrrrl"),
        notes=(
            "journal: SQLite, WAL, synchronous=NORMAL, in a temporary directory; each run a "
            "new run id",
        ),
    )


def _row(
    label: str, plain: list[float], journal: list[float], ratio: Series, target: str
) -> tuple[str, ...]:
    return (
        label,
        fmt(statistics.median(plain)),
        fmt(statistics.median(journal)),
        f"{ratio.median:.2f}x",
        target,
    )
