"""Accounting: sync tasks running at once never exceed `max_workers`, threads never exceed the
configured limits, and an abandoned thread (its task cancelled or timed out) keeps its slot
until it really ends. The load tests sample the same bounds under their loads."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentloop import Limits, TaskRegistry, TaskStatus, create_async_agent
from agentloop.testing import ScriptedModel

from .figures import STRESS, Figures, Sizes
from .helpers import (
    Concurrency,
    ThreadGate,
    ThreadSampler,
    assert_all_final,
    registry_probe,
    within,
)


async def test_an_abandoned_thread_keeps_its_slot_until_it_ends(figures: Figures) -> None:
    gate = ThreadGate(asyncio.get_running_loop())
    started: list[str] = []

    def stuck(tag: str) -> str:
        started.append(tag)
        gate.pass_through()
        return tag

    def quick(tag: str) -> str:
        started.append(tag)
        return tag

    registry = TaskRegistry(tools=[stuck, quick], limits=Limits(max_workers=2, thread_grace=10))
    try:
        async with registry:
            timed_out = await registry.submit("tool", "stuck", {"tag": "a"}, timeout=0.05)
            cancelled = await registry.submit("tool", "stuck", {"tag": "b"})
            await gate.wait_entered(2)
            await registry.cancel(cancelled)
            await within(5, registry.wait(timed_out))
            assert registry.get(timed_out).status is TaskStatus.TIMED_OUT
            assert registry.get(cancelled).status is TaskStatus.CANCELLED

            waiting = await registry.submit("tool", "quick", {"tag": "c"})
            outcome = await registry.wait(waiting, timeout=0.2)
            # both threads still run their abandoned calls, so both slots stay taken
            stats = registry.get_statistics()
            # both stuck calls started (in either order: two threads race to record it)
            assert outcome.pending == (waiting,) and sorted(started) == ["a", "b"]
            assert (stats["workers_in_use"], stats["live_threads"], stats["pending"]) == (2, 2, 1)

            gate.open()  # the abandoned calls return; their slots pass to the waiting task
            assert (await within(5, registry.wait(waiting))).all_completed
            assert await registry.result(waiting) == "c"
            assert await registry._engine.runner.settle(5) == 0
            stats = assert_all_final(registry)
    finally:
        gate.open()
    figures.tasks(stats)
    figures.survived("abandoned thread kept its slot", 2)


@pytest.mark.timeout(300 if STRESS else 60)
async def test_a_flood_of_timeouts_cancellations_and_retries_stays_within_max_workers(
    figures: Figures,
) -> None:
    max_workers = 3
    inside = Concurrency()

    def work(n: int) -> int:
        with inside.inside_call():
            time.sleep(0.003 if n % 3 == 0 else 0.0005)  # every third outlives its timeout
            if n % 7 == 0:
                raise ValueError(f"flaky {n}")
            return n

    total = Sizes.flood_tasks
    limits = Limits(max_workers=max_workers, retry_backoff=0, thread_grace=10)
    registry = TaskRegistry(tools=[work], limits=limits)
    async with registry:
        with ThreadSampler(probe=registry_probe(registry)) as sampler:
            ids = [
                await registry.submit(
                    "tool",
                    "work",
                    {"n": n},
                    timeout=0.001 if n % 3 == 0 else None,
                    retries=1 if n % 7 == 0 else 0,
                )
                for n in range(total)
            ]
            for task_id in ids[5::20]:
                await registry.cancel(task_id)
            await within(240, registry.wait(ids))
            assert await registry._engine.runner.settle(10) == 0
        stats = assert_all_final(registry)

    assert inside.peak == max_workers  # reached, never passed, abandoned threads included
    assert sampler.peaks["workers_in_use"] <= max_workers
    assert sampler.peak_workers <= max_workers
    assert stats["total_timed_out"] > 0 and stats["total_cancelled"] > 0
    assert stats["total_retries"] > 0 and stats["total_failed"] > 0
    figures.tasks(stats)
    figures.bounds(
        "timeouts flood",
        sync=(inside.peak, max_workers),
        threads=(sampler.peak_workers, max_workers),
    )
    figures.measured(
        "timeouts flood",
        tasks=total,
        timed_out=stats["total_timed_out"],
        cancelled=stats["total_cancelled"],
        failed=stats["total_failed"],
        retries=stats["total_retries"],
        samples=sampler.samples,
    )


@pytest.mark.timeout(120)
class BlockingModel(ScriptedModel):
    """A sync-only model: its `generate` is all it has (each call takes a controller thread,
    under `max_model_threads`)."""

    agenerate = None


@pytest.mark.parametrize("model_kind", ["awaited", "sync-only"])
async def test_runs_and_controller_threads_stay_within_their_bounds(
    model_kind: str, figures: Figures
) -> None:
    max_runs, max_threads, max_model_threads, max_workers = 4, 2, 3, 2
    inside = Concurrency()

    def work(n: int) -> int:
        with inside.inside_call():
            time.sleep(0.002)
            return n

    code = """
ids = [submit_task("tool", "work", {"n": i}) for i in range(4)]
wait_for_tasks(ids)
final_answer(sum(get_task_results(ids).values()))
"""
    model_class = ScriptedModel if model_kind == "awaited" else BlockingModel
    agent = create_async_agent(
        tools=[work],
        model=model_class([code], delay=0.01),
        max_workers=max_workers,
        max_concurrent_runs=max_runs,
        max_controller_threads=max_threads,
        max_model_threads=max_model_threads,
    )
    limiters = agent._limiters
    model_threads = max_model_threads if model_kind == "sync-only" else 0
    runs = 40
    async with agent:

        def probe() -> dict[str, int]:
            return {
                **registry_probe(agent.task_manager)(),
                "runs": int(limiters.runs.borrowed_tokens),
                "controllers": int(limiters.threads.borrowed_tokens),
                "model_calls": int(limiters.model_calls.borrowed_tokens),
            }

        with ThreadSampler(probe=probe) as sampler:
            answers = await within(90, asyncio.gather(*(agent.arun("go") for _ in range(runs))))
        stats = assert_all_final(agent.task_manager)
    assert answers == [6] * runs
    assert sampler.peaks["runs"] == max_runs  # reached, never passed
    assert sampler.peaks["controllers"] == max_threads
    assert sampler.peaks["model_calls"] == model_threads  # an awaited model takes none
    assert inside.peak <= max_workers
    assert sampler.peak_workers <= max_threads + model_threads + max_workers
    figures.tasks(stats)
    figures.bounds(
        f"40 runs, 4 at once, 2 code + {model_threads} model threads ({model_kind} model)",
        sync=(inside.peak, max_workers),
        threads=(sampler.peak_workers, max_threads + model_threads + max_workers),
    )


async def test_calls_abandoned_before_their_thread_starts_release_their_slots(
    figures: Figures,
) -> None:
    """A timeout so short that the task gives up before a worker thread picks the call up:
    anyio then never runs the call, and the slot must still come back (regression: it leaked,
    and after `max_workers` such tasks every sync task waited forever)."""

    def quick(n: int) -> int:
        return n

    total = 300
    async with TaskRegistry(tools=[quick], limits=Limits(max_workers=4)) as registry:
        ids = [await registry.submit("tool", "quick", {"n": i}, timeout=1e-6) for i in range(total)]
        outcome = await within(30, registry.wait(ids))
        assert await registry._engine.runner.settle(5) == 0
        stats = registry.get_statistics()
        assert (stats["workers_in_use"], stats["live_threads"]) == (0, 0)
        after = await registry.submit("tool", "quick", {"n": -1})  # the pool still works
        assert (await within(5, registry.wait(after))).all_completed
        assert await registry.result(after) == -1
        stats = assert_all_final(registry)
    assert outcome.all_done and not outcome.pending
    figures.tasks(stats)
    figures.survived("call abandoned before its thread started", total)


async def test_runs_cancelled_before_their_controller_starts_release_their_slot(
    figures: Figures,
) -> None:
    agent = create_async_agent(model=ScriptedModel(["final_answer('ok')"]), max_concurrent_runs=1)
    cancelled = 0
    async with agent:
        for i in range(50):
            run = asyncio.create_task(agent.arun("go"))
            for _ in range(i % 4):  # cancel it at each step of its start, in turn
                await asyncio.sleep(0)
            run.cancel()
            await asyncio.wait({run})
            cancelled += run.cancelled()
        # with one controller slot, a leaked slot would make this wait forever
        assert await within(10, agent.arun("last")) == "ok"
        assert await agent._controller_threads.settle(5) == 0
        stats = assert_all_final(agent.task_manager)
    assert cancelled == 50
    figures.tasks(stats)
    figures.survived("run cancelled as it started", cancelled)
