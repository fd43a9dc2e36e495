"""Journaled runs in one process: what is recorded, what a resumed run replays, what is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentloop import (
    AgentloopError,
    InvalidArgumentsError,
    JournalError,
    JournalMismatchError,
    Limits,
    RunDivergedError,
    RunEventKind,
    create_async_agent,
)
from agentloop.journal import EntryKind, RunStatus
from agentloop.testing import FunctionModel, ScriptedModel

FAN_OUT = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2, 3)]
print(wait_for_tasks(ids))
fetched = get_task_results(ids)
total = sum(fetched.values())
"""
ANSWER = "final_answer(total)"


class Tools:
    """Tools that count their executions."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def all(self) -> list[Any]:
        async def fetch(n: int) -> int:
            """Fetch a number."""
            self.calls.append(f"fetch {n}")
            return n * 10

        return [fetch]


def assistant_steps(messages: list[Any]) -> int:
    return sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.sqlite"


async def test_a_completed_run_id_returns_its_answer_without_calling_anything(
    journal_path: Path,
) -> None:
    tools = Tools()
    model = ScriptedModel([FAN_OUT, ANSWER])
    agent = create_async_agent(tools=tools.all(), model=model, journal=journal_path)
    async with agent:
        first = await agent.arun("add", run_id="order-1", return_full_result=True)
        assert (first.output, first.run_id, first.resumed) == (60, "order-1", False)
        calls, runs = model.calls, list(tools.calls)

        again = await agent.arun("add", run_id="order-1", return_full_result=True)

        assert (again.output, again.resumed) == (60, True)
        assert (model.calls, tools.calls) == (calls, runs)
        [summary] = await agent.runs()
    assert summary.run_id == "order-1" and summary.status is RunStatus.COMPLETED
    assert (summary.steps, summary.tasks, summary.attempts, summary.answer) == (2, 3, 1, 60)


async def test_every_call_of_the_run_is_recorded_in_order(journal_path: Path) -> None:
    agent = create_async_agent(
        tools=Tools().all(), model=ScriptedModel([FAN_OUT, ANSWER]), journal=journal_path
    )
    async with agent:
        await agent.arun("add", run_id="r")
        assert agent.journal is not None
        entries = agent.journal.entries("r")
    kinds = [e.kind for e in entries]
    assert kinds[0] is EntryKind.MODEL_REPLY and kinds[-3:] == [
        EntryKind.WAITED,
        EntryKind.LOOKED,
        EntryKind.MODEL_REPLY,
    ]
    assert sorted(kinds[1:7]) == [EntryKind.OUTCOME] * 3 + [EntryKind.SUBMITTED] * 3
    position = {(e.kind, e.data.get("task_id")): i for i, e in enumerate(entries)}
    for task_id in ("fetch_1", "fetch_2", "fetch_3"):  # a task's outcome follows its submission
        assert position[EntryKind.SUBMITTED, task_id] < position[EntryKind.OUTCOME, task_id]
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    outcomes = {e.data["task_id"]: e.data["result"] for e in entries if e.kind is EntryKind.OUTCOME}
    assert outcomes == {"fetch_1": {"json": 10}, "fetch_2": {"json": 20}, "fetch_3": {"json": 30}}


async def test_a_failed_run_resumes_from_where_it_failed(journal_path: Path) -> None:
    tools = Tools()
    broken = {"on": True}
    live_steps: list[int] = []

    def reply(messages: list[Any]) -> str:
        step = assistant_steps(messages) + 1
        live_steps.append(step)
        if step == 2 and broken["on"]:
            raise ConnectionError("the model provider is down")
        return FAN_OUT if step == 1 else ANSWER

    agent = create_async_agent(
        tools=tools.all(), model=FunctionModel(reply), journal=journal_path, max_steps=3
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("add", run_id="flaky")
        [failed] = await agent.runs()
        assert failed.status is RunStatus.FAILED and "down" in (failed.error or "")
        broken["on"] = False
        live_steps.clear()
        fetched = list(tools.calls)

        result = await agent.arun("add", run_id="flaky", return_full_result=True)

    assert result.output == 60 and result.resumed and result.replayed_steps == 1
    assert live_steps == [2]  # step 1 came from the journal
    assert tools.calls == fetched  # and its tasks did not run again
    assert result.replayed_tasks == 3


async def test_a_changed_agent_or_task_is_refused_unless_forced(journal_path: Path) -> None:
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        if assistant_steps(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return FAN_OUT if assistant_steps(messages) == 0 else ANSWER

    async with create_async_agent(
        tools=Tools().all(), model=FunctionModel(reply), journal=journal_path
    ) as agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("add", run_id="r")
        with pytest.raises(JournalMismatchError, match="another task"):
            await agent.arun("multiply", run_id="r")
    broken["on"] = False
    changed = create_async_agent(
        tools=Tools().all(),
        model=FunctionModel(reply),
        journal=journal_path,
        instructions="Be brief.",
    )
    async with changed:
        with pytest.raises(JournalMismatchError, match="configured differently"):
            await changed.arun("add", run_id="r")
        assert await changed.arun("add", run_id="r", force=True) == 60


async def test_code_that_does_not_do_the_same_again_fails_the_run_loudly(
    journal_path: Path,
) -> None:
    code = """
name = "fetch" if flavour == "a" else "other"
tid = submit_task("tool", name, {"n": 1})
wait_for_tasks([tid])
"""
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        if assistant_steps(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return code if assistant_steps(messages) == 0 else "final_answer(1)"

    async def other(n: int) -> int:
        """Another tool."""
        return n

    agent = create_async_agent(
        tools=[*Tools().all(), other], model=FunctionModel(reply), journal=journal_path
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("go", run_id="r", additional_args={"flavour": "a"})
        broken["on"] = False
        with pytest.raises(RunDivergedError, match="other"):
            await agent.arun("go", run_id="r", additional_args={"flavour": "b"})


async def test_a_result_the_journal_cannot_hold_fails_its_task_with_a_clear_error(
    journal_path: Path,
) -> None:
    async def lock() -> Any:
        """Return something the journal cannot store."""
        import threading

        return threading.Lock()

    code = """
tid = submit_task("tool", "lock", {})
wait_for_tasks([tid])
final_answer(str(get_task_results([tid])[tid]))
"""
    agent = create_async_agent(tools=[lock], model=ScriptedModel([code]), journal=journal_path)
    async with agent:
        answer = await agent.arun("go")
    assert "FAILED" in answer and "cannot be journaled" in answer and "`_thread.lock`" in answer
    assert "journal_types" in answer  # the fix, for a class of the app's


async def test_an_answer_the_journal_cannot_hold_fails_the_run(journal_path: Path) -> None:
    code = "import threading\nfinal_answer(threading.Lock())"
    agent = create_async_agent(
        model=ScriptedModel([code]),
        journal=journal_path,
        additional_authorized_imports=["threading"],
    )
    async with agent:
        with pytest.raises(JournalError, match="final answer cannot be journaled"):
            await agent.arun("go")


async def test_a_full_journal_fails_the_run_loudly_and_starts_no_task(tmp_path: Path) -> None:
    """A write that fails (here: the database's size limit, as a full disk would) stops the
    run with the journal's error; the task whose submission could not be written never runs."""
    path = tmp_path / "runs.sqlite"
    started: list[int] = []

    async def fetch(n: int) -> int:
        """Fetch a number."""
        started.append(n)
        return n

    big = "x" * 200_000
    code = f"""
tid = submit_task("tool", "fetch", {{"n": 1}})
wait_for_tasks([tid])
final_answer("{big}")
"""
    agent = create_async_agent(tools=[fetch], model=ScriptedModel([code]), journal=path)
    async with agent:
        blocker = sqlite3.connect(path)
        pages = blocker.execute("PRAGMA page_count").fetchone()[0]
        blocker.close()
        assert agent.journal is not None
        agent.journal._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # type: ignore[attr-defined]
        with pytest.raises(JournalError, match="full"):
            await agent.arun("go", run_id="r")
    assert started == []


async def test_a_resumed_stream_says_so_and_the_budget_counts_replayed_calls(
    journal_path: Path,
) -> None:
    broken = {"on": True}
    calls: list[int] = []

    def reply(messages: list[Any]) -> str:
        calls.append(1)
        if assistant_steps(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return FAN_OUT if assistant_steps(messages) == 0 else ANSWER

    agent = create_async_agent(
        tools=Tools().all(),
        model=FunctionModel(reply),
        journal=journal_path,
        limits=Limits(max_model_calls=2),
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("add", run_id="r")
        broken["on"] = False
        before = agent.task_manager.get_statistics()
        async with agent.astream("add", run_id="r") as stream:
            events = [event async for event in stream]
        after = agent.task_manager.get_statistics()
    kinds = [e.kind for e in events]
    assert kinds[:2] == [RunEventKind.RUN_STARTED, RunEventKind.RUN_RESUMED]
    resumed = events[1].to_dict()
    assert (resumed["attempt"], resumed["recorded_steps"], resumed["recorded_tasks"]) == (2, 1, 3)
    assert all(e.run_id == "r" for e in events)
    assert events[-1].kind is RunEventKind.FINAL_ANSWER
    assert events[-1].to_dict()["usage"]["model_calls"] == 2  # the replayed one counts, once
    assert after["model_calls"] - before["model_calls"] == 1  # only the live call was made


async def test_bad_journal_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentsError, match="Did you mean `fetch`"):
        create_async_agent(
            tools=Tools().all(),
            model=ScriptedModel([]),
            journal=tmp_path / "j",
            idempotent={"fech"},
        )
    with pytest.raises(InvalidArgumentsError, match="string"):
        create_async_agent(tools=Tools().all(), model=ScriptedModel([]), idempotent="fetch")
    with pytest.raises(JournalError, match="does not exist"):
        create_async_agent(model=ScriptedModel([]), journal=tmp_path / "nowhere" / "j.sqlite")
    with pytest.raises(JournalError):
        create_async_agent(model=ScriptedModel([]), journal="/proc/agentloop-journal.sqlite")
    agent = create_async_agent(model=ScriptedModel(["final_answer(1)"]))
    async with agent:
        with pytest.raises(InvalidArgumentsError, match="no journal"):
            await agent.runs()
        with pytest.raises(InvalidArgumentsError, match="run_id"):
            await agent.arun("go", run_id="")
        assert (await agent.arun("go", run_id="named", return_full_result=True)).run_id == "named"


async def test_one_run_id_runs_once_at_a_time_in_a_process(journal_path: Path) -> None:
    gate, running = asyncio.Event(), asyncio.Event()

    async def slow() -> int:
        """Wait for the gate."""
        running.set()
        await gate.wait()
        return 1

    code = 'tid = submit_task("tool", "slow", {})\nwait_for_tasks([tid])\nfinal_answer(1)'
    agent = create_async_agent(tools=[slow], model=ScriptedModel([code]), journal=journal_path)
    async with agent:
        first = asyncio.ensure_future(agent.arun("go", run_id="once"))
        await running.wait()
        with pytest.raises(AgentloopError, match="already running"):
            await agent.arun("go", run_id="once")
        gate.set()
        assert await first == 1


def test_a_journal_opened_read_only_lists_runs_and_refuses_writes(journal_path: Path) -> None:
    from agentloop import SQLiteJournal
    from agentloop.journal import LeaseHolder

    agent = create_async_agent(model=ScriptedModel(["final_answer(7)"]), journal=journal_path)
    with agent:
        agent.run("go", run_id="done")
    before = journal_path.read_bytes()
    with SQLiteJournal(journal_path, read_only=True) as reader:
        [summary] = reader.runs()
        assert (summary.run_id, summary.answer) == ("done", 7)
        with pytest.raises(JournalError, match="read-only"):
            reader.append("done", LeaseHolder(), [], 30)
    assert journal_path.read_bytes() == before
    with pytest.raises(JournalError, match="does not exist"):
        SQLiteJournal(journal_path.with_name("missing.sqlite"), read_only=True)


async def test_a_cancelled_run_resumes_and_reruns_what_its_cancellation_interrupted(
    journal_path: Path,
) -> None:
    """Cancelling a run (a client that went away) interrupts its tasks; they are not recorded
    as cancelled, so resuming the run runs them again (idempotent) instead of reporting them
    cancelled."""
    hang, running, started = {"on": True}, asyncio.Event(), []

    async def fetch(n: int) -> int:
        """Fetch a number."""
        if hang["on"]:
            started.append(n)
            if len(started) == 3:  # all three in flight: now the run is cancelled
                running.set()
            await asyncio.Event().wait()
        return n * 10

    code = FAN_OUT + "\nfinal_answer(total)"
    agent = create_async_agent(
        tools=[fetch], model=ScriptedModel([code]), journal=journal_path, idempotent={"fetch"}
    )
    async with agent:
        run = asyncio.ensure_future(agent.arun("add", run_id="gone"))
        await running.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        [cancelled] = await agent.runs()
        assert cancelled.status is RunStatus.CANCELLED
        hang["on"] = False

        result = await agent.arun("add", run_id="gone", return_full_result=True)

    assert result.output == 60 and result.rerun_tasks == 3 and result.replayed_steps == 1


async def test_a_direct_call_replays_from_the_journal(journal_path: Path) -> None:
    tools = Tools()
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        if assistant_steps(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return "x = fetch(n=4)" if assistant_steps(messages) == 0 else "final_answer(x + 1)"

    agent = create_async_agent(tools=tools.all(), model=FunctionModel(reply), journal=journal_path)
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("go", run_id="direct")
        broken["on"] = False
        assert await agent.arun("go", run_id="direct") == 41
    assert tools.calls == ["fetch 4"]  # once, in the first attempt


async def test_replayed_steps_make_no_model_or_task_spans_and_the_run_span_says_so(
    journal_path: Path,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        if assistant_steps(messages) == 1 and broken["on"]:
            raise ConnectionError("down")
        return FAN_OUT if assistant_steps(messages) == 0 else ANSWER

    agent = create_async_agent(
        tools=Tools().all(),
        model=FunctionModel(reply),
        journal=journal_path,
        tracer_provider=provider,
    )
    async with agent:
        with pytest.raises(Exception, match="down"):
            await agent.arun("add", run_id="traced")
        first = [s.name for s in exporter.get_finished_spans()]
        assert len([n for n in first if n.startswith("execute_tool")]) == 3
        broken["on"] = False
        exporter.clear()
        await agent.arun("add", run_id="traced")
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("chat agentloop/function") == 1  # only the live call of step 2
    assert not [n for n in names if n.startswith("execute_tool")]  # the fetches replayed
    [run] = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    attributes = run.attributes or {}
    assert attributes["agentloop.run.resumed"] is True
    assert (
        attributes["agentloop.run.replayed_steps"],
        attributes["agentloop.run.replayed_tasks"],
    ) == (1, 3)
    provider.shutdown()


def test_blocking_runs_on_fresh_portal_loops_keep_one_journal_writer(journal_path: Path) -> None:
    """Each `run()` with no other in progress gets a new event loop (anyio's portal): the
    writer of a closed loop is dropped, not kept with its loop for the agent's lifetime."""
    agent = create_async_agent(model=ScriptedModel(["final_answer(1)"]), journal=journal_path)
    with agent:
        assert [agent.run("go") for _ in range(3)] == [1, 1, 1]
        assert agent._durability is not None and agent._durability.loops == 1


async def test_storing_a_result_or_an_answer_never_encodes_on_the_loop(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding a value costs its size (a million items take about a second): done on the
    loop, one big result would stall every run. Each encoding of the result and the answer
    runs in a worker thread."""
    import threading

    from agentloop.journal import _codec

    threads: list[int] = []
    encode = _codec.encode

    def spied(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return encode(*args)

    monkeypatch.setattr(_codec, "encode", spied)

    async def make() -> Any:
        """Return a big value."""
        return {"rows": list(range(100_000))}

    code = (
        'tid = submit_task("tool", "make", {})\nwait_for_tasks([tid])\n'
        "final_answer(get_task_results([tid])[tid])"
    )
    agent = create_async_agent(tools=[make], model=ScriptedModel([code]), journal=journal_path)
    async with agent:
        answer = await agent.arun("go")
    assert answer == {"rows": list(range(100_000))}
    assert len(threads) == 2 and threading.get_ident() not in threads
