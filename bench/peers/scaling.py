"""Many runs (scaling): what one run costs as the number of concurrent runs grows.

The workload is W6's run (`runs.py`): a model call of latency L = 1 s, one async tool of 0.1 s
that the reply starts and waits for, a second model call, the answer. N runs start at once, for
N = 100, 1,000, 3,000 and 10,000 (`--quick`: 100 and 1,000); ideally they all finish in one
run's time, 2L + 0.1 = 2.1 s, whatever N. The systems:

- agentloop with an async-capable model: `ScriptedModel(delay=L)`, whose latency agentloop
  awaits on the loop where it awaits async models;
- agentloop with a sync-only model: `BlockingScriptedModel` (`blocking_model.py`), whose
  `generate` blocks a thread for L, as LiteLLM's sync `generate` does;
- pydantic-ai, a `FunctionModel` awaiting its latency; openai-agents, a fake `Model` doing the
  same (both as in W6).

agentloop runs with `max_concurrent_runs=N`, so no run queues for admission. Each (system, N)
cell is W6's cell (`runs.measure`): a fresh subprocess, imports and a small warm-up, then one
timed batch of N runs (one, not several: the big cells take minutes of the machine's two
cores), with a sampler thread reading `/proc/self/status` every 5 ms. Per cell: the makespan
and its ratio to the ideal; peak OS threads (the sampler excluded); RSS growth over the batch
(MiB, and KiB per run); CPU seconds per run (the process's CPU time over the batch, every
thread, user + system from `getrusage`, divided by N; the sampler's own share is well under
1%). Then the ratio lines the targets are phrased in: each system's makespan over
pydantic-ai's at the same N; its CPU per run at N over its CPU per run at N=100 (flatness; the
target: at most 1.5x at 10,000 for agentloop with the async model); its RSS growth over
pydantic-ai's.

Every cell has a time bound (`bound_for`, the subprocess's start-up included): a cell past it is
killed and reads "not finished after X s", and that system is not run at larger N (the row
says so), so the benchmark always ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._measure import Result, Series, Table, fmt
from .runs import REQUIRES, Case, Cell, measure

__all__ = ["QUICK_SIZES", "SIZES", "bound_for", "scaling"]

SIZES = (100, 1000, 3000, 10_000)
QUICK_SIZES = (100, 1000)
LATENCY = 1.0
FLAT_TARGET = 1.5
"""CPU per run at the largest N over CPU per run at N=100, for agentloop with the async model."""
BOUND_BASE_S = 60.0
BOUND_PER_RUN_S = 0.02


def bound_for(runs: int) -> float:
    """Seconds a cell of `runs` runs may take, start-up included: a minute, plus 20 ms a run
    (10,000 runs: 260 s; pydantic-ai's run costs a few ms of CPU, so this is several times
    what a system that scales needs)."""
    return BOUND_BASE_S + BOUND_PER_RUN_S * runs


@dataclass(frozen=True, slots=True)
class Variant:
    """One row per N: a system of `runs.MAKERS`, and whether it is told to admit N runs."""

    system: str
    label: str
    admits_all: bool = False


VARIANTS = (
    Variant("agentloop", "agentloop, async model", admits_all=True),
    Variant("agentloop-sync", "agentloop, sync-only model", admits_all=True),
    Variant("pydantic-ai", "pydantic-ai"),
    Variant("openai-agents", "openai-agents"),
)
BASELINE = "pydantic-ai"
SUBJECT = "agentloop"
"""The variant the target is judged on."""


def _case(runs: int) -> Case:
    return Case(key=f"scale{runs}", label=f"N={runs}", runs=runs, latency=LATENCY)


def _installed(system: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(REQUIRES[system]) is not None


@dataclass(frozen=True, slots=True)
class _Figures:
    """One finished cell, per run."""

    makespan: float
    threads: int
    rss_mib: float
    cpu_per_run: float
    runs: int

    @classmethod
    def of(cls, cell: Cell, runs: int) -> _Figures:
        return cls(cell.seconds[0], cell.threads, cell.rss_mib, cell.cpu_seconds[0] / runs, runs)

    @property
    def kib_per_run(self) -> float:
        return self.rss_mib * 1024 / self.runs


def _measure_all(
    sizes: Sequence[int], bound: float | None
) -> tuple[dict[tuple[str, int], Cell], dict[str, str]]:
    """Every cell, the systems in a rotating order; `why_not[system]` once a system is
    dropped (not installed, or a cell that did not finish)."""
    cells: dict[tuple[str, int], Cell] = {}
    why_not = {v.system: "not installed" for v in VARIANTS if not _installed(v.system)}
    for i, runs in enumerate(sizes):
        order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
        for variant in order:
            if variant.system in why_not:
                continue
            limit = runs if variant.admits_all else None
            seconds = bound if bound is not None else bound_for(runs)
            cell = measure(variant.system, _case(runs), 1, limit, bound=seconds)
            cells[variant.system, runs] = cell
            if cell.error:
                why_not[variant.system] = f"dropped: {cell.error} at N={runs}"
    return cells, why_not


def _ratios(values: dict[int, float], over: dict[int, float]) -> str:
    parts = [f"N={n:,} {v / over[n]:.2f}x" for n, v in values.items() if over.get(n)]
    return ", ".join(parts) or "-"


def scaling(
    repeats: int, *, sizes: Sequence[int] | None = None, bound: float | None = None
) -> Result:
    """The scaling scenario: `sizes` (default: all of `SIZES`, or `QUICK_SIZES` with `--quick`,
    i.e. fewer than 5 repeats); `bound` replaces every cell's time bound (`bound_for`)."""
    sizes = tuple(sizes or (QUICK_SIZES if repeats < 5 else SIZES))
    cells, why_not = _measure_all(sizes, bound)
    figures = {key: _Figures.of(cell, key[1]) for key, cell in cells.items() if not cell.error}
    rows: list[tuple[str, ...]] = []
    for runs in sizes:
        for variant in VARIANTS:
            cell = cells.get((variant.system, runs))
            head = (f"{runs:,}", variant.label)
            if cell is None:
                rows.append((*head, why_not.get(variant.system, "-"), "", "", "", "", ""))
            elif cell.error:
                rows.append((*head, cell.error, "", "", "", "", ""))
            else:
                f = figures[variant.system, runs]
                rows.append(
                    (
                        *head,
                        fmt(f.makespan),
                        f"{f.makespan / _case(runs).ideal:.2f}x",
                        str(f.threads),
                        f"{f.rss_mib:.1f}",
                        f"{f.kib_per_run:.1f}",
                        f"{f.cpu_per_run * 1e3:.2f}",
                    )
                )

    def by_n(system: str, value: str) -> dict[int, float]:
        found = {n: f for (s, n), f in figures.items() if s == system}
        return {n: float(getattr(found[n], value)) for n in sizes if n in found}

    first = sizes[0]
    notes = []
    for variant in VARIANTS:
        cpu = by_n(variant.system, "cpu_per_run")
        if not cpu:
            continue
        later = {n: v for n, v in cpu.items() if n != first}
        flat = _ratios(later, dict.fromkeys(later, cpu.get(first, 0.0)))
        line = f"{variant.label}: CPU per run / N={first:,}: {flat}"
        if variant.system != BASELINE:
            line += (
                f"; makespan / {BASELINE}: "
                f"{_ratios(by_n(variant.system, 'makespan'), by_n(BASELINE, 'makespan'))}"
                f"; RSS growth / {BASELINE}: "
                f"{_ratios(by_n(variant.system, 'rss_mib'), by_n(BASELINE, 'rss_mib'))}"
            )
        notes.append(line)
    largest = sizes[-1]
    subject = figures.get((SUBJECT, largest))
    base = figures.get((SUBJECT, first))
    flatness = subject.cpu_per_run / base.cpu_per_run if subject and base else None
    if subject is None:
        error = cells.get((SUBJECT, largest))
        headline = f"agentloop, async model, N={largest:,}: " + (
            error.error if error else why_not.get(SUBJECT, "not measured")
        )
    else:
        pyd = figures.get((BASELINE, largest))
        versus = f", makespan {subject.makespan / pyd.makespan:.2f}x {BASELINE}" if pyd else ""
        headline = (
            f"agentloop, async model, N={largest:,}: CPU per run {flatness:.2f}x N={first:,}"
            f"{versus}, {subject.threads} threads"
        )
    bounds = (
        f"{fmt(bound)} s"
        if bound is not None
        else ", ".join(f"N={n:,} {fmt(bound_for(n))} s" for n in sizes)
    )
    return Result(
        name="scaling",
        title=f"Many runs: N at once, each model {LATENCY:g} s -> async 0.1 s tool -> model "
        f"(ideal {fmt(_case(first).ideal)} s)",
        headline=headline,
        target=f"agentloop, async model: CPU per run at N={largest:,} <= {FLAT_TARGET}x "
        f"N={first:,}",
        met=flatness is not None and flatness <= FLAT_TARGET,
        series=tuple(
            Series(f"{system}|{runs}", "s", tuple(cell.seconds))
            for (system, runs), cell in cells.items()
            if cell.seconds
        ),
        figures={
            f"{system}|{runs} {name}": value
            for (system, runs), f in figures.items()
            for name, value in (
                ("makespan s", f.makespan),
                ("threads", float(f.threads)),
                ("rss MiB", f.rss_mib),
                ("cpu ms/run", f.cpu_per_run * 1e3),
            )
        },
        table=Table(
            (
                "N",
                "system",
                "makespan s",
                "x ideal",
                "peak threads",
                "RSS +MiB",
                "KiB/run",
                "CPU ms/run",
            ),
            tuple(rows),
            "rlrrrrrr",
        ),
        notes=(
            *notes,
            f"one batch per cell, each in its own subprocess; agentloop at "
            f"max_concurrent_runs=N; time bound per cell (start-up included): {bounds}",
        ),
    )
