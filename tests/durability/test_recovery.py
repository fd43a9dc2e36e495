"""Automatic recovery on one host (SQLite): `agent.recover()`, `agent.recovering()`, and the
hand-back of runs in flight when an agent shuts down.

Runs are killed for real (`SIGKILL`) in a worker process (`recovery_worker.py`); the test
process recovers them. Every execution of the `work` tool is a line of a log file, so each
test counts what ran where.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentloop import RegistryClosedError, RunStatus, RunSummary, SQLiteJournal
from tests.durability.recovery_worker import build_agent, task_for

from . import _spawn

TIMEOUT = 60


def hold(journal: Path, log: Path, *run_ids: str) -> subprocess.Popen[str]:
    """A worker that runs `run_ids` and hangs in each one's `work` (see `recovery_worker`)."""
    return _spawn.worker("recovery_worker", str(journal), str(log), "hold", *run_ids)


def wait_in_flight(process: subprocess.Popen[str], count: int) -> None:
    """Block (on the pipe, not the clock) until `count` runs are inside `work`."""
    assert process.stdout is not None
    for _ in range(count):
        line = process.stdout.readline()
        if not line.startswith("IN_FLIGHT"):
            process.kill()
            _, stderr = process.communicate(timeout=TIMEOUT)
            pytest.fail(f"the worker did not reach `work`: {line!r}\n{stderr}")


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL


def works(log: Path) -> list[tuple[int, str]]:
    """(pid, key) of every `work` execution, in order."""
    found = []
    for line in log.read_text().splitlines():
        pid, _, key = line.split(" ", 2)
        found.append((int(pid), key))
    return found


async def killed_holding(journal: Path, log: Path, *run_ids: str) -> int:
    """Run `run_ids` in a worker, kill it while they are all in flight; return its pid (as
    it logged it: `process.pid` is the warm interpreter's client, see `_spawn`)."""
    process = hold(journal, log, *run_ids)
    await asyncio.to_thread(wait_in_flight, process, len(run_ids))
    await asyncio.to_thread(kill, process)
    [pid] = {pid for pid, key in works(log) if key in run_ids}  # `work` logs, then says so
    return pid


@pytest.mark.timeout(TIMEOUT * 2)
async def test_recover_finishes_a_killed_run_and_leaves_other_agents_runs_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    dead = await killed_holding(journal, log, "order-1", "foreign-1")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    agent = build_agent(str(journal), str(log), hang=False, tracer_provider=provider)
    caplog.set_level(logging.INFO, logger="agentloop")
    async with agent:
        recovered = await agent.recover()
        again = await agent.recover()

    assert [r.run_id for r in recovered] == ["order-1"]
    (run,) = recovered
    assert run.ok and run.result is not None and run.result.output == "done-order-1"
    assert run.result.resumed and run.result.rerun_tasks == 1  # idempotent: ran again
    assert run.previous.holder is not None and run.previous.holder.pid == dead
    assert (
        run.previous_holder.startswith(f"pid {dead} on ") and "process gone" in run.previous_holder
    )
    assert again == []  # finished: nothing left to recover
    assert works(log).count((os.getpid(), "order-1")) == 1
    assert (os.getpid(), "foreign-1") not in works(log)  # another agent's run: left alone

    with SQLiteJournal(journal, read_only=True) as store:
        done, foreign = store.run("order-1"), store.run("foreign-1")
    assert done is not None and done.status is RunStatus.COMPLETED and done.attempts == 2
    assert foreign is not None and foreign.status is RunStatus.RUNNING and foreign.attempts == 1
    assert foreign.holder is not None and foreign.holder.pid == dead

    spans = [s for s in exporter.get_finished_spans() if s.attributes and
             s.attributes.get("agentloop.run.recovered")]  # fmt: skip
    assert len(spans) == 1
    assert spans[0].attributes is not None
    assert spans[0].attributes["agentloop.run.previous_holder"] == run.previous_holder
    assert any("recovering run order-1" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(TIMEOUT * 2)
async def test_recovering_picks_up_a_run_whose_holder_dies_while_it_runs(tmp_path: Path) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    SQLiteJournal(journal).close()
    agent = build_agent(str(journal), str(log), hang=False)
    async with agent, agent.recovering(interval=0.2) as progress:
        await progress.wait_passes(1)  # nothing to do yet
        process = hold(journal, log, "order-2")
        await asyncio.to_thread(wait_in_flight, process, 1)
        passes = progress.passes
        await progress.wait_passes(passes + 1)  # a pass while it lives leaves it alone
        assert progress.active == set() and progress.recovered == []
        await asyncio.to_thread(kill, process)
        run = await asyncio.wait_for(progress.wait_for("order-2"), TIMEOUT)
    assert run.ok and run.result is not None and run.result.output == "done-order-2"
    assert [key for _, key in works(log)] == ["order-2", "order-2"]  # once per process


def hanging_agent(journal: Path, log: Path, **options: Any) -> tuple[Any, asyncio.Event]:
    """`build_agent`'s configuration, with a `work` that hangs (same fingerprint)."""
    from agentloop import create_async_agent
    from agentloop.testing import FunctionModel

    reference = build_agent(str(journal), str(log), hang=False)
    in_flight = asyncio.Event()

    async def work(key: str) -> str:
        """Do the work of one key."""
        in_flight.set()
        await asyncio.Event().wait()
        return key

    agent = create_async_agent(
        tools=[work],
        model=FunctionModel(reference.model.function),
        journal=reference.journal,
        idempotent={"work"},
        lease_seconds=30,
        **options,
    )
    return agent, in_flight


@pytest.mark.timeout(TIMEOUT)
async def test_shutdown_hands_runs_back_and_another_agent_recovers_them_at_once(
    tmp_path: Path,
) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    leaving, in_flight = hanging_agent(journal, log)
    run = asyncio.create_task(leaving.arun(task_for("order-3"), run_id="order-3"))
    await in_flight.wait()
    await leaving.aclose()
    with pytest.raises(RegistryClosedError):
        await run

    summary = leaving.journal.run("order-3")
    assert summary.status is RunStatus.RUNNING  # not failed, not cancelled: handed back
    assert summary.holder is None and summary.lease_expires is None

    # the lease was 30 s and its holder (this process) lives: only the hand-back frees it
    taking_over = build_agent(str(journal), str(log), hang=False)
    async with taking_over:
        (recovered,) = await taking_over.recover()
    assert recovered.previous_holder == "released"
    assert recovered.result is not None and recovered.result.output == "done-order-3"


@pytest.mark.timeout(TIMEOUT)
async def test_leaving_recovering_hands_back_the_runs_it_resumed(tmp_path: Path) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    await killed_holding(journal, log, "order-4")
    agent, in_flight = hanging_agent(journal, log)
    async with agent:
        async with agent.recovering(interval=0.2) as progress:
            await in_flight.wait()  # recovery resumed order-4; its `work` hangs here
            assert progress.active == {"order-4"}
        summary = agent.journal.run("order-4")
    assert summary.status is RunStatus.RUNNING and summary.holder is None  # handed back
    assert summary.attempts == 2


@pytest.mark.timeout(TIMEOUT)
async def test_runs_their_caller_cancelled_or_that_failed_are_not_recovered(
    tmp_path: Path,
) -> None:
    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    agent, in_flight = hanging_agent(journal, log)
    async with agent:
        run = asyncio.create_task(agent.arun(task_for("order-5"), run_id="order-5"))
        await in_flight.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert agent.journal.run("order-5").status is RunStatus.CANCELLED
        assert await agent.recover() == []  # the caller cancelled it: only `arun` resumes it


@pytest.mark.timeout(TIMEOUT)
async def test_bad_recovery_calls_say_what_is_wrong(tmp_path: Path) -> None:
    from agentloop import InvalidArgumentsError, create_async_agent
    from agentloop.testing import FunctionModel

    agent = create_async_agent(model=FunctionModel(lambda m: "final_answer(1)"))
    with pytest.raises(InvalidArgumentsError, match="journal="):
        await agent.recover()
    journaled = build_agent(str(tmp_path / "runs.sqlite"), str(tmp_path / "log"), hang=False)
    with pytest.raises(InvalidArgumentsError, match="`interval` must be a positive number"):
        async with journaled.recovering(interval=0):
            pass
    with pytest.raises(InvalidArgumentsError, match="`max_concurrent` must be a positive int"):
        await journaled.recover(max_concurrent=0)


class StaleJournal(SQLiteJournal):
    """Lists candidates as they were before another process resumed and ended them."""

    stale: list[RunSummary] = []

    def recoverable(self, limit: int = 100) -> list[RunSummary]:
        return self.stale


@pytest.mark.timeout(TIMEOUT)
async def test_a_run_another_process_ended_after_the_listing_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    journal, log = StaleJournal(tmp_path / "runs.sqlite"), tmp_path / "work.log"
    agent = build_agent(journal, str(log), hang=False)
    cancelling, in_flight = hanging_agent(tmp_path / "runs.sqlite", log)
    async with agent, cancelling:
        await agent.arun(task_for("done"), run_id="done")
        run = asyncio.create_task(cancelling.arun(task_for("stopped"), run_id="stopped"))
        await in_flight.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        ended = {s.run_id: s for s in journal.runs()}
        journal.stale = [  # as a listing made while both were still abandoned saw them
            dataclasses.replace(s, status=RunStatus.RUNNING, holder=None, lease_expires=None)
            for s in ended.values()
        ]
        assert await agent.recover() == []
        after = {s.run_id: s for s in journal.runs()}
    assert after["done"].status is RunStatus.COMPLETED and after["done"].attempts == 1
    assert after["stopped"].status is RunStatus.CANCELLED
    assert after["stopped"].error == ended["stopped"].error
    assert works(log).count((os.getpid(), "done")) == 1


def test_agentloop_runs_shows_who_holds_each_running_run(tmp_path: Path) -> None:
    from agentloop.journal import LeaseHolder
    from tests.cli.test_runs_command import runs, table_rows

    path = tmp_path / "runs.sqlite"
    far = LeaseHolder(host="web-2", pid=7710)
    with SQLiteJournal(path) as journal:
        for run_id, lease in (("handed-back", 600.0), ("expired", -1.0), ("live", 600.0)):
            journal.claim(
                run_id, task="t", fingerprint="f", holder=far, lease_seconds=lease, force=False
            )
        journal.finish("handed-back", far, RunStatus.RUNNING)

    listed = runs("--journal", str(path))
    assert listed.returncode == 0, listed.stderr
    rows = table_rows(listed.stdout)
    assert rows["handed-back"][-1] == "released"
    assert rows["expired"][-1] == "7710@web-2 expired"
    assert rows["live"][-1] in ("7710@web-2 9m left", "7710@web-2 10m left")

    shown = runs("--journal", str(path), "handed-back")
    assert "lease     released" in shown.stdout
    as_json = runs("--journal", str(path), "--json")
    by_id = {row["run_id"]: row for row in map(json.loads, as_json.stdout.splitlines())}
    assert by_id["handed-back"]["lease"] == {
        "host": None, "pid": None, "expires_at": None, "state": "released"
    }  # fmt: skip


@pytest.mark.parametrize("query", ["store", "default"])
def test_recoverable_lists_runs_nobody_runs_oldest_first(tmp_path: Path, query: str) -> None:
    from agentloop.journal import Journal, LeaseHolder

    far, gone = LeaseHolder(host="far-away", pid=1), LeaseHolder(pid=dead_pid())
    with SQLiteJournal(tmp_path / "runs.sqlite") as journal:
        for run_id, holder, lease in (
            ("expired", far, -1.0),
            ("gone", gone, 600.0),
            ("live", far, 600.0),
            ("handed-back", far, 600.0),
            ("done", far, 600.0),
            ("failed", far, -1.0),
        ):
            journal.claim(
                run_id, task="t", fingerprint="f", holder=holder, lease_seconds=lease, force=False
            )
        journal.finish("handed-back", far, RunStatus.RUNNING)
        journal.finish("done", far, RunStatus.COMPLETED, answer={"json": 1})
        journal.finish("failed", far, RunStatus.FAILED, error="boom")
        listed = (
            journal.recoverable
            if query == "store"
            else lambda n=100: Journal.recoverable(journal, n)
        )
        assert [s.run_id for s in listed()] == ["expired", "gone", "handed-back"]
        assert [s.run_id for s in listed(1)] == ["expired"]


def dead_pid() -> int:
    """A pid of this host whose process has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.timeout(TIMEOUT)
async def test_an_error_of_the_recovering_block_comes_out_as_it_is(tmp_path: Path) -> None:
    agent = build_agent(str(tmp_path / "runs.sqlite"), str(tmp_path / "log"), hang=False)
    async with agent:
        with pytest.raises(ValueError, match="the service broke"):
            async with agent.recovering(interval=0.1) as progress:
                await progress.wait_passes(2)
                raise ValueError("the service broke")


@pytest.mark.timeout(TIMEOUT)
async def test_a_journaled_session_whose_process_died_is_left_for_its_app(tmp_path: Path) -> None:
    from agentloop.agent._durable_session import SESSION_TASK
    from agentloop.journal import LeaseHolder

    journal, log = tmp_path / "runs.sqlite", tmp_path / "work.log"
    agent = build_agent(str(journal), str(log), hang=False)
    async with agent:
        async with agent.session(session_id="support-1") as session:
            await session.arun(task_for("in-session"))
        fingerprint = agent.journal.run("support-1").fingerprint
        far = LeaseHolder(host="far-away", pid=1)  # a session whose holder died elsewhere
        agent.journal.claim(
            "support-2", task=SESSION_TASK, fingerprint=fingerprint, holder=far,
            lease_seconds=-1, force=False,
        )  # fmt: skip
        async with agent.recovering(interval=0.1) as progress:
            await progress.wait_passes(1)
        assert await agent.recover() == []
        assert progress.skipped_sessions == 1 and progress.recovered == []
        assert agent.journal.run("support-2").attempts == 1  # untouched
