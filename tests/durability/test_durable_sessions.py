"""Sessions with a journal survive restarts: `agent.session(session_id=...)`.

The subprocess tests run the real thing (`session_worker.py`): a process holds a conversation,
is killed with SIGKILL, and another process opens the same session id and goes on with the
conversation's memory and variables, without the model being called for the earlier turns and
without their tasks running again. The in-process tests cover the API's edges.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentloop import (
    InvalidArgumentsError,
    JournalMismatchError,
    RunLeasedError,
    create_async_agent,
)
from agentloop.cli.runs_text import entry_summary
from agentloop.journal import EntryKind, RunStatus
from agentloop.testing import FunctionModel

from . import _spawn

TIMEOUT = 60


def worker(
    journal: Path, session_id: str, log: Path, mode: str, *, cold: bool = False
) -> subprocess.Popen[str]:
    return _spawn.worker("session_worker", str(journal), session_id, str(log), mode, cold=cold)


def kill_after(process: subprocess.Popen[str], signal_line: str) -> str:
    """Wait (on the pipe, not the clock) for the worker's line, then SIGKILL it."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(signal_line):
        process.kill()
        _, stderr = process.communicate(timeout=TIMEOUT)
        pytest.fail(f"the worker did not say {signal_line}: {line!r}\n{stderr}")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    return line


def finished(process: subprocess.Popen[str], code: int = 0) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code, stderr
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def lines_by_process(log: Path) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        pid, what = line.split(" ", 1)
        groups.setdefault(pid, []).append(what)
    return list(groups.values())


@pytest.mark.timeout(TIMEOUT * 3)
def test_a_killed_processs_session_goes_on_in_another_process(tmp_path: Path) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "executions.log"
    line = kill_after(worker(journal, "support-42", log, "two"), "TWO_DONE")
    assert json.loads(line.split(" ", 1)[1]) == ["noted", 17]

    result = finished(worker(journal, "support-42", log, "third"))

    first, second = lines_by_process(log)
    assert first == ["model t1 step 1", "fetch 1", "model t2 step 1"]
    # turn 3 read turn 1's and turn 2's variables, and its model saw both turns' messages ...
    assert result["answer"] == {"total": 17, "secret": 7, "seen": True}
    # ... which were replayed: no model call for turns 1-2, turn 1's task did not run again
    assert second == ["model t3 step 1"]


@pytest.mark.timeout(TIMEOUT * 3)
def test_a_second_live_holder_is_refused(tmp_path: Path) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "executions.log"
    holder = worker(journal, "support-7", log, "two", cold=True)  # its pid is in the refusal
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("TWO_DONE")  # it holds the session open
        refused = finished(worker(journal, "support-7", log, "third"), code=3)
        assert refused["error"] == "RunLeasedError"
        assert f"pid {holder.pid}" in refused["message"]
    finally:
        holder.kill()
        holder.communicate(timeout=TIMEOUT)
    # once its holder is gone, the session is taken over at once
    assert finished(worker(journal, "support-7", log, "third"))["answer"]["seen"] is True


@pytest.mark.timeout(TIMEOUT * 3)
def test_a_turn_killed_midway_resumes_when_asked_again(tmp_path: Path) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "executions.log"
    kill_after(worker(journal, "support-9", log, "crash4"), "IN_FLIGHT")

    result = finished(worker(journal, "support-9", log, "resume4"))

    first, second = lines_by_process(log)
    assert first == ["model t1 step 1", "fetch 1", "model t2 step 1", "model t4 step 1", "charge 7"]
    assert result["unfinished"] == "Turn four: charge the secret."
    assert result["refused"] == "JournalMismatchError"  # another task first: refused
    assert result["answer"] == "receipt-7"
    assert second == ["charge 7"]  # turn 4's step replayed; its in-flight task (idempotent) reran


# -- in one process -----------------------------------------------------------------------------


def asked(messages: list[Any]) -> list[int]:
    """The numbers of the `add n` tasks in the conversation, in order."""
    found = []
    for message in messages:
        content = message.content
        parts = content if isinstance(content, list) else [{"text": content or ""}]
        for part in parts:
            text = part.get("text", "") if isinstance(part, dict) else ""
            if text.startswith("New task:\nadd "):
                found.append(int(text.split("add ", 1)[1].split()[0]))
    return found


def remembering_model(log: list[str]) -> FunctionModel:
    """Turn n's code adds its number to `total`, a variable of the earlier turns."""

    def reply(messages: list[Any]) -> str:
        numbers = asked(messages)
        log.append(str(numbers[-1]))
        if len(numbers) == 1:
            return f"total = {numbers[-1]}\nfinal_answer(total)"
        return f"total = total + {numbers[-1]}\nfinal_answer(total)"

    return FunctionModel(reply)


async def test_closing_releases_the_session_and_reopening_replays_it(tmp_path: Path) -> None:
    calls: list[str] = []
    agent = create_async_agent(model=remembering_model(calls), journal=tmp_path / "j.sqlite")
    async with agent:
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 1") == 1
            assert await session.arun("add 2") == 3
        async with agent.session(session_id="s") as session:  # closed: the lease is free
            assert await session.arun("add 4") == 7
        assert calls == ["1", "2", "4"]  # turns 1-2 replayed, not asked again
        entries = agent.journal.entries("s") if agent.journal else []
        brackets = [e for e in entries if e.kind in (EntryKind.TURN_STARTED, EntryKind.TURN_ENDED)]
        assert [(e.kind.value, e.data["turn"]) for e in brackets] == [
            ("turn_started", 1),
            ("turn_ended", 1),
            ("turn_started", 2),
            ("turn_ended", 2),
            ("turn_started", 3),
            ("turn_ended", 3),
        ]
        summary = agent.journal.run("s") if agent.journal else None
        assert summary is not None and summary.status is RunStatus.CANCELLED


async def test_one_session_id_is_open_once(tmp_path: Path) -> None:
    agent = create_async_agent(model=remembering_model([]), journal=tmp_path / "j.sqlite")
    async with agent, agent.session(session_id="s"):
        with pytest.raises(RunLeasedError, match="already open"):
            async with agent.session(session_id="s"):
                pass


async def test_a_failed_turn_replays_to_where_it_failed(tmp_path: Path) -> None:
    calls: list[str] = []
    inner = remembering_model(calls)

    def reply(messages: list[Any]) -> str:
        if asked(messages)[-1] == 2:
            calls.append("boom")
            raise RuntimeError("the model is down")
        return inner.function(messages)

    agent = create_async_agent(model=FunctionModel(reply), journal=tmp_path / "j.sqlite")
    async with agent:
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 1") == 1
            with pytest.raises(Exception, match="the model is down"):
                await session.arun("add 2")
            assert await session.arun("add 4") == 5
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 3") == 8
        assert calls == ["1", "boom", "4", "3"]


async def test_a_session_id_needs_a_journal_and_a_sane_id(tmp_path: Path) -> None:
    plain = create_async_agent(model=remembering_model([]))
    async with plain:
        with pytest.raises(InvalidArgumentsError, match="has no journal"):
            async with plain.session(session_id="s"):
                pass
    agent = create_async_agent(model=remembering_model([]), journal=tmp_path / "j.sqlite")
    async with agent:
        for bad in ("", "x" * 201, "a\nb", 42):
            with pytest.raises(InvalidArgumentsError, match="session_id"):
                async with agent.session(session_id=bad):  # type: ignore[arg-type]
                    pass


async def test_a_run_id_is_not_a_session(tmp_path: Path) -> None:
    agent = create_async_agent(model=remembering_model([]), journal=tmp_path / "j.sqlite")
    async with agent:
        await agent.arun("add 1", run_id="r")
        with pytest.raises(JournalMismatchError):
            async with agent.session(session_id="r"):
                pass


def latest_task(messages: list[Any]) -> str:
    """The task of the turn the model is asked for now."""
    tasks = []
    for message in messages:
        content = message.content
        parts = content if isinstance(content, list) else [{"text": content or ""}]
        for part in parts:
            text = part.get("text", "") if isinstance(part, dict) else ""
            if text.startswith("New task:\n"):
                tasks.append(text.split("\n")[1])
    return tasks[-1]


@pytest.mark.parametrize("settled", ["between turns", "in the next turn"])
async def test_a_task_that_outlives_its_turn_comes_back_with_its_outcome(
    tmp_path: Path, settled: str
) -> None:
    gate, ran, calls = asyncio.Event(), [], []

    async def slow() -> str:
        """Finish when let through."""
        ran.append("slow")
        await gate.wait()
        return "done"

    codes = {
        "start": 'submit_task("tool", "slow", {}, task_id="s1")\nfinal_answer("started")',
        "collect": 'wait_for_tasks(["s1"])\nfinal_answer(get_task_results(["s1"])["s1"])',
        "again": 'final_answer(get_task_results(["s1"])["s1"] + "!")',
    }

    def reply(messages: list[Any]) -> str:
        calls.append(latest_task(messages))
        return codes[calls[-1]]

    agent = create_async_agent(tools=[slow], model=FunctionModel(reply), journal=tmp_path / "j")
    async with agent:
        async with agent.session(session_id="s") as session:
            assert await session.arun("start") == "started"
            gate.set()  # the task finishes after its turn ...
            if settled == "between turns":  # (the app's own calls: recorded, not replayed)
                await session.scope.wait(["s1"])
                assert session.scope.get("s1").result == "done"
            assert await session.arun("collect") == "done"  # ... and the next turn reads it
        async with agent.session(session_id="s") as session:
            assert await session.arun("again") == "done!"
    assert ran == ["slow"]  # replayed with its recorded outcome, not run again
    assert calls == ["start", "collect", "again"]


async def test_a_streamed_turn_is_recorded_and_listed(tmp_path: Path) -> None:
    calls: list[str] = []
    agent = create_async_agent(model=remembering_model(calls), journal=tmp_path / "j.sqlite")
    async with agent:
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 2") == 2
            async with session.astream("add 3") as stream:
                kinds = [event.kind.value async for event in stream]
            assert await stream.result() == 5 and kinds[-1] == "final_answer"
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 4") == 9
        assert calls == ["2", "3", "4"]
        assert agent.journal is not None
        lines = [entry_summary(e) for e in agent.journal.entries("s")]
    assert "turn 2: add 3" in lines and "turn 2 completed" in lines


async def test_a_changed_agent_is_refused_unless_forced(tmp_path: Path) -> None:
    calls: list[str] = []
    path = tmp_path / "j.sqlite"
    async with create_async_agent(model=remembering_model(calls), journal=path) as agent:
        async with agent.session(session_id="s") as session:
            assert await session.arun("add 1") == 1
    changed = create_async_agent(
        model=remembering_model(calls), journal=path, instructions="Be brief."
    )
    async with changed:
        with pytest.raises(JournalMismatchError):
            async with changed.session(session_id="s"):
                pass
        async with changed.session(session_id="s", force=True) as session:
            assert await session.arun("add 2") == 3
    assert calls == ["1", "2"]
