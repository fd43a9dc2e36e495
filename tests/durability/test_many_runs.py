"""Many journaled runs at once: every one recorded whole, in a handful of group commits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from agentloop import SQLiteJournal, create_async_agent
from agentloop.journal import EntryKind, RunStatus, RunWrite
from agentloop.testing import FunctionModel, last_observation, turn

RUNS = 100
CODE = """
ids = [submit_task("tool", "double", {"n": n}) for n in (1, 2, 3)]
wait_for_tasks(ids)
final_answer(sum(get_task_results(ids).values()))
"""


class CountingJournal(SQLiteJournal):
    """Counts the group commits and the runs in each."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits: list[int] = []

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, object]:  # type: ignore[override]
        self.commits.append(len(writes))
        return super().write(writes, lease_seconds)  # type: ignore[return-value]


async def test_a_hundred_concurrent_runs_are_each_recorded_whole(tmp_path: Path) -> None:
    async def double(n: int) -> int:
        """Double a number."""
        await asyncio.sleep(0)
        return 2 * n

    journal = CountingJournal(tmp_path / "runs.sqlite")

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return CODE
        return f"final_answer({last_observation(messages)!r})"  # what went wrong, shown

    agent = create_async_agent(tools=[double], model=FunctionModel(reply), journal=journal)
    async with agent:
        answers = await asyncio.gather(*(agent.arun("go") for _ in range(RUNS)))
        runs = await agent.runs(limit=2 * RUNS)
    assert answers == [12] * RUNS
    assert len(runs) == RUNS and {r.status for r in runs} == {RunStatus.COMPLETED}
    for summary in runs:
        entries = journal.entries(summary.run_id)
        kinds = [e.kind for e in entries]
        assert kinds.count(EntryKind.SUBMITTED) == kinds.count(EntryKind.OUTCOME) == 3
        assert (summary.steps, summary.tasks, summary.answer) == (1, 3, 12)
    # group commits: far fewer transactions than runs times their ~four writes each
    assert len(journal.commits) < RUNS, journal.commits
    assert max(journal.commits) > 1
