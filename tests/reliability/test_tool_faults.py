"""Faults in tools: every way a tool can misbehave fails that task only, in a final state.

A tool may raise anything (even `SystemExit`, `KeyboardInterrupt` or an exception that cannot
be printed), hang past its timeout, or return something strange (unpicklable, huge, with a
broken `repr`). The task ends in a precise final state, the loop and the other tasks carry on,
and what the model reads about it stays bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentloop import Limits, TaskRegistry, TaskStatus, create_async_agent, result_of
from agentloop.testing import FunctionModel, last_observation, turn

from .figures import Figures
from .helpers import ThreadGate, assert_all_final, within

COPIES = 5
"""Faulty tasks of each kind per test, submitted together with healthy ones."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class CustomBase(BaseException):
    pass


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


class RaisingItems:
    def __getitem__(self, key: object) -> object:
        raise ValueError(f"no item {key!r}")


def raiser(make: Callable[[], BaseException]) -> tuple[Callable[[], None], Callable[[], Any]]:
    """A sync and an async tool that raise a fresh `make()` each call."""

    def sync_tool() -> None:
        raise make()

    async def async_tool() -> None:
        raise make()

    return sync_tool, async_tool


RAISED: dict[str, tuple[Callable[[], BaseException], str]] = {
    "ValueError": (lambda: ValueError("bad row 3"), "ValueError: bad row 3"),
    "SystemExit": (lambda: SystemExit(3), "SystemExit: 3"),
    "KeyboardInterrupt": (KeyboardInterrupt, "KeyboardInterrupt"),
    "BaseException subclass": (lambda: CustomBase("odd"), "CustomBase: odd"),
    "unprintable exception": (Unprintable, "Unprintable"),
    "10 MB message": (lambda: ValueError("x" * 10_000_000), "ValueError: xxx"),
}


async def healthy(n: int) -> int:
    return n


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("kind", list(RAISED))
async def test_a_tool_that_raises_fails_only_its_task(
    kind: str, flavour: str, figures: Figures
) -> None:
    make, expected = RAISED[kind]
    sync_tool, async_tool = raiser(make)
    tool = sync_tool if flavour == "sync" else async_tool
    async with TaskRegistry(
        tools={"faulty": tool, "healthy": healthy}, limits=Limits(retry_backoff=0)
    ) as registry:
        bad = [await registry.submit("tool", "faulty", retries=i % 2) for i in range(COPIES)]
        good = [await registry.submit("tool", "healthy", {"n": i}) for i in range(COPIES)]
        outcome = await within(10, registry.wait(bad + good))
        infos = [registry.get(task_id) for task_id in bad]
        assert await registry.results(good) == {t: i for i, t in enumerate(good)}
        stats = assert_all_final(registry)

    assert outcome.completed == tuple(good) and outcome.failed == tuple(bad)
    for i, info in enumerate(infos):
        assert info.status is TaskStatus.FAILED
        assert info.error is not None and info.error.startswith(expected)
        assert len(info.error) <= 5000  # the text a model may read is bounded
        assert info.attempts == 1 + i % 2  # retried, and failed again
    figures.tasks(stats)
    figures.survived(f"tool raised {kind}", COPIES)


async def test_a_tool_that_raises_cancelled_error_by_itself_ends_cancelled(
    figures: Figures,
) -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError()  # e.g. it awaited something another party cancelled

    async with TaskRegistry(tools=[gives_up, healthy]) as registry:
        bad = [await registry.submit("tool", "gives_up") for _ in range(COPIES)]
        good = await registry.submit("tool", "healthy", {"n": 1})
        await within(10, registry.wait([*bad, good]))
        statuses = {registry.get(t).status for t in bad}
        assert await registry.result(good) == 1
        stats = assert_all_final(registry)
    assert statuses == {TaskStatus.CANCELLED}
    figures.tasks(stats)
    figures.survived("tool raised CancelledError", COPIES)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_tool_that_hangs_past_its_timeout_times_out(flavour: str, figures: Figures) -> None:
    gate = ThreadGate(asyncio.get_running_loop())

    def hangs_sync() -> None:
        gate.pass_through()

    async def hangs_async() -> None:
        await asyncio.Event().wait()

    tool = hangs_sync if flavour == "sync" else hangs_async
    attempts = sum(1 + i % 2 for i in range(COPIES))  # odd tasks are retried once
    limits = Limits(max_workers=attempts, retry_backoff=0, thread_grace=10)
    try:
        async with TaskRegistry(
            tools={"hangs": tool, "healthy": healthy}, limits=limits
        ) as registry:
            ids = [
                await registry.submit("tool", "hangs", timeout=0.05, retries=i % 2)
                for i in range(COPIES)
            ]
            outcome = await within(10, registry.wait(ids))
            good = await registry.submit("tool", "healthy", {"n": 2})  # async: no worker needed
            assert await within(5, registry.wait(good))
            if flavour == "sync":
                # every abandoned thread still runs and keeps its slot until it ends
                stats = registry.get_statistics()
                assert stats["workers_in_use"] == stats["live_threads"] == attempts
                assert gate.entered == attempts
                gate.open()
                await gate.wait_left(attempts)
            stats = assert_all_final(registry)
    finally:
        gate.open()
    assert outcome.failed == tuple(ids)
    assert {registry.get(t).status for t in ids} == {TaskStatus.TIMED_OUT}
    assert registry.get_statistics()["live_threads"] == 0
    figures.tasks(stats)
    figures.survived("tool hung past its timeout", COPIES)


def test_strange_results_come_back_as_they_are(figures: Figures) -> None:
    """Unpicklable, huge and unprintable results complete; the model reads bounded text."""
    lock = threading.Lock()
    generator = (i for i in range(3))
    huge_text = "y" * 20_000_000
    huge_list = list(range(2_000_000))
    broken = BrokenRepr()
    values: dict[str, Any] = {
        "lock": lock,
        "lambda": lambda: 1,
        "generator": generator,
        "huge_text": huge_text,
        "huge_list": huge_list,
        "broken_repr": broken,
    }

    async def produce(kind: str) -> Any:
        return values[kind]

    def produce_sync(kind: str) -> Any:
        return values[kind]

    code = """
ids = {}
for kind in KINDS:
    ids[kind] = submit_task("tool", "produce", {"kind": kind})
    ids[kind + "_sync"] = submit_task("tool", "produce_sync", {"kind": kind})
wait_for_tasks(list(ids.values()))
results = get_task_results(list(ids.values()))
same = all(results[ids[k]] is results[ids[k + "_sync"]] for k in KINDS)
lines = [check_task(i, format="detailed") for i in ids.values()] + [list_tasks(limit=20)]
lengths = {k: len(results[ids[k]]) for k in ("huge_text", "huge_list")}
final_answer({"same": same, "longest": max(len(line) for line in lines), "lengths": lengths})
"""

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return f"KINDS = {sorted(values)!r}\n" + code
        raise AssertionError(f"unexpected second step: {last_observation(messages)[:2000]}")

    agent = create_async_agent(
        tools=[produce, produce_sync], model=FunctionModel(reply), max_steps=2
    )
    try:
        started = time.monotonic()
        answer = agent.run("produce strange values")
        seconds = time.monotonic() - started
        stats = assert_all_final(agent.task_manager)
    finally:
        agent.shutdown()
    assert answer["same"] is True  # each value came back as the very object (not a copy)
    assert answer["lengths"] == {"huge_text": len(huge_text), "huge_list": len(huge_list)}
    assert answer["longest"] <= 2 * 2000 + 200  # bounded by ToolSettings.max_output_chars
    assert seconds < 10  # rendering a huge result never walks all of it
    figures.tasks(stats)
    figures.survived("tool returned an unpicklable value", 6)
    figures.survived("tool returned a huge value", 4)
    figures.survived("tool returned a value with a broken repr", 2)


async def test_a_result_path_into_a_value_that_raises_fails_the_dependent(
    figures: Figures,
) -> None:
    async def odd() -> RaisingItems:
        return RaisingItems()

    async def use(x: Any = None) -> Any:
        return x

    async with TaskRegistry(tools=[odd, use]) as registry:
        up = await registry.submit("tool", "odd")
        downs = [
            await registry.submit("tool", "use", {"x": result_of(up, "k", i)})
            for i in range(COPIES)
        ]
        outcome = await within(10, registry.wait([up, *downs]))
        infos = [registry.get(d) for d in downs]
        stats = assert_all_final(registry)
    assert outcome.completed == (up,) and outcome.failed == tuple(downs)
    for info in infos:
        assert info.status is TaskStatus.FAILED
        assert "step 'k' does not exist" in (info.error or "")
    figures.tasks(stats)
    figures.survived("result path raised", COPIES)


async def test_a_sync_tool_returning_a_coroutine_fails_with_advice(figures: Figures) -> None:
    async def later() -> int:
        return 1

    def forgot_async() -> Any:
        return later()

    async with TaskRegistry(tools=[forgot_async]) as registry:
        ids = [await registry.submit("tool", "forgot_async") for _ in range(COPIES)]
        await within(10, registry.wait(ids))
        errors = {registry.get(t).error for t in ids}
        stats = assert_all_final(registry)
    [error] = errors
    assert error is not None and "declare it `async def`" in error
    figures.tasks(stats)
    figures.survived("sync tool returned a coroutine", COPIES)
