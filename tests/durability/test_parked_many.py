"""The proof that parked runs hold nothing: a hundred runs park in this process, then a second
process decides them from the journal alone and each one completes with its approved task's
result (issue 27, point 3). `nox -s parked` runs it with 100 runs (~3 s); the default suite
with 10.

"No controller thread held": after the parks, no call is in a controller thread, and closing
the agent's controller thread pool (which ends idle threads at once and busy ones only when
their call ends) leaves no `agentloop-controller-*` thread alive. A run that still blocked in
`wait_for_tasks` would keep its thread busy, so its thread would still be listed.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from agentloop import RunParkedError, SQLiteJournal
from agentloop.journal import RunStatus

from . import _spawn
from .park_worker import build_agent

RUNS = int(os.environ.get("AGENTLOOP_PARKED_RUNS", "10"))
"""How many runs park: `AGENTLOOP_PARKED_RUNS` (`nox -s parked` sets 100), else a smoke of 10."""
TIMEOUT = 120


def controller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("agentloop-controller")]


@pytest.mark.timeout(TIMEOUT)
async def test_a_hundred_parked_runs_hold_no_thread_and_resume_in_another_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.sqlite"
    run_ids = [f"deploy-{n:03}" for n in range(RUNS)]
    agent = build_agent(path, park_after=0.1)
    async with agent:
        outcomes = await asyncio.gather(
            *(agent.arun("Deploy the service.", run_id=r) for r in run_ids),
            return_exceptions=True,
        )
        assert all(isinstance(o, RunParkedError) for o in outcomes), outcomes[:3]
        assert {o.run_id for o in outcomes} == set(run_ids)  # type: ignore[union-attr]

        # nothing in memory, no slot, no thread at work
        assert not agent._runs
        assert not any(agent.task_manager.scope_is_open(r) for r in run_ids)
        stats = agent.task_manager.get_statistics()
        assert (stats["pending"], stats["running"]) == (0, 0)
        assert agent._limiters.runs.borrowed_tokens == 0
        assert agent._limiters.threads.borrowed_tokens == 0
        assert agent._controller_threads.live == 0
        held = controller_threads()
        assert held, "the runs ran their code in controller threads"
        agent._controller_threads.close()  # idle ones end now; a busy one would not
        for thread in held:
            await asyncio.to_thread(thread.join, 10)
        assert controller_threads() == []

    with SQLiteJournal(path) as journal:
        summaries = {r: journal.run(r) for r in run_ids}
    assert {s.status for s in summaries.values()} == {RunStatus.PARKED}
    assert all(s.holder is None for s in summaries.values())

    worker = _spawn.worker("park_worker", str(path), *run_ids)
    out, err = await asyncio.to_thread(worker.communicate, None, TIMEOUT)
    assert worker.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["pending"] == {r: ["deploy_1"] for r in run_ids}
    answers = report["answers"]
    for run_id in run_ids:
        assert answers[run_id].startswith(f"{run_id} deployed to prod by pid ")
        assert not answers[run_id].endswith(f"pid {os.getpid()}")  # ran in the second process
    with SQLiteJournal(path) as journal:
        assert {journal.run(r).status for r in run_ids} == {RunStatus.COMPLETED}
