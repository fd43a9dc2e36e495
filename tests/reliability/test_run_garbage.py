"""A finished run is freed by reference counting, not left to the cyclic garbage collector.

A run's controller, tools, callbacks, scope and journal log point at each other; left so,
every run was ~230 objects of cyclic garbage, and a process of many runs paid for them in
full collections (a service's 200 runs: 120 ms pauses). Each run lets go of its back
references when it ends; these tests collect with `DEBUG_SAVEALL` and look for any of it."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentloop import SQLiteJournal, create_async_agent
from agentloop.testing import FunctionModel

CODE = """
ids = [submit_task("tool", "tick", {"i": i}) for i in range(3)]
wait_for_tasks(ids)
y = tick(i=5)
final_answer(len(ids) + y)
"""


async def tick(i: int) -> int:
    """Return `i`.

    Args:
        i: a number.
    """
    await asyncio.sleep(0)
    return i


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    """Whatever the collector finds unreachable from now on, kept for the test to read."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[Any] = []
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _ours(garbage: list[Any]) -> Counter[str]:
    gc.collect()
    found = Counter(
        type(o).__qualname__
        for o in gc.garbage
        if type(o).__module__.startswith(("agentloop", "smolagents"))
    )
    gc.garbage.clear()
    return found


@pytest.mark.parametrize("journaled", [False, True], ids=["plain", "journaled"])
@pytest.mark.parametrize("streamed", [False, True], ids=["arun", "astream"])
async def test_finished_runs_leave_no_cyclic_garbage(
    tmp_path: Path, saved_garbage: list[Any], journaled: bool, streamed: bool
) -> None:
    journal = SQLiteJournal(tmp_path / "j.db") if journaled else None
    agent = create_async_agent(tools=[tick], model=FunctionModel(lambda _: CODE), journal=journal)
    async with agent:
        for _ in range(3):
            if streamed:
                async with agent.astream("go") as stream:
                    kinds = [event.kind.value async for event in stream]
                assert kinds[-1] == "final_answer"
            else:
                assert await agent.arun("go") == 8
        assert _ours(saved_garbage) == Counter()  # the agent's own cycles are its to keep


async def test_a_failed_run_leaves_no_cyclic_garbage(
    tmp_path: Path, saved_garbage: list[Any]
) -> None:
    agent = create_async_agent(
        tools=[tick],
        model=FunctionModel(lambda _: "raise ValueError('no')"),
        journal=SQLiteJournal(tmp_path / "j.db"),
        max_steps=1,
    )
    async with agent:
        for _ in range(2):
            await agent.arun("go")
        assert _ours(saved_garbage) == Counter()


def test_dropping_step_tracebacks_runs_none_of_the_errors_own_code() -> None:
    """The errors in a controller's memory may be of classes the model's code defined, with
    properties under the exception's own names, or a cause chain linked into a loop."""
    from types import SimpleNamespace

    from agentloop.agent._run import _drop_tracebacks

    ran: list[str] = []

    class Hostile(Exception):
        @property  # type: ignore[override]
        def __traceback__(self) -> Any:
            ran.append("get traceback")
            return None

        @__traceback__.setter
        def __traceback__(self, value: Any) -> None:
            ran.append("set traceback")

        @property  # type: ignore[override]
        def __cause__(self) -> Any:
            ran.append("cause")
            return None

        def __bool__(self) -> bool:
            ran.append("bool")
            return False

    def raised(error: BaseException) -> BaseException:
        try:
            raise error
        except BaseException as caught:
            return caught

    hostile = raised(Hostile("boom"))
    first, second = raised(ValueError("a")), raised(KeyError("b"))
    first.__cause__, second.__cause__ = second, first  # a loop
    memory = SimpleNamespace(steps=[SimpleNamespace(error=hostile), SimpleNamespace(error=first)])
    _drop_tracebacks(SimpleNamespace(memory=memory))
    assert ran == []
    assert BaseException.__dict__["__traceback__"].__get__(hostile) is None
    assert first.__traceback__ is None and second.__traceback__ is None
