"""W1-W5: every system runs the same workload in the same process, beside its floor.

One repeat runs the floor and every installed system once each, starting one further along the
list each time (so no system always runs first or last), with a full collection before each
run; a system's ratio pairs each of its runs with the floor's run of the same repeat. A system
that is not installed, has no natural form for a workload, or fails, gets a row that says so.
"""

from __future__ import annotations

import gc
import logging
import statistics
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from .._measure import Result, Series, Table, fmt
from . import batch, floors, sys_agentloop, sys_openai_agents, sys_pydantic_ai, sys_smolagents
from ._common import NOOPS, SLEEP, SLEEPERS, WAKE_TASKS, WIDE, Probe, System
from .sys_threadpool import THREADPOOL

__all__ = ["SYSTEMS", "async_fanout", "batch_makespan", "noop_overhead", "sync_fanout", "wakeup"]

logger = logging.getLogger("bench")
T = TypeVar("T")

SYSTEMS: tuple[System, ...] = (
    floors.ASYNCIO,
    sys_pydantic_ai.PYDANTIC_AI,
    sys_openai_agents.OPENAI_AGENTS,
    sys_smolagents.TOOL_CALLING,
    sys_smolagents.CODE_AGENT,
    THREADPOOL,
    sys_agentloop.API,
    sys_agentloop.MODEL_CODE,
)
JUDGED = sys_agentloop.MODEL_CODE.name
"""Every target is judged on agentloop driven from model code, the way agents use it."""
API = sys_agentloop.API.name
FLOOR = "floor"
FLOOR_WAKE_TRIALS = 20
W1_TARGET, W2_TARGET, W3_TARGET_US, W3_TARGET_KIB, W4_TARGET_MS = 1.1, 1.05, 80.0, 4.0, 1.0


@dataclass(frozen=True, slots=True)
class Samples(Generic[T]):
    """What the repeats gave: the floor's samples, each run's samples, and why runs failed."""

    floor: list[T]
    runs: dict[str, list[T]]
    errors: dict[str, str]

    def why_not(self, key: str, system: System | None = None, workload: str = "") -> str:
        """The text of a row without figures: not installed, no such workload, or the error."""
        if system is not None and not system.installed:
            return "not installed"
        if key in self.errors:
            return self.errors[key]
        return system.notes.get(workload, "n/a") if system is not None else "n/a"


def _measure(
    repeats: int,
    floor: Callable[[], T],
    runs: Mapping[str, Callable[[], T]],
    warmups: Mapping[str, Callable[[], object]],
) -> Samples[T]:
    """`repeats` samples of the floor and every run, rotating the order, after one untimed
    warm-up of each (`warmups`, by run name: a small version of the run, so imports and
    first-use caches are not charged to the first repeat). A run that raises is logged and
    dropped."""
    every = {FLOOR: floor, **runs}
    samples: dict[str, list[T]] = {name: [] for name in every}
    errors: dict[str, str] = {}
    names = list(every)
    for name, warmup in warmups.items():
        try:
            warmup()
        except Exception as exc:
            logger.warning("%s failed", name, exc_info=True)
            errors[name] = f"error: {type(exc).__name__}: {exc}"[:80]
    for i in range(repeats):
        start = i % len(names)
        for name in names[start:] + names[:start]:
            if name in errors:
                continue
            gc.collect()
            try:
                samples[name].append(every[name]())
            except Exception as exc:
                logger.warning("%s failed", name, exc_info=True)
                errors[name] = f"error: {type(exc).__name__}: {exc}"[:80]
    floor_samples = samples.pop(FLOOR)
    return Samples(floor_samples, {k: v for k, v in samples.items() if k not in errors}, errors)


def _installed(workload: str) -> list[tuple[System, Callable[..., Any]]]:
    """The installed systems that run `workload` (a `System` field), with its function."""
    return [(s, f) for s in SYSTEMS if s.installed and (f := getattr(s, workload)) is not None]


@dataclass(frozen=True, slots=True)
class Ratio:
    """A system's median over the floor's median, and its min over the floor's min."""

    median: float
    min: float

    @classmethod
    def of(cls, samples: Sequence[float], floor: Sequence[float]) -> Ratio:
        return cls(statistics.median(samples) / statistics.median(floor), min(samples) / min(floor))

    def __str__(self) -> str:
        return f"{self.median:.2f}x ({self.min:.2f}x)"


def _mm(values: Sequence[float], scale: float = 1.0) -> str:
    """Median (min), the way every cell of these tables reads."""
    return f"{fmt(statistics.median(values) * scale)} ({fmt(min(values) * scale)})"


def _judge(ratios: dict[str, Ratio], key: str, limit: float) -> tuple[bool, str]:
    if key not in ratios:
        return False, "not measured"
    found = ratios[key]
    return found.median <= limit, f"{found.median:.2f}x median (min {found.min:.2f}x)"


CELLS_NOTE = (
    "cells: median (min) over the repeats; ratios: the system's median over the floor's "
    "median (min over min), both measured in this run"
)


def _seconds(found: Samples[float]) -> tuple[Series, ...]:
    runs = [(FLOOR, found.floor), *found.runs.items()]
    return tuple(Series(name, "s", tuple(samples)) for name, samples in runs)


# -- W1: 100 sync tools sleeping 100 ms -------------------------------------------------------


def sync_fanout(repeats: int) -> Result:
    """W1: each system at its default limits, and at 100 workers."""
    runs: dict[str, Callable[[], float]] = {}
    warmups: dict[str, Callable[[], object]] = {}
    for system, fanout in _installed("sync_fanout"):
        for mode, workers in (("defaults", None), ("wide", WIDE)):
            runs[f"{system.name}|{mode}"] = partial(fanout, SLEEPERS, SLEEP, workers)
            warmups[f"{system.name}|{mode}"] = partial(fanout, 2, 0.0, workers)
    found = _measure(repeats, lambda: floors.thread_sleeps(SLEEPERS, SLEEP), runs, warmups)
    ratios = {key: Ratio.of(s, found.floor) for key, s in found.runs.items()}
    rows: list[tuple[str, ...]] = [
        ("floor: thread per tool", f"{SLEEPERS} threads", _mm(found.floor), "1x", "", "")
    ]
    for system in SYSTEMS:
        cells: list[str] = []
        for mode in ("defaults", "wide"):
            key = f"{system.name}|{mode}"
            if key in ratios:
                cells += [_mm(found.runs[key]), str(ratios[key])]
            else:
                cells += [found.why_not(key, system, "w1"), ""]
        rows.append((system.name, system.default_limit, *cells))
    met, figure = _judge(ratios, f"{JUDGED}|wide", W1_TARGET)
    api = ratios.get(f"{API}|wide")
    return Result(
        name="w1",
        title=f"W1. {SLEEPERS} sync tools x sleep({SLEEP:g}): seconds and ratio to the floor",
        headline=f"agentloop from model code at {WIDE} workers: {figure}"
        + (f"; Python API {api.median:.2f}x" if api else ""),
        target=f"<= {W1_TARGET:g}x at {WIDE} workers",
        met=met,
        series=_seconds(found),
        table=Table(
            ("system", "default limit", "defaults s", "x floor", f"{WIDE} workers s", "x floor"),
            tuple(rows),
            "llrrrr",
        ),
        notes=(
            CELLS_NOTE,
            "default limits: asyncio's default executor (asyncio.to_thread, openai-agents) and "
            "ToolCallingAgent's ThreadPoolExecutor start min(32, cpus + 4) threads, pydantic-ai "
            "uses anyio's 40-thread limiter, agentloop and the thread-pool manager "
            "max_workers=3; raised to 100 with max_workers, max_tool_threads, "
            "Agent.using_thread_executor and loop.set_default_executor",
        ),
    )


# -- W2: 100 async tools sleeping 100 ms ------------------------------------------------------


def async_fanout(repeats: int) -> Result:
    """W2: async tools, awaited on the loop where the system can."""
    systems = _installed("async_fanout")
    runs = {s.name: partial(fanout, SLEEPERS, SLEEP) for s, fanout in systems}
    warmups = {s.name: partial(fanout, 2, 0.0) for s, fanout in systems}
    found = _measure(repeats, lambda: floors.async_sleeps(SLEEPERS, SLEEP), runs, warmups)
    ratios = {key: Ratio.of(s, found.floor) for key, s in found.runs.items()}
    rows = [("floor: asyncio.gather", _mm(found.floor), "1x", "")]
    for system in SYSTEMS:
        if system.name in ratios:
            note = system.notes.get("w2", "")
            rows.append((system.name, _mm(found.runs[system.name]), str(ratios[system.name]), note))
        else:
            rows.append((system.name, "", "", found.why_not(system.name, system, "w2")))
    met, figure = _judge(ratios, JUDGED, W2_TARGET)
    api = ratios.get(API)
    return Result(
        name="w2",
        title=f"W2. {SLEEPERS} async tools x sleep({SLEEP:g}): seconds and ratio to the floor",
        headline=f"agentloop from model code: {figure}"
        + (f"; Python API {api.median:.2f}x" if api else ""),
        target=f"<= {W2_TARGET:g}x",
        met=met,
        series=_seconds(found),
        table=Table(("system", "s", "x floor", ""), tuple(rows), "lrrl"),
        notes=(CELLS_NOTE,),
    )


# -- W3: 1000 no-op tools: time and memory per task -------------------------------------------


def _probed(noops: Callable[[int, Probe], None], traced: bool, tools: int = NOOPS) -> Probe:
    probe = Probe()
    if not traced:
        noops(tools, probe)
        return probe
    tracemalloc.start()
    try:
        noops(tools, probe)
    finally:
        tracemalloc.stop()
    return probe


def noop_overhead(repeats: int) -> Result:
    """W3: microseconds and peak KiB per task, timed and traced in separate runs."""

    systems = _installed("noops")
    runs = {s.name: partial(_probed, noops, False) for s, noops in systems}
    traced_runs = {s.name: partial(_probed, noops, True) for s, noops in systems}
    warmups = {s.name: partial(_probed, noops, False, 10) for s, noops in systems}
    timed = _measure(repeats, partial(_probed, floors.noops, False), runs, warmups)
    traced = _measure(repeats, partial(_probed, floors.noops, True), traced_runs, {})
    floor_us = [p.seconds * 1e6 / NOOPS for p in timed.floor]
    us = {name: [p.seconds * 1e6 / NOOPS for p in s] for name, s in timed.runs.items()}
    kib = {name: [p.peak_bytes / 1024 / NOOPS for p in s] for name, s in traced.runs.items()}
    floor_kib = [p.peak_bytes / 1024 / NOOPS for p in traced.floor]
    rows = [("floor: create_task + gather", _mm(floor_us), "1x", _mm(floor_kib))]
    for system in SYSTEMS:
        name = system.name
        if name in us:
            peak = _mm(kib[name]) if name in kib else traced.why_not(name)
            rows.append((name, _mm(us[name]), str(Ratio.of(us[name], floor_us)), peak))
        else:
            rows.append((name, timed.why_not(name, system, "w3"), "", ""))
    if JUDGED in us and JUDGED in kib:
        per_task, memory = statistics.median(us[JUDGED]), statistics.median(kib[JUDGED])
        met = per_task <= W3_TARGET_US and memory <= W3_TARGET_KIB
        headline = f"agentloop from model code: {per_task:.0f} us/task, {memory:.2f} KiB/task"
    else:
        met, headline = False, "agentloop from model code: not measured"
    return Result(
        name="w3",
        title=f"W3. {NOOPS} no-op tools: us per task (ratio to floor), peak KiB per task",
        headline=headline + " (medians)",
        target=f"<= {W3_TARGET_US:g} us and <= {W3_TARGET_KIB:g} KiB per task",
        met=met,
        series=(
            Series(FLOOR, "us/task", tuple(floor_us)),
            *(Series(name, "us/task", tuple(s)) for name, s in us.items()),
            *(Series(f"{name} memory", "KiB/task", tuple(s)) for name, s in kib.items()),
        ),
        table=Table(("system", "us/task", "x floor", "KiB/task"), tuple(rows), "lrrr"),
        notes=(
            CELLS_NOTE,
            "async no-op tools where the system has them, sync ones for smolagents and the "
            "thread-pool manager; peers are timed over the whole run, agentloop model code "
            "inside its code step; the thread-pool manager's figure is its 0.5 s poll",
            "memory: tracemalloc's peak above what was live when the run started, per task, in "
            "separate runs (tracing slows everything down)",
        ),
    )


# -- W4: wake-up latency ----------------------------------------------------------------------


def wakeup(repeats: int) -> Result:
    """W4: from the last task's end to the waiting code resuming, every trial a sample."""
    systems = _installed("wakeups")
    runs = {s.name: partial(wakeups, s.wake_trials) for s, wakeups in systems}
    warmups = {s.name: partial(wakeups, 1) for s, wakeups in systems}
    found = _measure(repeats, partial(floors.wakeups, FLOOR_WAKE_TRIALS), runs, warmups)

    def ms(label: str, runs_: list[list[float]]) -> Series:
        return Series(label, "ms", tuple(t * 1e3 for run in runs_ for t in run))

    def cells(s: Series) -> tuple[str, str, str, str]:
        return fmt(s.median), fmt(s.percentile(95)), fmt(s.min), str(len(s.samples))

    latencies = {name: ms(name, s) for name, s in found.runs.items()}
    floor = ms(FLOOR, found.floor)
    rows = [("floor: asyncio.wait", "the awaiting coroutine", *cells(floor))]
    for system in SYSTEMS:
        if system.name in latencies:
            rows.append((system.name, system.wake_point, *cells(latencies[system.name])))
        else:
            rows.append((system.name, found.why_not(system.name, system, "w4"), "", "", "", ""))
    judged, api = latencies.get(JUDGED), latencies.get(API)
    if judged is not None:
        headline = (
            f"agentloop from model code: median {judged.median:.3f} ms, "
            f"p95 {judged.percentile(95):.3f} ms"
        ) + (f"; Python API median {api.median:.3f} ms" if api else "")
    else:
        headline = "agentloop from model code: not measured"
    return Result(
        name="w4",
        title=f"W4. wake-up latency, {WAKE_TASKS} tools per trial: ms from the last tool's end",
        headline=headline,
        target=f"median <= {W4_TARGET_MS:g} ms",
        met=judged is not None and judged.median <= W4_TARGET_MS,
        series=(floor, *latencies.values()),
        table=Table(("system", "resumes at", "median", "p95", "min", "n"), tuple(rows), "llrrrr"),
        notes=(
            "every trial is a sample, pooled over the repeats; the thread-pool manager's "
            "trials spread the last tool's end evenly over one poll interval",
        ),
    )


# -- W5: end-to-end batch scenario ------------------------------------------------------------

PIPELINED, STAGED = "agentloop pipelined", "agentloop stage-by-stage"


def batch_makespan(repeats: int) -> Result:
    """W5: makespan and model calls of the demo's batch scenario, 0.5 s per model call."""
    runs = {
        name: run
        for name, (module, _, run) in batch.RUNS.items()
        if not module or System(name=name, requires=(module,)).installed
    }
    found = _measure(repeats, batch.floor, runs, {})
    floor = [r.seconds for r in found.floor]
    seconds = {name: [r.seconds for r in s] for name, s in found.runs.items()}
    calls = {name: sorted({r.model_calls for r in s}) for name, s in found.runs.items()}
    incomplete = [n for n, s in found.runs.items() if any(r.charts != batch.FILES for r in s)]
    best = statistics.median(seconds[PIPELINED]) if PIPELINED in seconds else None
    rows = [("floor: bare asyncio pipeline, no model", "", _mm(floor), "1x", "0", "")]
    margins: list[str] = []
    for name, (_, plan, _) in batch.RUNS.items():
        if name not in seconds:
            why = "not installed" if name not in runs else found.why_not(name)
            rows.append((name, plan, why, "", "", ""))
            continue
        margin = ""
        if best is not None and name != PIPELINED:
            median = statistics.median(seconds[name])
            margin = f"{median - best:.2f} s ({(median - best) / median:.0%})"
            margins.append(f"{margin} sooner than {name}")
        ratio = str(Ratio.of(seconds[name], floor))
        low, high = calls[name][0], calls[name][-1]
        count = str(low) if low == high else f"{low}-{high}"
        rows.append((name, plan, _mm(seconds[name]), ratio, count, margin))
    met = (
        best is not None
        and STAGED in calls
        and calls[PIPELINED][-1] <= calls[STAGED][0]
        and all(best < statistics.median(s) for n, s in seconds.items() if n != PIPELINED)
        and not incomplete
    )
    headline = (
        f"agentloop pipelined: {best:.2f} s median, {calls[PIPELINED][-1]} model calls; "
        f"{'; '.join(margins)}"
        if best is not None
        else "agentloop pipelined: not measured"
    )
    return Result(
        name="w5",
        title="W5. batch: 10 files x (clean -> analyse -> chart), 0.5 s per model call",
        headline=headline,
        target="pipelined: no more model calls than stage-by-stage, sooner than every other",
        met=met,
        series=(
            Series(FLOOR, "s", tuple(floor)),
            *(Series(name, "s", tuple(s)) for name, s in seconds.items()),
        ),
        figures={f"{name} model calls": float(c[-1]) for name, c in calls.items()},
        table=Table(
            ("system", "plan", "makespan s", "x floor", "model calls", "pipelined sooner by"),
            tuple(rows),
            "llrrrr",
        ),
        notes=(
            CELLS_NOTE,
            "the demo's tools: uneven durations, a sync analyse step, one transient chart "
            "failure (agentloop's plans retry it in place with retries=2; the peers' model asks "
            "again on its next turn); 10 workers for agentloop and ToolCallingAgent",
            *([f"INCOMPLETE (not 10 charts): {', '.join(incomplete)}"] if incomplete else []),
        ),
    )
