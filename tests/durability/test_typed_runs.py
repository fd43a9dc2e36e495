"""Typed runs with a journal: the answer is stored as its JSON form and comes back as the type;
the output type and the images are part of what a resumed run must match; a resumed typed run
replays its turned-down answers; a reopened session replays its typed turns without the type;
recovery leaves typed runs to their app. (Crash and resume across processes is tested with
subprocesses elsewhere in this folder; these run in one process.)"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel

from agentloop import (
    AnswerValidationError,
    JournalMismatchError,
    RegistryClosedError,
    create_async_agent,
)
from agentloop.journal import RunStatus
from agentloop.testing import FunctionModel, ScriptedModel, last_observation, turn

pytestmark = pytest.mark.timeout(30)


class Invoice(BaseModel):
    number: str
    total: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


WRONG = 'final_answer({"number": "A-1", "total": "a lot"})'
RIGHT = 'final_answer({"number": "A-1", "total": 12.5})'


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.sqlite"


async def test_the_json_form_is_stored_and_a_completed_run_answers_with_the_type(
    journal_path: Path,
) -> None:
    model = ScriptedModel([WRONG, RIGHT])
    agent = create_async_agent(model=model, journal=journal_path)
    async with agent:
        first = await agent.arun("Bill.", output_type=Invoice, run_id="bill-1")
        calls = model.calls
        again = await agent.arun(
            "Bill.", output_type=Invoice, run_id="bill-1", return_full_result=True
        )
        [summary] = await agent.runs()
    assert first == Invoice(number="A-1", total=12.5)
    assert again.resumed and again.output == first and type(again.output) is Invoice
    assert model.calls == calls  # the recorded answer, no model call
    assert summary.status is RunStatus.COMPLETED
    assert summary.answer == {"number": "A-1", "total": 12.5}  # plain data in the journal


async def test_another_output_type_is_a_mismatch(journal_path: Path) -> None:
    agent = create_async_agent(model=ScriptedModel([RIGHT]), journal=journal_path)
    async with agent:
        await agent.arun("Bill.", output_type=Invoice, run_id="bill-2")
        for other in ({"output_type": Point}, {}):
            with pytest.raises(JournalMismatchError, match="`output_type`"):
                await agent.arun("Bill.", run_id="bill-2", **other)
        with pytest.raises(AnswerValidationError, match="recorded with another output type"):
            await agent.arun("Bill.", output_type=Point, run_id="bill-2", force=True)


async def test_a_failed_typed_run_resumes_and_replays_its_turned_down_answer(
    journal_path: Path,
) -> None:
    broken = {"on": True}
    live: list[int] = []
    observed: list[str] = []

    def reply(messages: list[Any]) -> str:
        step = turn(messages)
        live.append(step)
        if step == 1:
            observed.append(last_observation(messages))
            if broken["on"]:
                raise ConnectionError("the model provider is down")
        return WRONG if step == 0 else RIGHT

    agent = create_async_agent(model=FunctionModel(reply), journal=journal_path)
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("Bill.", output_type=Invoice, run_id="bill-3")
        broken["on"] = False
        live.clear()
        result = await agent.arun(
            "Bill.", output_type=Invoice, run_id="bill-3", return_full_result=True
        )
    assert result.output == Invoice(number="A-1", total=12.5)
    assert result.replayed_steps == 1 and live == [1]  # step 0 came from the journal
    assert observed[0] == observed[1]  # the replayed check turned it down the same way
    assert "not a valid `Invoice`" in observed[1]


def picture(color: str) -> Image.Image:
    return Image.new("RGB", (2, 2), color)


async def test_other_images_are_a_mismatch_and_the_same_ones_get_the_answer(
    journal_path: Path,
) -> None:
    model = ScriptedModel(["final_answer('a red square')"])
    agent = create_async_agent(model=model, journal=journal_path)
    async with agent:
        await agent.arun("Describe.", images=[picture("red")], run_id="look")
        with pytest.raises(JournalMismatchError, match="`images`"):
            await agent.arun("Describe.", images=[picture("blue")], run_id="look")
        same = await agent.arun("Describe.", images=[picture("red")], run_id="look")
    assert same == "a red square"
    assert model.calls == 1


async def test_a_reopened_session_replays_a_typed_turn_without_its_type(tmp_path: Path) -> None:
    calls: list[str] = []
    observed: list[str] = []

    def reply(messages: list[Any]) -> str:
        step = turn(messages)
        calls.append(f"step {step}")
        if step == 0:
            return WRONG
        if step == 1:
            return RIGHT
        observed.append(" ".join(str(m.content) for m in messages))
        return "final_answer('thanks')"

    agent = create_async_agent(model=FunctionModel(reply), journal=tmp_path / "s.sqlite")
    async with agent:
        async with agent.session(session_id="s") as session:
            answer = await session.arun("Bill.", output_type=Invoice)
        assert answer == Invoice(number="A-1", total=12.5)
        async with agent.session(session_id="s") as session:  # replays turn 1, no model call
            assert await session.arun("Say thanks.") == "thanks"
    assert calls == ["step 0", "step 1", "step 2"]
    assert "Answer format:" in observed[0]  # the replayed turn's task, hint included
    assert "not a valid `Invoice`" in observed[0]  # and what its check said


async def test_a_turn_resumed_midway_must_have_the_same_output_type(tmp_path: Path) -> None:
    broken = {"on": True}
    live: list[int] = []

    def reply(messages: list[Any]) -> str:
        live.append(turn(messages))
        if turn(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return WRONG if turn(messages) == 0 else RIGHT

    journal = tmp_path / "s.sqlite"
    agent = create_async_agent(model=FunctionModel(reply), journal=journal)
    async with agent:
        async with agent.session(session_id="s") as session:
            with pytest.raises(Exception, match="down"):
                await session.arun("Bill.", output_type=Invoice)
        # leave the turn in flight, as a process killed in it would have
        with contextlib.closing(sqlite3.connect(journal)) as db, db:
            db.execute("DELETE FROM agentloop_entries WHERE kind = 'turn_ended'")
        broken["on"] = False
        live.clear()
        async with agent.session(session_id="s") as session:
            assert session.unfinished_task == "Bill."
            with pytest.raises(JournalMismatchError, match="same `output_type`"):
                await session.arun("Bill.", output_type=Point)
            with pytest.raises(JournalMismatchError, match="same `output_type`"):
                await session.arun("Bill.")
            answer = await session.arun("Bill.", output_type=Invoice)
    assert answer == Invoice(number="A-1", total=12.5)
    assert live == [1]  # its first reply (turned down again) came from the journal


async def test_recovery_leaves_a_typed_run_to_its_app(journal_path: Path) -> None:
    in_flight = asyncio.Event()

    async def work() -> str:
        """Work that never ends."""
        in_flight.set()
        await asyncio.Event().wait()
        return "never"

    code = 'tid = submit_task("tool", "work", {})\nwait_for_tasks([tid])'
    leaving = create_async_agent(
        tools=[work], model=ScriptedModel([code]), journal=journal_path, lease_seconds=30
    )
    run = asyncio.create_task(leaving.arun("Bill.", output_type=Invoice, run_id="bill-4"))
    await in_flight.wait()
    await leaving.aclose()  # the run is handed back, unfinished
    with pytest.raises(RegistryClosedError):
        await run

    staying = create_async_agent(
        tools=[work], model=ScriptedModel([code]), journal=journal_path, lease_seconds=30
    )
    async with staying, staying.recovering(interval=60) as progress:
        await progress.wait_passes(1)
        assert progress.skipped_typed == 1
        assert progress.skipped_foreign == 0
        assert not progress.active
