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

import importlib.util
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._measure import Result, Series, Table, fmt
from .runs import REQUIRES, Case, Cell, measure

__all__ = ["QUICK_SIZES", "SIZES", "bound_for", "many_runs"]

SIZES = (100, 1000, 3000, 10_000)
QUICK_SIZES = (100, 1000)
LATENCY = 1.0
FLAT_TARGET = 1.5
"""CPU per run at the largest N over CPU per run at N=100, for agentloop with the async model."""
BOUND_BASE_S = 60.0
BOUND_PER_RUN_S = 0.02


def bound_for(runs: int) -> float:
    """Seconds a cell of `runs` runs may take, start-up included: a minute, plus 20 ms a run
    (10,000 runs: 260 s; pydantic-ai's run costs about 10 ms of CPU here, so this is twice
    what a system as costly as it needs on an idle machine)."""
    return BOUND_BASE_S + BOUND_PER_RUN_S * runs


@dataclass(frozen=True, slots=True)
class Variant:
    """One row per N: a system of `runs.MAKERS`, and whether it is told to admit N runs."""

    system: str
    label: str
    admits_all: bool = False


VARIANTS = (
    Variant("agentloop", "agentloop, async", admits_all=True),
    Variant("agentloop-sync", "agentloop, sync-only", admits_all=True),
    Variant("pydantic-ai", "pydantic-ai"),
    Variant("openai-agents", "openai-agents"),
)
BASELINE = "pydantic-ai"
SUBJECT = "agentloop"
"""The system the target is judged on."""


def _case(runs: int) -> Case:
    return Case(key=f"scale{runs}", label=f"N={runs}", runs=runs, latency=LATENCY)


@dataclass(frozen=True, slots=True)
class _Figures:
    """One finished cell, with its per-run figures."""

    makespan: float
    threads: int
    rss_mib: float
    cpu_per_run: float
    sys_share: float
    """The part of the CPU time spent in the kernel (thousands of threads handing the GIL to
    each other show here)."""
    runs: int

    @classmethod
    def of(cls, cell: Cell, runs: int) -> _Figures:
        cpu = cell.cpu_seconds[0]
        share = cell.sys_seconds[0] / cpu if cpu else 0.0
        return cls(cell.seconds[0], cell.threads, cell.rss_mib, cpu / runs, share, runs)

    @property
    def kib_per_run(self) -> float:
        return self.rss_mib * 1024 / self.runs


@dataclass(slots=True)
class _Found:
    """Every cell measured, keyed `(system, N)`; the CPU other processes used during each
    cell, in cores (`_OthersCores`: the machine is shared, and a busy neighbour stretches
    makespans); and why a system was not run at some N (not installed, or dropped after a
    cell failed)."""

    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    others: dict[tuple[str, int], float] = field(default_factory=dict)
    why_not: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict[tuple[str, int], _Figures]:
        return {key: _Figures.of(c, key[1]) for key, c in self.cells.items() if not c.error}


class _OthersCores:
    """How many cores the machine's other processes kept busy, on average, during the block:
    all CPUs' busy time (`/proc/stat`) less this process's and its waited-for children's
    (`getrusage`), over the wall time. Unlike the load average, it leaves out the cell itself,
    whose thousands of threads can be runnable at once."""

    cores = 0.0

    def __enter__(self) -> _OthersCores:
        self._start = (time.perf_counter(), _machine_busy(), _own_cpu())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = (time.perf_counter(), _machine_busy(), _own_cpu())
        start_wall, start_busy, start_own = self._start
        self.cores = max(0.0, (busy - start_busy) - (own - start_own)) / (wall - start_wall)


def _machine_busy() -> float:
    """Seconds every CPU has spent not idle since boot (`/proc/stat`'s first line)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended."""
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, who))


def _measure_all(sizes: Sequence[int], bound: float | None) -> _Found:
    """Every cell, the systems in a rotating order; a system whose cell fails (a time bound
    included) is not run at larger N."""
    found = _Found()
    for variant in VARIANTS:
        if importlib.util.find_spec(REQUIRES[variant.system]) is None:
            found.why_not[variant.system] = "not installed"
    for i, runs in enumerate(sizes):
        start = i % len(VARIANTS)
        for variant in VARIANTS[start:] + VARIANTS[:start]:
            if variant.system in found.why_not:
                continue
            limit = runs if variant.admits_all else None
            seconds = bound if bound is not None else bound_for(runs)
            with _OthersCores() as others:
                cell = measure(variant.system, _case(runs), 1, limit, bound=seconds)
            found.cells[variant.system, runs] = cell
            found.others[variant.system, runs] = others.cores
            if cell.error:
                found.why_not[variant.system] = f"dropped after N={runs:,}"
    return found


def _rows(sizes: Sequence[int], found: _Found) -> tuple[tuple[str, ...], ...]:
    figures = found.figures()
    rows = []
    for runs in sizes:
        for variant in VARIANTS:
            key = (variant.system, runs)
            cell = found.cells.get(key)
            others = f"{found.others[key]:.2f}" if key in found.others else ""
            if cell is None or cell.error:
                why = cell.error if cell else found.why_not.get(variant.system, "-")
                rows.append((f"{runs:,}", variant.label, why, "", "", "", "", "", others))
                continue
            f = figures[key]
            rows.append(
                (
                    f"{runs:,}",
                    variant.label,
                    f"{fmt(f.makespan)} ({f.makespan / _case(runs).ideal:.2f}x)",
                    str(f.threads),
                    f"{f.rss_mib:.1f}",
                    f"{f.kib_per_run:.1f}",
                    f"{f.cpu_per_run * 1e3:.2f}",
                    f"{f.sys_share:.0%}",
                    others,
                )
            )
    return tuple(rows)


def _ratios(values: dict[int, float], over: dict[int, float]) -> str:
    parts = [f"N={n:,} {v / over[n]:.2f}x" for n, v in values.items() if over.get(n)]
    return ", ".join(parts) or "-"


def _ratio_lines(sizes: Sequence[int], figures: dict[tuple[str, int], _Figures]) -> list[str]:
    """Per system: CPU per run over its own at the first N (flatness); then makespan and RSS
    growth over pydantic-ai's at the same N."""

    def by_n(system: str, name: str) -> dict[int, float]:
        return {
            n: float(getattr(figures[system, n], name)) for n in sizes if (system, n) in figures
        }

    first = sizes[0]
    lines = []
    for variant in VARIANTS:
        cpu = by_n(variant.system, "cpu_per_run")
        if not cpu:
            continue
        parts = []
        if len(sizes) > 1:
            later = {n: v for n, v in cpu.items() if n != first}
            flat = _ratios(later, dict.fromkeys(later, cpu.get(first, 0.0)))
            parts.append(f"CPU per run / N={first:,}: {flat}")
        if variant.system != BASELINE:
            for name, what in (("makespan", "makespan"), ("rss_mib", "RSS growth")):
                ratios = _ratios(by_n(variant.system, name), by_n(BASELINE, name))
                parts.append(f"{what} / {BASELINE}: {ratios}")
        if parts:
            lines.append(f"{variant.label}: " + "; ".join(parts))
    return lines


def _flatness(sizes: Sequence[int], figures: dict[tuple[str, int], _Figures]) -> float | None:
    """The target's figure; `None` if either end is missing, or there is one N only."""
    last, first = figures.get((SUBJECT, sizes[-1])), figures.get((SUBJECT, sizes[0]))
    if last is None or first is None or len(sizes) < 2:
        return None
    return last.cpu_per_run / first.cpu_per_run


def _headline(sizes: Sequence[int], found: _Found) -> str:
    figures = found.figures()
    largest = sizes[-1]
    subject = figures.get((SUBJECT, largest))
    head = f"agentloop, async model, N={largest:,}: "
    if subject is None:
        cell = found.cells.get((SUBJECT, largest))
        return head + (cell.error if cell else found.why_not.get(SUBJECT, "not measured"))
    flatness = _flatness(sizes, figures)
    head += f"CPU per run {subject.cpu_per_run * 1e3:.2f} ms"
    head += f" ({flatness:.2f}x N={sizes[0]:,})" if flatness else ""
    if baseline := figures.get((BASELINE, largest)):
        head += f", makespan {subject.makespan / baseline.makespan:.2f}x {BASELINE}"
    return head + f", {subject.threads} threads"


def many_runs(
    repeats: int, *, sizes: Sequence[int] | None = None, bound: float | None = None
) -> Result:
    """The scaling scenario: `sizes` (default: all of `SIZES`, or `QUICK_SIZES` with `--quick`,
    i.e. fewer than 5 repeats); `bound` replaces every cell's time bound (`bound_for`)."""
    sizes = tuple(sizes or (QUICK_SIZES if repeats < 5 else SIZES))
    found = _measure_all(sizes, bound)
    figures = found.figures()
    flatness = _flatness(sizes, figures)
    bounds = (
        f"{fmt(bound)} s"
        if bound is not None
        else ", ".join(f"N={n:,} {fmt(bound_for(n))} s" for n in sizes)
    )
    return Result(
        name="scaling",
        title=f"Many runs: N at once, each model {LATENCY:g} s -> async 0.1 s tool -> model "
        f"(ideal {fmt(_case(sizes[0]).ideal)} s)",
        headline=_headline(sizes, found),
        target=f"agentloop, async model: CPU per run at N={sizes[-1]:,} <= {FLAT_TARGET}x "
        + (f"N={sizes[0]:,}" if len(sizes) > 1 else "the smallest N (run with two sizes)"),
        met=flatness is not None and flatness <= FLAT_TARGET,
        series=tuple(
            Series(f"{system}|{runs}", "s", tuple(cell.seconds))
            for (system, runs), cell in found.cells.items()
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
                ("sys share", f.sys_share),
                ("others cores", found.others[system, runs]),
            )
        },
        table=Table(
            (
                "N",
                "system",
                "makespan s (x ideal)",
                "threads",
                "RSS +MiB",
                "KiB/run",
                "CPU ms/run",
                "sys",
                "others",
            ),
            _rows(sizes, found),
            "rlrrrrrrr",
        ),
        notes=(
            *_ratio_lines(sizes, figures),
            "async: agentloop with ScriptedModel (an async path); sync-only: with a model that "
            "has only a blocking generate; one batch per cell, each in its own subprocess; "
            "agentloop at max_concurrent_runs=N; threads: peak OS threads; sys: the kernel's "
            "part of the CPU "
            "time; others: cores the machine's other processes kept busy during the cell (of "
            f"{os.cpu_count()}); time bound per cell (start-up included): {bounds}",
        ),
    )
