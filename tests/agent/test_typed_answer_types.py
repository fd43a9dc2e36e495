"""What mypy sees of a typed run: `arun(task, output_type=X)` is an `X` for every face (the
agent's `arun` and `run`, a session's `arun`, a stream's `result()`), and `Any` without one.

`mypy` checks this file (pyproject's `[tool.mypy] files`): an `assert_type` that does not hold
fails the typecheck. pytest runs it too, so the same calls are checked at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, assert_type

from pydantic import BaseModel

from agentloop import AsyncAgent, RunStream, create_async_agent
from agentloop.testing import ScriptedModel


class Invoice(BaseModel):
    number: str
    total: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


def agent_answering(*steps: str) -> AsyncAgent:
    return create_async_agent(model=ScriptedModel(list(steps)))


async def test_arun_is_typed_by_its_output_type() -> None:
    agent = agent_answering('final_answer({"number": "A", "total": 1})')
    invoice = await agent.arun("Bill.", output_type=Invoice)
    assert_type(invoice, Invoice)
    assert invoice.total == 1.0


async def test_a_generic_alias_is_its_type_and_no_output_type_is_any() -> None:
    agent = agent_answering("final_answer([1, 2])")
    numbers = await agent.arun("Count.", output_type=list[int])
    assert_type(numbers, list[int])
    untyped = await agent.arun("Count.")
    assert_type(untyped, Any)
    assert numbers == untyped == [1, 2]


async def test_a_stream_and_a_session_turn_are_typed() -> None:
    agent = agent_answering('final_answer({"x": 1, "y": 2})')
    stream = agent.astream("Point.", output_type=Point)
    assert_type(stream, RunStream[Point])
    async with stream:
        point = await stream.result()
    assert_type(point, Point)
    async with agent.session() as session:
        again = await session.arun("Point.", output_type=Point)
        assert_type(again, Point)
    assert point == again == Point(1, 2)


def test_the_blocking_face_is_typed() -> None:
    agent = agent_answering('final_answer({"x": 3, "y": 4})')
    with agent:
        point = agent.run("Point.", output_type=Point)
    assert_type(point, Point)
    assert point == Point(3, 4)
