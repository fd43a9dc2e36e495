"""Nothing the model writes runs when a run is read back (issue 22).

Model code can define a class whose `__reduce__` names a function of its choice: were such a
value pickled into the journal, reading the run back (its answer, a resume, `agentloop runs`)
would call that function outside the executor. Here the function is `mark`, handed to the
model's code as a variable, which records that it ran: it must never run.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pydantic
import pytest

from agentloop import (
    AsyncAgent,
    InvalidArgumentsError,
    JournalError,
    RunStatus,
    create_async_agent,
)
from agentloop.cli import main as cli_main
from agentloop.journal.base import LeaseHolder
from agentloop.testing import ScriptedModel

pytestmark = pytest.mark.timeout(60)

MARKS: list[str] = []


def mark(where: str) -> str:
    """What a hostile `__reduce__` names: records that it was called."""
    MARKS.append(where)
    return "marked"


@pytest.fixture(autouse=True)
def no_marks() -> Any:
    MARKS.clear()
    yield
    assert MARKS == [], f"model-chosen code ran when the journal was read: {MARKS}"


EVIL = """
class Evil:
    def __reduce__(self):
        return (mark, ("{where}",))
"""


def keep(value: Any) -> Any:
    """Return `value` as the task's result.

    Args:
        value: anything.
    """
    return value


def build(cls: Any) -> Any:
    """Return an instance of `cls` (a class passes the submission's copy as itself, so the
    result is an object of the model's class that model code never copied).

    Args:
        cls: a class.
    """
    return cls()


async def test_a_model_class_as_the_final_answer_fails_the_run_and_reads_back_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "runs.sqlite"
    code = EVIL.format(where="answer") + "final_answer(Evil())"
    agent = create_async_agent(model=ScriptedModel([code]), journal=journal)
    async with agent:
        with pytest.raises(JournalError, match="class the model's code defined"):
            await agent.arun("go", run_id="evil", additional_args={"mark": mark})
        [summary] = await agent.runs()
        assert summary.status is RunStatus.FAILED and summary.answer is None
        assert "class the model's code defined" in (summary.error or "")
    assert cli_main(["runs", "--journal", str(journal), "evil"]) == 0
    assert "Evil" in capsys.readouterr().out


async def test_a_model_class_as_a_task_result_fails_the_task_and_a_resume_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "runs.sqlite"
    step = EVIL.format(where="result") + (
        'tid = submit_task("tool", "build", {"cls": Evil})\n'
        "wait_for_tasks([tid])\n"
        "result = get_task_results([tid])[tid]\n"
        "print(result)\n"
    )
    first = create_async_agent(tools=[build], model=ScriptedModel([step]), journal=journal)
    async with first:  # the script ends after step 1: the run fails, resumable
        with pytest.raises(Exception, match="step 2"):
            await first.arun("go", run_id="evil", additional_args={"mark": mark})
    assert cli_main(["runs", "--journal", str(journal), "evil"]) == 0
    assert "build_1 failed" in (out := capsys.readouterr().out) and "`Evil`, a class" in out

    model = ScriptedModel([step, "final_answer(str(result))"])
    again = create_async_agent(tools=[build], model=model, journal=journal)
    async with again:  # replays step 1 from the journal, then answers
        answer = await again.arun("go", run_id="evil", additional_args={"mark": mark})
        [summary] = await again.runs()
    assert "FAILED" in answer and "class the model's code defined" in answer
    assert summary.answer == answer


def _pickled_mark(where: str) -> dict[str, str]:
    """A value as agentloop 0.1 stored it: pickled; unpickling it calls `mark(where)`."""

    class Hostile:
        def __reduce__(self) -> Any:
            return (mark, (where,))

    return {"pickle": base64.b64encode(pickle.dumps(Hostile())).decode("ascii")}


async def test_a_pickled_answer_in_the_journal_is_refused_never_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentloop import SQLiteJournal

    journal = tmp_path / "runs.sqlite"
    with SQLiteJournal(journal) as store:
        holder = LeaseHolder()
        store.claim("old", task="go", fingerprint="f", holder=holder, lease_seconds=30, force=True)
        store.finish("old", holder, RunStatus.COMPLETED, answer=_pickled_mark("answer"))
    agent = create_async_agent(model=ScriptedModel(["final_answer(1)"]), journal=journal)
    async with agent:
        [summary] = await agent.runs()
        with pytest.raises(JournalError, match="pickled by an older agentloop"):
            summary.answer  # noqa: B018
        with pytest.raises(JournalError, match="It was not unpickled"):
            await agent.arun("go", run_id="old", force=True)
    assert cli_main(["runs", "--journal", str(journal), "old"]) == 0
    assert "<pickled" in capsys.readouterr().out


async def test_a_pickled_task_result_in_the_journal_stops_the_resume(tmp_path: Path) -> None:
    journal = tmp_path / "runs.sqlite"
    step = 'tid = submit_task("tool", "keep", {"value": 1})\nwait_for_tasks([tid])\n'
    first = create_async_agent(tools=[keep], model=ScriptedModel([step]), journal=journal)
    async with first:
        with pytest.raises(Exception, match="step 2"):
            await first.arun("go", run_id="old")
    with sqlite3.connect(journal) as db:  # the result, as agentloop 0.1 wrote a tuple
        [(seq, data)] = db.execute("SELECT seq, data FROM agentloop_entries WHERE kind = 'outcome'")
        import json

        entry = json.loads(data)
        entry["result"] = _pickled_mark("result")
        db.execute("UPDATE agentloop_entries SET data = ? WHERE seq = ?", (json.dumps(entry), seq))
    again = create_async_agent(
        tools=[keep], model=ScriptedModel([step, "final_answer(1)"]), journal=journal
    )
    async with again:
        with pytest.raises(JournalError, match="pickled by an older agentloop"):
            await again.arun("go", run_id="old")


async def test_a_completed_runs_big_answer_is_decoded_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 4: `arun` with a completed run's id returns its recorded answer; decoding a big
    one on the loop stalled every other run (1.2 s measured). It is decoded by the claim, in
    its worker thread."""
    import threading

    from agentloop import SQLiteJournal
    from agentloop.journal import _codec

    big = list(range(1_000_000))
    journal = tmp_path / "runs.sqlite"
    with SQLiteJournal(journal) as store:
        holder = LeaseHolder()
        store.claim("big", task="go", fingerprint="f", holder=holder, lease_seconds=30, force=True)
        store.finish("big", holder, RunStatus.COMPLETED, answer=_codec.encode(big, "answer"))
    threads: list[int] = []
    decode = _codec.decode

    def spied(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return decode(*args)

    monkeypatch.setattr(_codec, "decode", spied)
    agent = create_async_agent(model=ScriptedModel([]), journal=journal)
    async with agent:
        result = await agent.arun("go", run_id="big", force=True, return_full_result=True)
    assert result.resumed and result.output == big
    assert threads and threading.get_ident() not in threads


# -- the application's own types ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Invoice:
    number: str
    total: float


class SpecialInvoice(Invoice):
    pass


class Customer(pydantic.BaseModel):
    name: str
    invoices: list[Invoice] = []


def issue(number: str) -> Invoice:
    """Issue an invoice.

    Args:
        number: its number.
    """
    return Invoice(number=number, total=9.5)


def special(number: str) -> Invoice:
    """Issue a special invoice.

    Args:
        number: its number.
    """
    return SpecialInvoice(number=number, total=1.0)


def customer(name: str) -> Customer:
    """Find a customer.

    Args:
        name: their name.
    """
    return Customer(name=name, invoices=[Invoice(number="c-1", total=2.0)])


REGISTERED_STEP = (
    'ids = [submit_task("tool", "issue", {"number": "A-1"}), '
    'submit_task("tool", "customer", {"name": "Ada"})]\n'
    "wait_for_tasks(ids)\n"
    "invoice, person = [get_task_results(ids)[i] for i in ids]\n"
    "print(invoice.total, person.name)\n"
)


async def test_registered_types_round_trip_through_a_run_its_resume_and_its_listing(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "runs.sqlite"
    tools = [issue, customer]
    types = [Invoice, Customer]
    first = create_async_agent(
        tools=tools, model=ScriptedModel([REGISTERED_STEP]), journal=journal, journal_types=types
    )
    async with first:  # the script ends after step 1: the run fails, resumable
        with pytest.raises(Exception, match="step 2"):
            await first.arun("go", run_id="typed")
    model = ScriptedModel([REGISTERED_STEP, "final_answer({'invoice': invoice, 'who': person})"])
    again = create_async_agent(tools=tools, model=model, journal=journal, journal_types=types)
    expected = {"invoice": issue("A-1"), "who": customer("Ada")}
    async with again:  # step 1's results are read back from the journal as themselves
        result = await again.arun("go", run_id="typed", return_full_result=True)
        assert (result.output, result.replayed_tasks) == (expected, 2)
        [summary] = await again.runs()
        assert summary.answer == expected
        done = await again.arun("go", run_id="typed", return_full_result=True)
        assert done.resumed and done.output == expected
    plain = create_async_agent(model=ScriptedModel([]), journal=journal)
    async with plain:  # an agent that did not register them refuses to build them
        [summary] = await plain.runs()
        with pytest.raises(JournalError, match=r"journal_types=.*Invoice"):
            summary.answer  # noqa: B018
        assert summary.decoded_answer(types) == expected


async def test_a_subclass_of_a_registered_type_fails_its_task(tmp_path: Path) -> None:
    code = (
        'tid = submit_task("tool", "special", {"number": "S-1"})\n'
        "wait_for_tasks([tid])\n"
        "final_answer(str(get_task_results([tid])[tid]))"
    )
    agent = create_async_agent(
        tools=[special],
        model=ScriptedModel([code]),
        journal=tmp_path / "runs.sqlite",
        journal_types=[Invoice],
    )
    async with agent:
        answer = await agent.arun("go")
    assert "FAILED" in answer and "SpecialInvoice" in answer and "journal_types" in answer


def test_journal_types_are_checked_when_the_agent_is_made(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentsError, match="dataclasses, pydantic models and enums"):
        create_async_agent(model=ScriptedModel([]), journal=tmp_path / "j", journal_types=[dict])
    with pytest.raises(InvalidArgumentsError, match="list of classes"):
        AsyncAgent(model=ScriptedModel([]), journal=tmp_path / "j", journal_types=Invoice)
    assert not (tmp_path / "j").exists()  # checked before the journal is made
