"""`RunScope.submit_threadsafe`: submitting from a plain thread without a round trip."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from agentloop import (
    DuplicateTaskIdError,
    Limits,
    QuotaExceededError,
    RegistryClosedError,
    TaskRegistry,
    TaskStatus,
    UnknownTargetError,
)

request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


async def echo(x: int) -> int:
    return x


async def whose() -> str:
    return request.get()


async def test_tasks_submitted_from_a_thread_are_found_by_the_next_call() -> None:
    async with TaskRegistry(tools=[echo]) as registry, registry.scope() as scope:
        loop = asyncio.get_running_loop()

        def controller() -> dict[str, object]:
            ids = [scope.submit_threadsafe("tool", "echo", {"x": i}) for i in range(50)]
            # the next call through the loop is queued behind every start above
            asyncio.run_coroutine_threadsafe(scope.wait(ids), loop).result(10)
            return asyncio.run_coroutine_threadsafe(scope.results(ids), loop).result(10)

        results = await asyncio.to_thread(controller)
    assert list(results.values()) == list(range(50))


async def test_errors_are_raised_in_the_calling_thread_at_once() -> None:
    async with TaskRegistry(tools=[echo]) as registry, registry.scope() as scope:

        def controller() -> list[str]:
            errors = []
            scope.submit_threadsafe("tool", "echo", {"x": 1}, task_id="dup")
            for call in (
                lambda: scope.submit_threadsafe("tool", "ecco", {"x": 1}),
                lambda: scope.submit_threadsafe("tool", "echo", {"x": 2}, task_id="dup"),
            ):
                try:
                    call()
                except Exception as exc:
                    errors.append(type(exc).__name__)
            return errors

        errors = await asyncio.to_thread(controller)
        assert errors == [UnknownTargetError.__name__, DuplicateTaskIdError.__name__]
        await scope.wait(["dup"])
        assert await scope.result("dup") == 1


async def test_quota_counts_tasks_not_yet_started() -> None:
    limits = Limits(max_tasks_per_scope=3)
    async with TaskRegistry(tools=[echo], limits=limits) as registry, registry.scope() as scope:

        def controller() -> None:
            for i in range(3):
                scope.submit_threadsafe("tool", "echo", {"x": i})
            scope.submit_threadsafe("tool", "echo", {"x": 3})

        with pytest.raises(QuotaExceededError):
            await asyncio.to_thread(controller)


async def test_the_task_runs_in_the_calling_threads_context() -> None:
    async with TaskRegistry(tools=[whose]) as registry, registry.scope() as scope:
        loop = asyncio.get_running_loop()

        def controller() -> object:
            request.set("thread-7")
            task_id = scope.submit_threadsafe("tool", "whose")
            asyncio.run_coroutine_threadsafe(scope.wait(task_id), loop).result(10)
            return asyncio.run_coroutine_threadsafe(scope.result(task_id), loop).result(10)

        assert await asyncio.to_thread(controller) == "thread-7"


async def test_a_start_that_arrives_after_the_scope_closed_is_cancelled() -> None:
    async with TaskRegistry(tools=[echo]) as registry:
        scope = registry.open_scope()
        from agentloop.engine._submission import check_submission

        checked = check_submission(registry._engine, "tool", "echo", {"x": 1}, None, (), None, 0)
        with scope._table.lock:
            record, upstream = scope._reserve(checked)
        await scope.aclose()
        scope._launch(record, upstream, None)
        info = scope.get(record.task_id)
        assert info.status is TaskStatus.CANCELLED
        assert info.error == "run ended first"
        stats = registry.get_statistics()
        assert (stats["pending"], stats["running"]) == (0, 0)


async def test_submit_threadsafe_needs_a_bound_loop() -> None:
    registry = TaskRegistry(tools=[echo])
    scope = registry._root
    with pytest.raises(RegistryClosedError, match="no running event loop"):
        scope.submit_threadsafe("tool", "echo", {"x": 1})
