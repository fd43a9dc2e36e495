"""A journal written by agentloop 0.1.0 (`fixtures/journal-0.1.0.sqlite`) reads with today's code.

The file was made by `old_journal_agent.py` before the package was regrouped into subpackages;
the journal names no module path, so moving code must not change what it reads back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agentloop import RunStatus

from . import old_journal_agent as old

FIXTURE = Path(__file__).parent / "fixtures" / "journal-0.1.0.sqlite"


def copy(tmp_path: Path) -> Path:
    path = tmp_path / "runs.sqlite"
    shutil.copyfile(FIXTURE, path)
    return path


async def test_the_old_journal_lists_its_runs(tmp_path: Path) -> None:
    calls: list[str] = []
    async with old.agent(copy(tmp_path), calls) as agent:
        runs = {summary.run_id: summary for summary in await agent.runs()}
    assert runs[old.COMPLETED].status is RunStatus.COMPLETED
    assert runs[old.UNFINISHED].status is RunStatus.FAILED
    assert runs[old.COMPLETED].answer == {
        "total": 60,
        "rows": [{"row": i, "square": i * i} for i in range(4)],
    }


async def test_a_completed_old_run_answers_without_running_anything(tmp_path: Path) -> None:
    calls: list[str] = []
    async with old.agent(copy(tmp_path), calls, failing_step=1) as agent:
        result = await agent.arun("sum the numbers", run_id=old.COMPLETED, return_full_result=True)
    assert result.resumed and result.output["total"] == 60
    assert calls == []


async def test_an_unfinished_old_run_resumes_from_its_recorded_step(tmp_path: Path) -> None:
    calls: list[str] = []
    async with old.agent(copy(tmp_path), calls) as agent:
        result = await agent.arun("sum the numbers", run_id=old.UNFINISHED, return_full_result=True)
    assert result.output == {"total": 60, "rows": [{"row": i, "square": i * i} for i in range(4)]}
    assert (result.replayed_steps, result.replayed_tasks) == (1, 4)
    assert calls == []  # every task's outcome came from the journal
