"""How targets run: async on the loop, sync in bounded worker threads, failures contained."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from agentloop import Limits, TaskFailure, TaskRegistry, TaskStatus

from .conftest import Gate


async def test_async_targets_run_on_the_loop_thread() -> None:
    loop_thread = threading.get_ident()

    async def where() -> int:
        return threading.get_ident()

    async with TaskRegistry(tools=[where]) as registry:
        task_id = await registry.submit("tool", "where")
        await registry.wait(task_id)
        assert await registry.result(task_id) == loop_thread


async def test_sync_targets_run_in_worker_threads_bounded_by_max_workers(gate: Gate) -> None:
    def work() -> str:
        gate.pass_through()
        return threading.current_thread().name

    async with TaskRegistry(tools=[work], max_workers=2) as registry:
        ids = [await registry.submit("tool", "work") for _ in range(5)]
        await gate.wait_entered(2)
        stats = registry.get_statistics()
        assert (stats["running"], stats["pending"], stats["workers_in_use"]) == (2, 3, 2)
        gate.open()
        outcome = await registry.wait(ids)
    assert outcome.all_completed
    assert gate.max_inside == 2
    names = set((await registry.results(ids)).values())
    assert all(name != threading.main_thread().name for name in names)


async def test_async_targets_are_bounded_by_max_async_tasks() -> None:
    inside = 0
    peak = 0
    release = asyncio.Event()
    three_inside = asyncio.Event()

    async def work() -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        if inside == 3:
            three_inside.set()
        await release.wait()
        inside -= 1

    async with TaskRegistry(tools=[work], limits=Limits(max_async_tasks=3)) as registry:
        ids = [await registry.submit("tool", "work") for _ in range(7)]
        await three_inside.wait()
        assert registry.get_statistics()["pending"] == 4
        release.set()
        assert (await registry.wait(ids)).all_completed
    assert peak == 3


async def test_per_target_limit_holds(gate: Gate) -> None:
    def query_db() -> None:
        gate.pass_through()

    def other() -> None:
        gate.pass_through()

    limits = Limits(max_workers=5, target_limits={"query_db": 2})
    async with TaskRegistry(tools=[query_db, other], limits=limits) as registry:
        ids = [await registry.submit("tool", "query_db") for _ in range(6)]
        ids.append(await registry.submit("tool", "other"))
        await gate.wait_entered(3)  # two query_db and the other tool
        assert registry.get_statistics()["workers_in_use"] == 3
        gate.open()
        assert (await registry.wait(ids)).all_completed
    assert gate.max_inside == 3


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, ValueError])
async def test_any_exception_from_a_sync_tool_fails_only_that_task(
    exc_type: type[BaseException],
) -> None:
    def explode() -> None:
        raise exc_type("boom")

    async with TaskRegistry(tools=[explode]) as registry:
        task_id = await registry.submit("tool", "explode")
        outcome = await registry.wait(task_id)
        info = registry.get(task_id)
    assert outcome.failed == (task_id,)
    assert info.status is TaskStatus.FAILED
    assert info.error == f"{exc_type.__name__}: boom"


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, RuntimeError])
async def test_any_exception_from_an_async_tool_fails_only_that_task(
    exc_type: type[BaseException],
) -> None:
    async def explode() -> None:
        raise exc_type("boom")

    async with TaskRegistry(tools=[explode]) as registry:
        task_id = await registry.submit("tool", "explode")
        await registry.wait(task_id)
        result = (await registry.results([task_id]))[task_id]
    assert isinstance(result, TaskFailure)
    assert not result
    assert "FAILED" in str(result) and f"{exc_type.__name__}: boom" in str(result)


async def test_timed_out_sync_task_is_final_at_once_but_keeps_its_slot(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    async with TaskRegistry(tools=[stuck], max_workers=1) as registry:
        task_id = await registry.submit("tool", "stuck", timeout=0.05)
        outcome = await registry.wait(task_id)
        assert registry.get(task_id).status is TaskStatus.TIMED_OUT
        assert outcome.failed == (task_id,)
        stats = registry.get_statistics()
        assert stats["workers_in_use"] == 1 and stats["live_threads"] == 1
        follower = await registry.submit("tool", "stuck")
        await asyncio.sleep(0.05)
        assert registry.get(follower).status is TaskStatus.PENDING  # slot still taken
        gate.open()
        assert (await registry.wait(follower, timeout=5)).all_completed
    assert gate.max_inside == 1


async def test_cancelled_sync_task_is_marked_at_once(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    async with TaskRegistry(tools=[stuck], max_workers=1) as registry:
        task_id = await registry.submit("tool", "stuck")
        await gate.wait_entered(1)
        info = await registry.cancel(task_id)
        assert info.status is TaskStatus.CANCELLED
        assert registry.get_statistics()["live_threads"] == 1
        gate.open()


async def test_async_timeout_cancels_the_coroutine() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with TaskRegistry(tools=[forever]) as registry:
        task_id = await registry.submit("tool", "forever", timeout=0.01)
        await registry.wait(task_id)
        assert registry.get(task_id).status is TaskStatus.TIMED_OUT
        assert cancelled.is_set()


async def test_a_tools_own_timeout_error_is_a_failure_not_a_timeout() -> None:
    async def flaky() -> None:
        raise TimeoutError("upstream slow")

    async with TaskRegistry(tools=[flaky]) as registry:
        task_id = await registry.submit("tool", "flaky", timeout=10)
        await registry.wait(task_id)
        assert registry.get(task_id).status is TaskStatus.FAILED


async def test_retries_run_again_and_report_each_attempt() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"attempt {calls}")
        return "ok"

    async with TaskRegistry(tools=[flaky], limits=Limits(retry_backoff=0.0)) as registry:
        task_id = await registry.submit("tool", "flaky", retries=2)
        await registry.wait(task_id)
        info = registry.get(task_id)
        stats = registry.get_statistics()
    assert (info.status, info.result, info.attempts) == (TaskStatus.COMPLETED, "ok", 3)
    assert stats["total_retries"] == 2


async def test_retries_exhausted_report_the_last_error() -> None:
    async def broken() -> None:
        raise ConnectionError("down")

    async with TaskRegistry(tools=[broken], limits=Limits(retry_backoff=0.0)) as registry:
        task_id = await registry.submit("tool", "broken", retries=1)
        await registry.wait(task_id)
        info = registry.get(task_id)
    assert (info.status, info.attempts, info.error) == (
        TaskStatus.FAILED,
        2,
        "ConnectionError: down",
    )


async def test_retry_backoff_grows_exponentially_with_jitter() -> None:
    """Pause n is drawn from the upper half of retry_backoff * 2**(n-1), capped."""
    from agentloop.engine._runner import TaskRunner

    limits = Limits(retry_backoff=0.02, retry_backoff_max=0.05)
    async with TaskRegistry(limits=limits) as registry:
        runner: TaskRunner = registry._engine.runner
        pauses = [[runner._backoff(attempt) for _ in range(200)] for attempt in (1, 2, 3)]
    for pause, ceiling in zip(pauses, (0.02, 0.04, 0.05), strict=True):
        assert ceiling / 2 <= min(pause) and max(pause) <= ceiling
        assert len(set(pause)) > 100  # drawn at random: retries of one burst spread out


async def test_retries_pause_between_attempts() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def broken() -> None:
        starts.append(loop.time())
        raise ConnectionError("down")

    limits = Limits(retry_backoff=0.02, retry_backoff_max=1.0)
    async with TaskRegistry(tools=[broken], limits=limits) as registry:
        await registry.wait(await registry.submit("tool", "broken", retries=2))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02


async def test_loop_stays_responsive_while_sync_tools_block(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    async with TaskRegistry(tools=[stuck], max_workers=3) as registry:
        ids = [await registry.submit("tool", "stuck") for _ in range(3)]
        await gate.wait_entered(3)
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 20
        gate.open()
        await registry.wait(ids)


async def test_statistics_have_the_predecessor_keys(registry: TaskRegistry) -> None:
    stats = registry.get_statistics()
    for key in (
        "total_submitted",
        "total_completed",
        "total_failed",
        "pending",
        "running",
        "available_tools",
        "available_agents",
    ):
        assert key in stats
    assert stats["available_tools"] == ["add", "mul"]
