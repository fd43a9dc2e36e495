"""Load: many tasks through one registry, many concurrent runs behind uvicorn, long run series.

Each test samples agentloop's own accounting while the load runs (sync tasks in flight,
worker and controller threads alive) and records what it measured in the suite's figures.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from agentloop import Limits, TaskRegistry, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel, task_text

from .figures import STRESS, Figures, Sizes
from .helpers import (
    Concurrency,
    ThreadSampler,
    assert_all_final,
    heap_point,
    live_instances,
    registry_probe,
    slope,
    uvicorn_server,
    within,
)

# -- 10,000 tasks through one registry ----------------------------------------------------------


@pytest.mark.timeout(120)
async def test_ten_thousand_tasks_through_one_registry(figures: Figures) -> None:
    max_workers = 4
    in_sync = Concurrency()

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    def crunch(n: int) -> int:
        with in_sync.inside_call():
            time.sleep(0.001)  # long enough that the workers overlap and the bound is reached
            return sum(range(n % 50))

    total = Sizes.registry_tasks
    registry = TaskRegistry(tools=[fetch, crunch], limits=Limits(max_workers=max_workers))
    async with registry:
        with ThreadSampler(probe=registry_probe(registry)) as sampler:
            started = time.perf_counter()
            ids = [
                await registry.submit("tool", "crunch" if i % 10 < 3 else "fetch", {"n": i})
                for i in range(total)
            ]
            outcome = await within(120, registry.wait(ids))
            seconds = time.perf_counter() - started
        results = await registry.results(ids)
        stats = assert_all_final(registry)

    assert outcome.all_completed and len(outcome.completed) == total
    expected = {task_id: (sum(range(i % 50)) if i % 10 < 3 else i) for i, task_id in enumerate(ids)}
    assert results == expected
    assert stats["total_completed"] == total
    # accounting, sampled while the load ran and counted inside the tool bodies
    assert in_sync.calls == total * 3 // 10
    assert in_sync.peak == max_workers  # saturated, never beyond
    assert sampler.peaks["workers_in_use"] <= max_workers
    assert sampler.peak_workers <= max_workers
    figures.tasks(stats)
    figures.bounds(
        "10k tasks", sync=(in_sync.peak, max_workers), threads=(sampler.peak_workers, max_workers)
    )
    figures.measured(
        "registry",
        tasks=total,
        seconds=round(seconds, 2),
        tasks_per_s=round(total / seconds),
        sync_share="30%",
        max_workers=max_workers,
        samples=sampler.samples,
    )


# -- 100 concurrent runs through a real uvicorn server ------------------------------------------


class RunRequest(BaseModel):
    task: str


def fan_out_model() -> FunctionModel:
    """Each run fans out on its own number (read from its task) and answers with a checksum."""

    def reply(messages: list[object]) -> str:
        n = int(task_text(messages).split()[-1])
        return (
            f'ids = [submit_task("tool", "fetch", {{"n": {n} + i}}) for i in range(3)]\n'
            f'ids.append(submit_task("tool", "crunch", {{"n": {n}}}))\n'
            "outcome = wait_for_tasks(ids, max_wait_time=60)\n"
            "values = get_task_results(ids)\n"
            "final_answer(sum(values[i] for i in ids))"
        )

    return FunctionModel(reply)


def expected_answer(n: int) -> int:
    return (n + n + 1 + n + 2) + 2 * n


@pytest.mark.timeout(180)
async def test_concurrent_runs_through_uvicorn_share_one_agent(figures: Figures) -> None:
    max_workers, max_runs, max_threads = 4, 32, 8
    in_sync = Concurrency()

    async def fetch(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    def crunch(n: int) -> int:
        with in_sync.inside_call():
            time.sleep(0.005)
            return 2 * n

    agent = create_async_agent(
        tools=[fetch, crunch],
        model=fan_out_model(),
        max_workers=max_workers,
        max_concurrent_runs=max_runs,
        max_controller_threads=max_threads,
        max_steps=3,
    )
    app = FastAPI()

    @app.post("/run")
    async def run(request: RunRequest) -> dict[str, object]:
        return {"answer": await agent.arun(request.task)}

    registry = agent.task_manager
    limiters = agent._limiters

    def probe() -> dict[str, int]:
        stats = registry_probe(registry)()
        return {
            **stats,
            "open_runs": len(registry._scopes),
            "runs": int(limiters.runs.borrowed_tokens),
            "controllers": int(limiters.threads.borrowed_tokens),
        }

    runs, rounds = Sizes.concurrent_runs, Sizes.http_rounds
    limits = httpx.Limits(max_connections=runs, max_keepalive_connections=runs)
    async with agent:
        async with uvicorn_server(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
                with ThreadSampler(probe=probe) as sampler:
                    started = time.perf_counter()
                    responses = []
                    for r in range(rounds):
                        responses += await within(
                            150,
                            asyncio.gather(
                                *(
                                    client.post("/run", json={"task": f"run {r * 1000 + i}"})
                                    for i in range(runs)
                                )
                            ),
                        )
                    seconds = time.perf_counter() - started
        stats = assert_all_final(registry)
        assert registry.get_statistics()["open_scopes"] == 0

    expected = [
        {"answer": expected_answer(r * 1000 + i)} for r in range(rounds) for i in range(runs)
    ]
    assert [r.status_code for r in responses] == [200] * (runs * rounds)
    assert [r.json() for r in responses] == expected  # every run got its own tasks' results
    assert stats["total_completed"] == 4 * runs * rounds
    assert in_sync.peak <= max_workers
    assert sampler.peaks["workers_in_use"] <= max_workers
    assert sampler.peaks["runs"] <= max_runs
    assert sampler.peaks["controllers"] <= max_threads
    assert sampler.peak_workers <= max_workers + max_threads
    assert sampler.peaks["open_runs"] > max_runs  # runs were accepted beyond the run slots
    figures.tasks(stats)
    figures.bounds(
        "uvicorn runs",
        sync=(in_sync.peak, max_workers),
        threads=(sampler.peak_workers, max_workers + max_threads),
    )
    figures.measured(
        "uvicorn",
        concurrent_runs=runs,
        rounds=rounds,
        runs=runs * rounds,
        seconds=round(seconds, 2),
        runs_per_s=round(runs * rounds / seconds, 1),
        peak_open_runs=sampler.peaks["open_runs"],
        peak_run_slots=sampler.peaks["runs"],
        peak_controller_slots=sampler.peaks["controllers"],
        max_concurrent_runs=max_runs,
        max_controller_threads=max_threads,
        tasks=stats["total_submitted"],
    )


# -- sequential runs: memory and threads stay flat ----------------------------------------------

SEQUENTIAL = """
ids = [submit_task("tool", "fetch", {"n": i}) for i in range(3)]
ids.append(submit_task("tool", "crunch", {"n": 1}))
wait_for_tasks(ids)
values = get_task_results(ids)
final_answer(sum(values.values()))
"""


@pytest.mark.timeout(300 if STRESS else 90)
async def test_sequential_runs_keep_memory_and_threads_flat(figures: Figures) -> None:
    async def fetch(n: int) -> int:
        return n

    def crunch(n: int) -> int:
        return 2 * n

    agent = create_async_agent(tools=[fetch, crunch], model=ScriptedModel([SEQUENTIAL]))
    runs = Sizes.sequential_runs
    every = 25 if runs <= 200 else 50
    kinds = ("CodeAgent", "ControllerRun", "LoopBridge", "RunScope", "TaskRecord")
    async with agent:
        for _ in range(50):  # warm-up: imports, caches and anyio's idle worker pool
            assert await agent.arun("warm up") == 5
        before = live_instances(*kinds)
        rss: list[tuple[float, float]] = []
        blocks: list[tuple[float, float]] = []
        threads: list[int] = []
        started = time.perf_counter()
        for i in range(1, runs + 1):
            assert await agent.arun(f"run {i}") == 5
            if i % every == 0:
                resident, allocated = heap_point()
                rss.append((i, resident))
                blocks.append((i, allocated))
                threads.append(threading.active_count())
        seconds = time.perf_counter() - started
        after = live_instances(*kinds)
        stats = assert_all_final(agent.task_manager)
        open_scopes = agent.task_manager.get_statistics()["open_scopes"]

    rss_per_run = slope(rss)
    blocks_per_run = slope(blocks)
    # nothing of a finished run is kept: no controller, run, bridge, scope or task record
    # (`before` may still hold the last warm-up run's objects, not yet collected)
    grown = {kind: after[kind] - before[kind] for kind in kinds if after[kind] > before[kind]}
    assert not grown, f"objects left by {runs} runs: {after} (before: {before})"
    assert open_scopes == 0
    # (threads of other libraries, such as an HTTP keep-alive handler, may end meanwhile)
    assert max(threads) <= threads[0], f"threads grew between runs: {threads}"
    # Keeping each run's controller alive costs ~57 kB of RSS and ~220 blocks per run (measured
    # with this very script); what remains here is allocator and third-party noise (smolagents
    # tries `import torch` at each final answer and `find_spec`s its imports at each run, about
    # one block each through setuptools' import hook). Measured: -1.0 to 2.4 blocks per run on
    # a quiet machine, 5.04 once on a loaded one, so the bound is 10; leaked run objects are
    # caught exactly by the instance counts above. RSS moves in pages and arenas: a loose bound.
    assert blocks_per_run < 10, f"{blocks_per_run:.2f} Python blocks per run: {blocks}"
    assert rss_per_run < 16_384, f"{rss_per_run:.0f} bytes of RSS per run: {rss}"
    figures.tasks(stats)
    figures.measured(
        "sequential",
        runs=runs,
        seconds=round(seconds, 1),
        ms_per_run=round(1000 * seconds / runs, 1),
        rss_bytes_per_run=round(rss_per_run, 1),
        python_blocks_per_run=round(blocks_per_run, 2),
        threads_first=threads[0],
        threads_last=threads[-1],
    )
