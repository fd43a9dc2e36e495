"""The second process of the parked-runs proof (`test_parked_many.py`): it decides the runs
another process parked, from the journal alone, and resumes them.

`python -m tests.durability.park_worker JOURNAL RUN_ID ...`: for each run, read its pending
approvals, approve each, and resume it (all at once); print one JSON line
`{"answers": {run_id: answer}, "pending": {run_id: [task ids]}}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from ._worker_io import say

CODE = """
t = submit_task("tool", "deploy", {"env": "prod"})
wait_for_tasks([t], max_wait_time=120)
final_answer(get_task_results([t])[t])
"""


def build_agent(journal: Any, **options: Any) -> Any:
    """The agent both processes build (one configuration fingerprint)."""
    from agentloop import create_async_agent, current_task
    from agentloop.testing import ScriptedModel

    async def deploy(env: str) -> str:
        """Deploy the run's service.

        Args:
            env: where to deploy.
        """
        return f"{current_task().run_id} deployed to {env} by pid {os.getpid()}"

    return create_async_agent(
        tools=[deploy],
        model=ScriptedModel([CODE]),
        journal=journal,
        needs_approval={"deploy"},
        **options,
    )


async def decide_and_resume(journal: str, run_ids: list[str]) -> None:
    from agentloop import ApprovalDecision

    agent = build_agent(journal)

    async def one(run_id: str) -> tuple[list[str], Any]:
        pending = [request.task_id for request in await agent.pending_approvals(run_id)]
        for task_id in pending:
            await agent.decide(run_id, task_id, ApprovalDecision.approve("ok from the second"))
        return pending, await agent.resume(run_id)

    async with agent:
        done = await asyncio.gather(*(one(run_id) for run_id in run_ids))
    say(
        json.dumps(
            {
                "answers": {r: answer for r, (_, answer) in zip(run_ids, done, strict=True)},
                "pending": {r: pending for r, (pending, _) in zip(run_ids, done, strict=True)},
            }
        )
    )


def main() -> None:
    journal, *run_ids = sys.argv[1:]
    asyncio.run(decide_and_resume(journal, run_ids))


if __name__ == "__main__":
    main()
