"""Run scopes: isolation, quotas, history, and closing that settles everything."""

from __future__ import annotations

import asyncio

import pytest

from agentloop import (
    Limits,
    QuotaExceededError,
    RegistryClosedError,
    TaskRegistry,
    TaskStatus,
    UnknownTaskError,
)

from .conftest import Gate


async def forever() -> None:
    await asyncio.Event().wait()


async def quick(x: int = 0) -> int:
    return x


async def test_a_scope_cannot_see_another_scopes_tasks() -> None:
    async with TaskRegistry(tools=[quick]) as registry:
        async with registry.scope() as one, registry.scope() as two:
            mine = await one.submit("tool", "quick", task_id="secret")
            with pytest.raises(UnknownTaskError, match="no task `secret`"):
                two.get(mine)
            with pytest.raises(UnknownTaskError):
                await two.wait([mine])
            with pytest.raises(UnknownTaskError):
                await two.results([mine])
            with pytest.raises(UnknownTaskError):
                await two.cancel(mine)
            assert two.list() == []
            with pytest.raises(UnknownTaskError):
                registry.get(mine)  # the root scope is a scope like any other
            # the same id may be chosen independently in each scope
            theirs = await two.submit("tool", "quick", {"x": 7}, task_id="secret")
            await one.wait(mine)
            await two.wait(theirs)
            assert (await one.result(mine), await two.result(theirs)) == (0, 7)


async def test_closing_a_scope_cancels_and_settles_its_unfinished_tasks(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    async with TaskRegistry(tools=[forever, stuck, quick]) as registry:
        async with registry.scope() as scope:
            done = await scope.submit("tool", "quick")
            await scope.wait(done)
            a = await scope.submit("tool", "forever")
            s = await scope.submit("tool", "stuck")
            p = await scope.submit("tool", "quick", depends_on=[a])
            await gate.wait_entered(1)
        statuses = {task.task_id: task.status for task in scope.list()}
        assert statuses == {
            done: TaskStatus.COMPLETED,
            a: TaskStatus.CANCELLED,
            s: TaskStatus.CANCELLED,
            p: TaskStatus.CANCELLED,
        }
        stats = registry.get_statistics()
        assert (stats["pending"], stats["running"], stats["open_scopes"]) == (0, 0, 0)
        with pytest.raises(RegistryClosedError):
            await scope.submit("tool", "quick")
        gate.open()


async def test_scope_closes_even_when_its_block_raises() -> None:
    async with TaskRegistry(tools=[forever]) as registry:
        with pytest.raises(RuntimeError, match="app failed"):
            async with registry.scope() as scope:
                task_id = await scope.submit("tool", "forever")
                raise RuntimeError("app failed")
        assert scope.get(task_id).status is TaskStatus.CANCELLED


async def test_task_quota_per_scope() -> None:
    async with TaskRegistry(tools=[quick], limits=Limits(max_tasks_per_scope=3)) as registry:
        async with registry.scope() as scope:
            for _ in range(3):
                await scope.submit("tool", "quick")
            with pytest.raises(QuotaExceededError, match="limit of 3 tasks"):
                await scope.submit("tool", "quick")
            assert len(scope.list()) == 3


async def test_history_keeps_the_newest_finished_tasks() -> None:
    async with TaskRegistry(tools=[quick], limits=Limits(max_history=3)) as registry:
        ids = [await registry.submit("tool", "quick", {"x": i}) for i in range(5)]
        await registry.wait(ids[-1])
        for _ in range(3):
            await asyncio.sleep(0)
        assert [t.task_id for t in registry.list()] == ids[2:]
        with pytest.raises(UnknownTaskError, match="evicted"):
            registry.get(ids[0])


async def test_list_filters_by_status_and_limits() -> None:
    async with TaskRegistry(tools=[quick, forever]) as registry:
        q = [await registry.submit("tool", "quick") for _ in range(3)]
        f = await registry.submit("tool", "forever")
        await registry.wait(q)
        assert [t.task_id for t in registry.list(status="completed", limit=2)] == q[1:]
        assert [t.task_id for t in registry.list(status=TaskStatus.RUNNING)] == [f]
        with pytest.raises(
            Exception, match=r"unknown status 'complete'\. Did you mean `completed`"
        ):
            registry.list(status="complete")


async def test_aclose_settles_everything_and_refuses_new_work(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    registry = TaskRegistry(tools=[stuck, forever], limits=Limits(thread_grace=0.05))
    a = await registry.submit("tool", "forever")
    s = await registry.submit("tool", "stuck")
    await gate.wait_entered(1)
    await registry.aclose()
    assert registry.get(a).status is TaskStatus.CANCELLED
    assert registry.get(s).status is TaskStatus.CANCELLED
    with pytest.raises(RegistryClosedError):
        await registry.submit("tool", "forever")
    with pytest.raises(RegistryClosedError):
        registry.open_scope()
    gate.open()
    await registry.aclose()  # idempotent


async def test_aclose_waits_for_abandoned_threads_within_grace(gate: Gate) -> None:
    def stuck() -> None:
        gate.pass_through()

    registry = TaskRegistry(tools=[stuck], limits=Limits(thread_grace=5))
    await registry.submit("tool", "stuck", timeout=0.01)
    await gate.wait_entered(1)
    closing = asyncio.create_task(registry.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waiting for the thread, within grace
    gate.open()
    await asyncio.wait_for(closing, 5)
    assert registry.get_statistics()["live_threads"] == 0


async def test_nested_submit_and_wait_cannot_deadlock_at_one_worker() -> None:
    """A sync task holding the only worker slot submits and waits on two more sync tasks."""
    registry = TaskRegistry(max_workers=1)
    loop = asyncio.get_running_loop()

    def leaf(x: int) -> int:
        return x * 10

    def parent() -> int:
        async def fan_out() -> int:
            ids = [await registry.submit("tool", "leaf", {"x": i}) for i in (1, 2)]
            await registry.wait(ids)
            return sum((await registry.results(ids)).values())

        return asyncio.run_coroutine_threadsafe(fan_out(), loop).result(10)

    registry.register_tools([leaf, parent])
    async with registry:
        top = await registry.submit("tool", "parent")
        outcome = await registry.wait(top, timeout=10)
        assert outcome.all_completed, outcome
        assert await registry.result(top) == 30
        assert registry.get_statistics()["workers_in_use"] == 0


async def test_nested_async_fan_out_at_one_async_slot() -> None:
    registry = TaskRegistry(limits=Limits(max_async_tasks=1))

    async def leaf(x: int) -> int:
        return x

    async def parent() -> int:
        ids = [await registry.submit("tool", "leaf", {"x": i}) for i in range(3)]
        await registry.wait(ids)
        return sum((await registry.results(ids)).values())

    registry.register_tools([leaf, parent])
    async with registry:
        top = await registry.submit("tool", "parent")
        assert (await registry.wait(top, timeout=10)).all_completed
        assert await registry.result(top) == 3
