"""Typed answers (`arun(task, output_type=...)`): the model is shown the schema, a bad answer
goes back to it with what is wrong, the validated value comes out; through `arun`, streams,
sessions and the blocking face. Journaled typed runs are in tests/durability/test_typed_runs.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from agentloop import (
    AnswerValidationError,
    InvalidArgumentsError,
    RunEventKind,
    create_async_agent,
)
from agentloop.agent import _answer_data
from agentloop.testing import FunctionModel, ScriptedModel, last_observation, task_text, turn

pytestmark = pytest.mark.timeout(20)


class Invoice(BaseModel):
    number: str
    total: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


def replies(*steps: str) -> tuple[FunctionModel, list[str]]:
    """A model that replies with `steps` in order and keeps what it was shown before each
    reply after the first (the observation of its previous step)."""
    seen: list[str] = []

    def reply(messages: list[Any]) -> str:
        step = turn(messages)
        if step:
            seen.append(last_observation(messages))
        return steps[step]

    return FunctionModel(reply), seen


async def test_a_bad_answer_goes_back_to_the_model_and_the_corrected_one_is_returned() -> None:
    model, seen = replies(
        'final_answer({"number": "A-1", "total": "a lot"})',
        'final_answer({"number": "A-1", "total": 12.5})',
    )
    agent = create_async_agent(model=model)
    answer = await agent.arun("Bill the client.", output_type=Invoice)
    assert answer == Invoice(number="A-1", total=12.5)
    assert type(answer) is Invoice
    assert len(seen) == 1  # one correction
    assert "is not a valid `Invoice`" in seen[0]
    assert "`total`: Input should be a valid number" in seen[0]
    assert "try 1 of 3" in seen[0]


async def test_the_task_shows_the_schema_and_how_to_answer() -> None:
    shown: list[str] = []

    def reply(messages: list[Any]) -> str:
        shown.append(task_text(messages))
        return 'final_answer({"number": "A-1", "total": 1})'

    agent = create_async_agent(model=FunctionModel(reply))
    await agent.arun("Bill the client.", output_type=Invoice, output_retries=4)
    assert "Bill the client." in shown[0]
    assert '"total":{"title":"Total","type":"number"}' in shown[0]
    assert "final_answer(answer)" in shown[0]
    assert "up to 4 times" in shown[0]


@pytest.mark.parametrize(
    ("output_type", "code", "expected"),
    [
        (Point, 'final_answer({"x": 1, "y": "2"})', Point(1, 2)),
        (Movie, 'final_answer({"title": "Heat", "year": 1995})', {"title": "Heat", "year": 1995}),
        (list[int], "final_answer([1, 2, 3])", [1, 2, 3]),
        (list[int], "final_answer((1, 2))", [1, 2]),
        (int, 'final_answer("42")', 42),
        (str, 'final_answer("plain")', "plain"),
        (Literal["yes", "no"], 'final_answer("no")', "no"),
        (Invoice, """final_answer('{"number": "B", "total": 3}')""", Invoice(number="B", total=3)),
    ],
    ids=["dataclass", "typeddict", "list", "tuple-as-list", "int", "str", "literal", "json-text"],
)
async def test_each_kind_of_output_type(output_type: Any, code: str, expected: Any) -> None:
    agent = create_async_agent(model=ScriptedModel([code]))
    answer = await agent.arun("Answer.", output_type=output_type)
    assert answer == expected
    assert type(answer) is type(expected)


async def test_an_object_of_the_output_type_from_a_tool_is_accepted() -> None:
    def make_invoice(number: str) -> Invoice:
        """Make an invoice.

        Args:
            number: its number.
        """
        return Invoice(number=number, total=9.0)

    model = ScriptedModel(['final_answer(make_invoice(number="C-3"))'])
    agent = create_async_agent(tools=[make_invoice], model=model)
    answer = await agent.arun("Bill.", output_type=Invoice)
    assert answer == Invoice(number="C-3", total=9.0)


async def test_after_the_last_retry_the_run_fails_with_the_last_value() -> None:
    model = ScriptedModel(["final_answer({'total': 1})", "final_answer({'total': 2})"])
    agent = create_async_agent(model=model)
    expected = "not a valid `Invoice` after 1 correction"
    with pytest.raises(AnswerValidationError, match=expected) as e:
        await agent.arun("Bill.", output_type=Invoice, output_retries=1)
    assert e.value.last_value == {"total": 2}
    assert "`number`: Field required" in e.value.problem
    assert model.calls == 2  # no call after the last answer


async def test_no_retries_fails_on_the_first_bad_answer() -> None:
    model = ScriptedModel(["final_answer('not a number')"])
    agent = create_async_agent(model=model)
    with pytest.raises(AnswerValidationError) as e:
        await agent.arun("Count.", output_type=int, output_retries=0)
    assert e.value.last_value == "not a number"
    assert model.calls == 1


async def test_at_max_steps_the_text_answer_is_validated() -> None:
    def reply(messages: list[Any]) -> str:
        if turn(messages) == 0:
            return "x = 1"  # no final answer: smolagents asks for one at max_steps
        return '```json\n{"number": "D-4", "total": 7}\n```'

    agent = create_async_agent(model=FunctionModel(reply))
    answer = await agent.arun("Bill.", output_type=Invoice, max_steps=1)
    assert answer == Invoice(number="D-4", total=7)


async def test_at_max_steps_an_invalid_text_answer_fails_the_run() -> None:
    def reply(messages: list[Any]) -> str:
        return "x = 1" if turn(messages) == 0 else "```\nI could not do it.\n```"

    agent = create_async_agent(model=FunctionModel(reply))
    with pytest.raises(AnswerValidationError, match="at `max_steps`"):
        await agent.arun("Bill.", output_type=Invoice, max_steps=1)


async def test_the_users_own_final_answer_checks_still_run() -> None:
    checked: list[Any] = []

    def positive(answer: Any, memory: Any, agent: Any = None) -> bool:
        checked.append(answer)
        return True

    model = ScriptedModel(['final_answer({"number": "E", "total": 1})'])
    agent = create_async_agent(model=model, final_answer_checks=[positive])
    assert await agent.arun("Bill.", output_type=Invoice) == Invoice(number="E", total=1)
    assert checked == [{"number": "E", "total": 1}]


async def test_an_untyped_run_is_unchanged() -> None:
    agent = create_async_agent(model=ScriptedModel(['final_answer({"any": "thing"})']))
    assert await agent.arun("Anything.") == {"any": "thing"}


@pytest.mark.parametrize(
    ("output_type", "retries", "message"),
    [
        (object(), 2, "`output_type` must be a type pydantic can validate"),
        (Callable[[int], int], 2, "`output_type` must be a type pydantic can validate"),
        (Invoice, -1, "`output_retries` must be >= 0"),
        (Invoice, True, "`output_retries` must be an int"),
    ],
)
async def test_bad_arguments_are_refused_before_any_model_call(
    output_type: Any, retries: Any, message: str
) -> None:
    model = ScriptedModel(["final_answer(1)"])
    agent = create_async_agent(model=model)
    with pytest.raises(InvalidArgumentsError, match=message):
        await agent.arun("Go.", output_type=output_type, output_retries=retries)
    assert model.calls == 0


# -- hostile answers ------------------------------------------------------------------------------

HOSTILE = """
class Sly:
    def __eq__(self, other):
        raise RuntimeError("__eq__ ran")
    def __reduce__(self):
        raise RuntimeError("__reduce__ ran")
    def __iter__(self):
        raise RuntimeError("__iter__ ran")
    def __getattr__(self, name):
        raise RuntimeError("__getattr__ ran")
    def keys(self):
        raise RuntimeError("keys ran")
    def __hash__(self):
        return 1
    def __repr__(self):
        return "Sly()"
"""
"""A class the model's code defines: none of its methods but `__hash__` (a dict key's) and
`__repr__` (smolagents prints the step's output) may run."""


@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("final_answer(Sly())", "`Sly` object"),
        ('final_answer({"number": Sly(), "total": 1})', "`Sly` object"),
        ("final_answer([Sly()])", "`Sly` object"),
        ("final_answer({Sly(): 1})", "dict key of type `Sly`"),
        (
            "class Bag(dict):\n    def items(self):\n        raise RuntimeError('items ran')\n"
            "final_answer(Bag(number='K', total=1))",
            "`Bag` object",
        ),
    ],
    ids=["value", "field", "item", "key", "dict-subclass"],
)
async def test_an_object_the_model_defined_is_turned_down_unread(code: str, named: str) -> None:
    model, seen = replies(HOSTILE + code, 'final_answer({"number": "F", "total": 1})')
    agent = create_async_agent(model=model)
    assert await agent.arun("Bill.", output_type=Invoice) == Invoice(number="F", total=1)
    assert named in seen[0]
    assert "ran" not in seen[0]  # none of its methods was called


async def test_a_str_subclass_answer_becomes_a_plain_str() -> None:
    code = """
class Loud(str):
    def __str__(self):
        return "overridden"
final_answer(Loud("quiet"))
"""
    agent = create_async_agent(model=ScriptedModel([code]))
    answer = await agent.arun("Say.", output_type=str)
    assert answer == "quiet"
    assert type(answer) is str


async def test_a_huge_field_is_not_copied_into_the_observation() -> None:
    model, seen = replies(
        'final_answer({"number": "G", "total": "9" * 5_000_000 + "x"})',
        'final_answer({"number": "G", "total": 1})',
    )
    agent = create_async_agent(model=model)
    assert await agent.arun("Bill.", output_type=Invoice) == Invoice(number="G", total=1)
    assert len(seen[0]) < 2000


async def test_an_answer_beyond_the_size_bound_is_turned_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_answer_data, "MAX_SIZE", 1000)
    model, seen = replies('final_answer("y" * 1001)', 'final_answer("short")')
    agent = create_async_agent(model=model)
    assert await agent.arun("Say.", output_type=str) == "short"
    assert "more than 1,000 characters" in seen[0]


async def test_a_self_containing_answer_is_turned_down() -> None:
    model, seen = replies("a = []\na.append(a)\nfinal_answer(a)", "final_answer([])")
    agent = create_async_agent(model=model)
    assert await agent.arun("List.", output_type=list[Any]) == []
    assert "nested more than" in seen[0]


# -- streams, sessions, the blocking face --------------------------------------------------------


async def test_a_typed_stream_ends_with_the_json_form_and_results_in_the_instance() -> None:
    model = ScriptedModel(['final_answer({"number": "H", "total": "2.5"})'])
    agent = create_async_agent(model=model)
    async with agent.astream("Bill.", output_type=Invoice) as stream:
        events = [event async for event in stream]
    end = events[-1]
    assert end.kind is RunEventKind.FINAL_ANSWER
    assert end.to_dict()["answer"] == {"number": "H", "total": 2.5}
    result = await stream.result()
    assert result == Invoice(number="H", total=2.5)


async def test_a_failed_typed_stream_ends_with_run_failed() -> None:
    agent = create_async_agent(model=ScriptedModel(["final_answer(1)"]))
    async with agent.astream("Bill.", output_type=Invoice, output_retries=0) as stream:
        events = [event async for event in stream]
    assert events[-1].kind is RunEventKind.RUN_FAILED
    assert "AnswerValidationError" in (events[-1].error or "")
    with pytest.raises(AnswerValidationError):
        await stream.result()


async def test_a_session_turn_is_typed_and_the_next_one_need_not_be() -> None:
    model = ScriptedModel(
        [
            'final_answer({"number": "I", "total": 1})',
            'final_answer("thanks")',
        ]
    )
    agent = create_async_agent(model=model)
    async with agent.session() as session:
        first = await session.arun("Bill.", output_type=Invoice)
        second = await session.arun("Say thanks.")
    assert first == Invoice(number="I", total=1)
    assert second == "thanks"


async def test_a_session_stream_is_typed() -> None:
    agent = create_async_agent(model=ScriptedModel(['final_answer({"x": 1, "y": 2})']))
    async with agent.session() as session:
        async with session.astream("Point.", output_type=Point) as stream:
            events = [event async for event in stream]
        assert await stream.result() == Point(1, 2)
    assert events[-1].to_dict()["answer"] == {"x": 1, "y": 2}


def test_the_blocking_face_is_typed() -> None:
    agent = create_async_agent(model=ScriptedModel(['final_answer({"x": 3, "y": 4})']))
    with agent:
        assert agent.run("Point.", output_type=Point) == Point(3, 4)


async def test_concurrent_typed_runs_check_their_own_types() -> None:
    model = ScriptedModel(['final_answer({"x": 1, "y": 2, "number": "J", "total": 5})'])
    agent = create_async_agent(model=model)
    point, invoice = await asyncio.gather(
        agent.arun("Point.", output_type=Point),
        agent.arun("Bill.", output_type=Invoice),
    )
    assert point == Point(1, 2)
    assert invoice == Invoice(number="J", total=5)
