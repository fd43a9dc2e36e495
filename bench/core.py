"""The async core's scheduling costs: per-task overhead, makespan under load, wake-up latency.

These are what an agent pays for every `submit_task` / `wait_for_tasks` round trip, so each is
set beside bare asyncio doing the same work in the same process: the ratio, not the absolute
figure, is what survives a noisy machine.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from agentloop import Limits, TaskRegistry

from ._measure import Result, Series, paired, ratios

__all__ = ["makespan", "per_task_overhead", "wakeup_latency"]

OVERHEAD_TASKS = 2000
OVERHEAD_TARGET = 3.0
SLEEPERS = 1000
SLEEP = 0.1
MAKESPAN_TARGET = 1.3
WAKEUP_TRIALS = 200
WAKEUP_TARGET_MS = 1.0


async def noop() -> None:
    """The cheapest possible async target: whatever it costs to run is pure overhead."""


async def sleeper() -> None:
    await asyncio.sleep(SLEEP)


# -- 1. per-task overhead ---------------------------------------------------------------------


async def _raw_noops() -> float:
    start = perf_counter()
    await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(OVERHEAD_TASKS)])
    return perf_counter() - start


async def submit_wait_results(registry: TaskRegistry, target: str, count: int) -> float:
    """Seconds for `count` submits of `target`, one wait on them all, and their results."""
    start = perf_counter()
    ids = [await registry.submit("tool", target) for _ in range(count)]
    await registry.wait(ids)
    await registry.results(ids)
    return perf_counter() - start


async def _registry_noops() -> float:
    # Default limits on purpose: this is the overhead a user gets without tuning anything.
    async with TaskRegistry([noop]) as registry:
        return await submit_wait_results(registry, "noop", OVERHEAD_TASKS)


def per_task_overhead(repeats: int) -> Result:
    """`submit` + `wait` + `results` of no-op tasks versus `create_task` + `gather`."""
    raw, reg = asyncio.run(paired(repeats, _raw_noops, _registry_noops))
    per_task = 1e6 / OVERHEAD_TASKS
    floor = Series("asyncio create_task+gather", "us/task", tuple(t * per_task for t in raw))
    subject = Series("registry submit+wait+results", "us/task", tuple(t * per_task for t in reg))
    ratio = ratios(subject.samples, floor.samples)
    return Result(
        name="overhead",
        title=f"1. per-task overhead, {OVERHEAD_TASKS} no-op async tasks",
        headline=f"ratio {ratio.median:.2f}x median (min {ratio.min:.2f}x)",
        target=f"ratio <= {OVERHEAD_TARGET:g}x",
        met=ratio.median <= OVERHEAD_TARGET,
        series=(floor, subject, ratio),
        figures={
            "floor_us_per_task": floor.median,
            "registry_us_per_task": subject.median,
            "ratio_median": ratio.median,
            "ratio_min": ratio.min,
        },
    )


# -- 2. makespan of many sleeping tasks -------------------------------------------------------


async def _raw_sleepers() -> float:
    start = perf_counter()
    await asyncio.gather(*[asyncio.create_task(sleeper()) for _ in range(SLEEPERS)])
    return perf_counter() - start


async def _registry_sleepers() -> float:
    limits = Limits(max_workers=SLEEPERS, max_async_tasks=SLEEPERS)
    async with TaskRegistry([sleeper], limits=limits) as registry:
        start = perf_counter()
        ids = [await registry.submit("tool", "sleeper") for _ in range(SLEEPERS)]
        await registry.wait(ids)
        return perf_counter() - start


def makespan(repeats: int) -> Result:
    """1000 concurrent `sleep(0.1)` tasks should finish in about 0.1 s, not queue up."""
    raw, reg = asyncio.run(paired(repeats, _raw_sleepers, _registry_sleepers))
    floor = Series("asyncio gather", "ms", tuple(t * 1e3 for t in raw))
    subject = Series("registry submit+wait", "ms", tuple(t * 1e3 for t in reg))
    ideal = SLEEP * 1e3
    vs_ideal = subject.median / ideal
    return Result(
        name="makespan",
        title=f"2. makespan, {SLEEPERS} tasks x sleep({SLEEP:g}), max_async_tasks={SLEEPERS}",
        headline=(
            f"{vs_ideal:.2f}x ideal {ideal:g} ms (median); floor {floor.median / ideal:.2f}x, "
            f"registry/floor {ratios(subject.samples, floor.samples).median:.2f}x"
        ),
        target=f"makespan <= {MAKESPAN_TARGET:g}x ideal",
        met=vs_ideal <= MAKESPAN_TARGET,
        series=(floor, subject),
        figures={
            "floor_ms": floor.median,
            "registry_ms": subject.median,
            "ratio_vs_ideal": vs_ideal,
            "floor_ratio_vs_ideal": floor.median / ideal,
        },
    )


# -- 3. wake-up latency of wait ---------------------------------------------------------------


class _Gate:
    """One trial's handshake: the task parks on an event, the opener releases it, and the task
    stamps the time just before it returns."""

    def __init__(self) -> None:
        self.parked = asyncio.Event()
        self.event = asyncio.Event()
        self.t_end = 0.0

    async def run(self) -> None:
        self.parked.set()
        await self.event.wait()
        self.t_end = perf_counter()

    async def open_when_parked(self) -> None:
        # Only once the task is parked is the waiter certainly blocked too.
        await self.parked.wait()
        self.event.set()


class _GateTool:
    """A target without arguments (those would be deep-copied) that runs the current gate."""

    def __init__(self) -> None:
        self.gate = _Gate()

    async def gated(self) -> None:
        await self.gate.run()


async def _raw_wakeups(trials: int) -> list[float]:
    latencies = []
    for _ in range(trials):
        gate = _Gate()
        task = asyncio.create_task(gate.run())
        opener = asyncio.create_task(gate.open_when_parked())
        await asyncio.wait([task])
        woke = perf_counter()
        await opener
        latencies.append(woke - gate.t_end)
    return latencies


async def _registry_wakeups(trials: int) -> list[float]:
    tool = _GateTool()
    latencies = []
    async with TaskRegistry([tool.gated]) as registry:
        for _ in range(trials):
            gate = tool.gate = _Gate()
            task_id = await registry.submit("tool", "gated")
            opener = asyncio.create_task(gate.open_when_parked())
            await registry.wait([task_id])
            woke = perf_counter()
            await opener
            latencies.append(woke - gate.t_end)
    return latencies


async def _wakeups(repeats: int) -> tuple[list[float], list[float]]:
    raw: list[float] = []
    reg: list[float] = []
    for i in range(repeats):
        # Alternate which side runs first, as `paired` does; every trial is a sample.
        if i % 2 == 0:
            raw += await _raw_wakeups(WAKEUP_TRIALS)
        reg += await _registry_wakeups(WAKEUP_TRIALS)
        if i % 2 == 1:
            raw += await _raw_wakeups(WAKEUP_TRIALS)
    return raw, reg


def wakeup_latency(repeats: int) -> Result:
    """Time from a task's last line to its waiter running again: the cost of one round trip."""
    raw, reg = asyncio.run(_wakeups(repeats))
    floor = Series("asyncio.wait on a Task", "us", tuple(t * 1e6 for t in raw))
    subject = Series("registry.wait", "us", tuple(t * 1e6 for t in reg))
    median_ms, p95_ms = subject.median / 1e3, subject.percentile(95) / 1e3
    ratio = subject.median / floor.median
    return Result(
        name="wakeup",
        title=f"3. wake-up latency of wait, {repeats} x {WAKEUP_TRIALS} trials",
        headline=(
            f"median {median_ms:.3f} ms, p95 {p95_ms:.3f} ms; "
            f"floor median {floor.median / 1e3:.3f} ms; ratio {ratio:.2f}x"
        ),
        target=f"median < {WAKEUP_TARGET_MS:g} ms",
        met=median_ms < WAKEUP_TARGET_MS,
        series=(floor, subject),
        figures={
            "floor_median_ms": floor.median / 1e3,
            "floor_p95_ms": floor.percentile(95) / 1e3,
            "registry_median_ms": median_ms,
            "registry_p95_ms": p95_ms,
            "ratio_median": ratio,
        },
    )
