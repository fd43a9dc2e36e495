"""A journaled run in a process of its own, killed as its second model call starts
(`test_crash_before_model.py` forks it from a preloaded fork server, so a trial costs no
interpreter start).

Step 1 fans out three `fetch` tasks (idempotent: a resumed run runs them again if their
outcomes are not in the journal), waits for them and reads their results; step 2 answers with
the total. Every tool execution and model call appends a line to `log` (flushed to disk). With
`crash`, the second model call creates `at_model_2` and blocks: the parent kills the process
there, right after the model's code saw the three results.

The journal is SQLite whose every write first sleeps `delay` seconds: a slow disk or a
database across a network. It widens the window between an outcome being queued and being
committed, which is what the guarantee closes; the guarantee holds at any speed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentloop import SQLiteJournal, create_async_agent
from agentloop.journal import RunWrite
from agentloop.testing import FunctionModel

from ._worker_io import execution_log, fetch_tool

STEP_1 = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2, 3)]
wait_for_tasks(ids)
total = sum(get_task_results(ids).values())
print("fetched", total)
"""
STEP_2 = "final_answer(total)"


class SlowJournal(SQLiteJournal):
    """SQLite whose group commits take `delay` seconds longer."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path)
        self._delay = delay

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, Any]:
        time.sleep(self._delay)
        return super().write(writes, lease_seconds)


def trial(trial_dir: str, mode: str, delay: float) -> None:
    """One process's part of a trial, in `trial_dir`: `crash` (blocks at model call 2) or
    `finish` (writes `result.json`)."""
    where = Path(trial_dir)
    log_path = where / "log"

    log = execution_log(log_path)
    fetch = fetch_tool(log)

    def reply(messages: list[Any]) -> str:
        step = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")
        log(f"model step {step + 1}")
        if step == 0:
            return STEP_1
        if mode == "crash":
            (where / "at_model_2").touch()
            threading.Event().wait()  # the controller thread blocks; the parent kills us
        return STEP_2

    async def run() -> None:
        agent = create_async_agent(
            tools=[fetch],
            model=FunctionModel(reply),
            journal=SlowJournal(where / "runs.sqlite", delay),
            idempotent={"fetch"},
        )
        async with agent:
            result = await agent.arun("Add the numbers.", run_id="r", return_full_result=True)
        summary = {"answer": result.output, "rerun_tasks": result.rerun_tasks}
        (where / "result.json").write_text(json.dumps(summary))

    asyncio.run(run())
