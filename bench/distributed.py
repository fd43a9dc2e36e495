"""Local threads versus Ray for CPU-bound tools, and the fixed cost Ray adds per task.

Pure-Python work holds the GIL, so local worker threads take turns however many there are;
Ray runs each task in its own worker process, one per CPU. Both backends run the same tasks
through the same `TaskRegistry` API in the same process run. Ray's start-up (a few seconds)
is measured separately and kept out of the per-run figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from statistics import median

from agentloop import Limits, TaskRegistry

from ._measure import Result, Series

__all__ = ["ray_versus_local"]

ROOT = str(Path(__file__).resolve().parents[1])
"""On the workers' path, so they can import this module's functions."""
CPU_SECONDS = 0.2
TINY_TASKS = 100


def crunch(steps: int) -> int:
    """A fixed amount of pure-Python work (it holds the GIL throughout)."""
    total = 0
    for i in range(steps):
        total += i * i % 7
    return total


def _steps_for(seconds: float) -> int:
    """How many `crunch` steps take `seconds` on one idle core here."""
    steps = 10_000
    while True:
        started = time.perf_counter()
        crunch(steps)
        elapsed = time.perf_counter() - started
        if elapsed > 0.05:
            return int(steps * seconds / elapsed)
        steps *= 4


def noop() -> None:
    """Nothing: the task's cost is all scheduling and transport."""


async def _makespan(registry: TaskRegistry, target: str, count: int, **args: int) -> float:
    started = time.perf_counter()
    ids = [await registry.submit("tool", target, args) for _ in range(count)]
    outcome = await registry.wait(ids)
    if not outcome.all_completed:
        raise RuntimeError(f"benchmark tasks failed: {outcome}")
    return time.perf_counter() - started


async def _measure(repeats: int, count: int) -> dict[str, list[float]]:
    import ray

    from agentloop.backends.ray import RayBackend

    started = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": ROOT}},
    )
    figures: dict[str, list[float]] = {"ray_start": [time.perf_counter() - started]}
    limits = Limits(max_workers=count)
    steps = _steps_for(CPU_SECONDS)
    try:
        local = TaskRegistry(tools=[crunch, noop], limits=limits)
        remote = TaskRegistry(
            tools=[crunch, noop], limits=limits, backend=RayBackend(shutdown_on_close=False)
        )
        async with local, remote:
            await _makespan(remote, "noop", 4)  # warm the workers up
            for _ in range(repeats):
                for name, registry in (("local", local), ("ray", remote)):
                    figures.setdefault(f"{name}_cpu", []).append(
                        await _makespan(registry, "crunch", count, steps=steps)
                    )
                    figures.setdefault(f"{name}_tiny", []).append(
                        await _makespan(registry, "noop", TINY_TASKS) / TINY_TASKS
                    )
    finally:
        ray.shutdown()
    return figures


def ray_versus_local(repeats: int) -> Result:
    count = 100 if repeats >= 5 else 20
    repeats = min(repeats, 3)
    title = f"10. CPU-bound tools: {count} x {CPU_SECONDS}s of pure Python, local vs Ray"
    try:
        import ray  # noqa: F401
    except ImportError:
        return Result(
            name="ray",
            title=title,
            headline='Ray not installed (pip install "agentloop-smol[ray]")',
            target=None,
            met=True,
            series=(),
        )
    f = asyncio.run(_measure(repeats, count))
    local, remote = median(f["local_cpu"]), median(f["ray_cpu"])
    fixed_us = (median(f["ray_tiny"]) - median(f["local_tiny"])) * 1e6
    return Result(
        name="ray",
        title=title,
        headline=(
            f"local {local:.1f} s vs Ray {remote:.1f} s ({local / remote:.1f}x faster on Ray); "
            f"Ray adds {fixed_us:.0f} us per tiny task"
        ),
        target="Ray beats local for CPU-bound work",
        met=remote < local,
        series=(
            Series("local backend, makespan", "s", tuple(f["local_cpu"])),
            Series("ray backend, makespan", "s", tuple(f["ray_cpu"])),
            Series("local, per no-op task", "us", tuple(v * 1e6 for v in f["local_tiny"])),
            Series("ray, per no-op task", "us", tuple(v * 1e6 for v in f["ray_tiny"])),
            Series("ray start-up (once)", "s", tuple(f["ray_start"])),
        ),
        figures={"local_s": local, "ray_s": remote, "ray_fixed_us": fixed_us},
        notes=(f"{os.cpu_count()} CPUs: Ray runs one worker process per CPU",),
    )
