"""The task event stream reports every transition, per scope or for the whole registry."""

from __future__ import annotations

import asyncio

from agentloop import Limits, TaskEventKind, TaskRegistry


async def test_events_follow_a_task_through_retry_and_completion() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("once")
        return "ok"

    async def boom() -> None:
        raise ValueError("no")

    async with TaskRegistry(tools=[flaky, boom], limits=Limits(retry_backoff=0)) as registry:
        seen: list[tuple[str, TaskEventKind]] = []

        async def collect() -> None:
            async for event in registry.events():
                seen.append((event.task_id, event.kind))

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0)
        a = await registry.submit("tool", "flaky", retries=1)
        b = await registry.submit("tool", "boom")
        await registry.wait([a, b])
        await registry.aclose()
        await asyncio.wait_for(collector, 1)
    assert [kind for task_id, kind in seen if task_id == a] == [
        TaskEventKind.SUBMITTED,
        TaskEventKind.STARTED,
        TaskEventKind.RETRIED,
        TaskEventKind.COMPLETED,
    ]
    assert [kind for task_id, kind in seen if task_id == b] == [
        TaskEventKind.SUBMITTED,
        TaskEventKind.STARTED,
        TaskEventKind.FAILED,
    ]


async def test_scope_events_are_only_that_scopes() -> None:
    async def quick() -> None:
        return None

    async with TaskRegistry(tools=[quick]) as registry:
        async with registry.scope() as one, registry.scope() as two:
            stream = one.events()
            mine = await one.submit("tool", "quick")
            await two.submit("tool", "quick")
            await one.wait(mine)
            first = await anext(stream)
            assert (first.task_id, first.kind, first.scope_id) == (
                mine,
                TaskEventKind.SUBMITTED,
                one.scope_id,
            )
            kinds = [(await anext(stream)).kind for _ in range(2)]
            assert kinds == [TaskEventKind.STARTED, TaskEventKind.COMPLETED]
            await stream.aclose()


async def test_timeouts_and_cancellations_are_reported() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async with TaskRegistry(tools=[forever]) as registry:
        stream = registry.events()
        late = await registry.submit("tool", "forever", timeout=0.01)
        stopped = await registry.submit("tool", "forever")
        await registry.wait(late)
        await registry.cancel(stopped)
        kinds = {}
        for _ in range(6):
            event = await anext(stream)
            kinds.setdefault(event.task_id, []).append(event.kind)
        await stream.aclose()
    assert kinds[late][-1] is TaskEventKind.TIMED_OUT
    assert kinds[stopped][-1] is TaskEventKind.CANCELLED
