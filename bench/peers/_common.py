"""What every system module shares: the workload sizes, the probe, the `System` record, and W2-W4
built from how a framework makes and runs an agent (`MakeAgent`, `RunAgent`).

A system is one way a user could run the workloads (a framework, agentloop through its Python
API, agentloop from model code, ...). Each workload is a plain blocking callable that starts its
own event loop where it needs one, so every run gets a fresh loop, fresh threads and no state
left by the system measured before it.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from typing import Any

__all__ = [
    "EXECUTOR_THREADS",
    "NOOPS",
    "SLEEP",
    "SLEEPERS",
    "WAKE_SLEEP",
    "WAKE_TASKS",
    "WIDE",
    "BatchRun",
    "MakeAgent",
    "Probe",
    "RunAgent",
    "System",
    "async_fanout",
    "nap",
    "nap_sync",
    "noop",
    "noops",
    "wakeups",
]

EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""What a `ThreadPoolExecutor` (and so asyncio's default executor) starts when not told."""
SLEEPERS = 100
"""W1 and W2: tools per run."""
SLEEP = 0.1
"""W1 and W2: seconds each tool sleeps."""
WIDE = 100
"""W1: the worker count every system is also run at (one thread per tool)."""
NOOPS = 1000
"""W3: no-op tools per run."""
WAKE_TASKS = 10
"""W4: tools per trial; the latency is measured from the last of them to end."""
WAKE_SLEEP = 0.005
"""W4: seconds each tool sleeps, so the waiter is surely blocked when they end."""


class Probe:
    """Brackets the measured part of one run: its duration and, while tracemalloc traces, the
    peak of memory allocated on top of what was live when it started.

    A system whose figure is timed somewhere the probe cannot reach (inside model code) sets
    `seconds` itself after the block.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.peak_bytes = 0
        self._start = 0.0
        self._base = 0

    def __enter__(self) -> Probe:
        if tracemalloc.is_tracing():
            gc.collect()
            self._base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = perf_counter() - self._start
        if tracemalloc.is_tracing():
            self.peak_bytes = tracemalloc.get_traced_memory()[1] - self._base


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchRun:
    """One end-to-end W5 run: wall time, model calls, and whether all 10 charts came out."""

    seconds: float
    model_calls: int
    charts: int


@dataclass(frozen=True, kw_only=True)
class System:
    """One way to run the workloads; a workload it has no natural form for is `None`.

    Attributes:
        name: the row label.
        requires: modules that must be importable (else the row says "not installed").
        default_limit: how many sync tools run at once when nothing is configured (W1).
        sync_fanout: W1, `(tools, seconds, workers or None for the defaults) -> seconds`.
        async_fanout: W2, `(tools, seconds) -> seconds`.
        noops: W3, `(tools, probe)`: runs the no-op tools inside (or timing them for) `probe`.
        wakeups: W4, `(trials) -> latencies in seconds`, one per trial.
        wake_point: W4, where the waiting code resumes (what the latency runs to).
        wake_trials: W4 trials per repeat (fewer for a system whose every trial is slow).
        notes: a remark on a workload, or why it is `None`, by workload name (`"w2"`, ...).
    """

    name: str
    requires: tuple[str, ...] = ()
    default_limit: str = ""
    sync_fanout: Callable[[int, float, int | None], float] | None = None
    async_fanout: Callable[[int, float], float] | None = None
    noops: Callable[[int, Probe], None] | None = None
    wakeups: Callable[[int], list[float]] | None = None
    wake_point: str = ""
    wake_trials: int = 20
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


# -- W1-W4 for a framework that runs a model's tool calls ---------------------------------------

MakeAgent = Callable[[Callable[..., Any], int, dict[str, Any], Callable[[], None] | None], Any]
"""`(tool, calls, arguments, on_next_call)`: an agent whose model calls `tool` `calls` times at
once with `arguments`, then answers; `on_next_call`, if given, runs when the model is asked for
that answer (so after the tool calls' results are handed back)."""
RunAgent = Callable[[Any, Probe], None]
"""`(agent, probe)`: run the agent to its answer, the run bracketed by `probe`."""


def nap_sync(seconds: float) -> None:
    """Sleep in a worker thread."""
    time.sleep(seconds)


async def nap(seconds: float) -> None:
    """Sleep on the loop."""
    await asyncio.sleep(seconds)


async def noop() -> None:
    """Do nothing."""


def async_fanout(agent: MakeAgent, run: RunAgent) -> Callable[[int, float], float]:
    """W2: `(tools, seconds) -> seconds` for one agent calling `nap(seconds)` `tools` times."""

    def fanout(tools: int, seconds: float) -> float:
        probe = Probe()
        run(agent(nap, tools, {"seconds": seconds}, None), probe)
        return probe.seconds

    return fanout


def noops(agent: MakeAgent, run: RunAgent) -> Callable[[int, Probe], None]:
    """W3: `(tools, probe)`, one agent calling `noop()` `tools` times inside `probe`."""

    def run_noops(tools: int, probe: Probe) -> None:
        run(agent(noop, tools, {}, None), probe)

    return run_noops


def wakeups(
    agent: MakeAgent, run: RunAgent, *, blocking: bool = False
) -> Callable[[int], list[float]]:
    """W4: `(trials) -> latencies`, each from the last of `WAKE_TASKS` tools ending to the
    model being asked for its next reply.

    `blocking`: the tools are sync functions that block their thread while they sleep, for a
    framework that takes its tools as sync functions; otherwise they await on the loop.
    """

    def trial() -> float:
        stamps: list[float] = []
        asked: list[float] = []
        tool = _stamped_nap_sync(stamps) if blocking else _stamped_nap(stamps)
        run(agent(tool, WAKE_TASKS, {}, lambda: asked.append(perf_counter())), Probe())
        return asked[0] - max(stamps)

    def trials(count: int) -> list[float]:
        return [trial() for _ in range(count)]

    return trials


def _stamped_nap(stamps: list[float]) -> Callable[[], Any]:
    async def stamped_nap() -> None:
        """Sleep, then record the time."""
        await asyncio.sleep(WAKE_SLEEP)
        stamps.append(perf_counter())

    return stamped_nap


def _stamped_nap_sync(stamps: list[float]) -> Callable[[], Any]:
    def stamped_nap() -> None:
        """Sleep, then record the time."""
        time.sleep(WAKE_SLEEP)
        stamps.append(perf_counter())

    return stamped_nap
