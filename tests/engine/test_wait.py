"""Waiting is event-driven, bounded, and says what is still pending."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from agentloop import InvalidArgumentsError, TaskRegistry


@pytest.fixture
async def gated() -> object:
    events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def hold(key: str) -> str:
        await events[key].wait()
        return key

    async with TaskRegistry(tools=[hold]) as registry:
        yield registry, events


async def test_wait_with_timeout_returns_on_time_and_names_pending(gated) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    a = await registry.submit("tool", "hold", {"key": "a"})
    b = await registry.submit("tool", "hold", {"key": "b"})
    events["a"].set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await registry.wait([a, b], timeout=0.05)
    elapsed = loop.time() - started
    assert outcome.timed_out and outcome.completed == (a,) and outcome.pending == (b,)
    assert 0.04 <= elapsed < 1.0
    assert "still pending" in str(outcome) and b in str(outcome)
    events["b"].set()


async def test_wait_any_returns_at_the_first_completion(gated) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    a = await registry.submit("tool", "hold", {"key": "a"})
    b = await registry.submit("tool", "hold", {"key": "b"})
    events["b"].set()
    outcome = await registry.wait([a, b], return_when="any", timeout=5)
    assert outcome.completed == (b,) and outcome.pending == (a,) and not outcome.timed_out
    events["a"].set()


async def test_wait_any_on_an_already_finished_task_returns_at_once(gated) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    a = await registry.submit("tool", "hold", {"key": "a"})
    events["a"].set()
    await registry.wait(a)
    b = await registry.submit("tool", "hold", {"key": "b"})
    outcome = await registry.wait([a, b], return_when="any")
    assert outcome.completed == (a,) and outcome.pending == (b,)
    events["b"].set()


async def test_waiter_wakes_when_the_task_ends_not_on_a_timer(gated) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    a = await registry.submit("tool", "hold", {"key": "a"})
    waiter = asyncio.create_task(registry.wait(a, timeout=30))
    events["a"].set()
    outcome = await asyncio.wait_for(waiter, timeout=1)
    assert outcome.all_completed and outcome.waited_seconds < 1


async def test_single_id_string_is_accepted(gated) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    events["a"].set()
    a = await registry.submit("tool", "hold", {"key": "a"})
    assert (await registry.wait(a)).completed == (a,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "non-negative number"),
        ({"return_when": "first"}, "'all' or 'any'"),
    ],
)
async def test_bad_wait_options(gated, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    registry, events = gated
    events["a"].set()
    a = await registry.submit("tool", "hold", {"key": "a"})
    with pytest.raises(InvalidArgumentsError, match=message):
        await registry.wait([a], **kwargs)


async def test_non_string_id_is_refused(gated) -> None:  # type: ignore[no-untyped-def]
    registry, _ = gated
    with pytest.raises(InvalidArgumentsError, match="task id must be a string"):
        await registry.wait([42])
