"""A run service for a research agent: `agentloop serve` on a scripted planner (no LLM).

    agentloop serve examples.serve_app:make_agent --journal runs.sqlite
    # then: open http://127.0.0.1:8000/ (the console), or
    curl -s -X POST localhost:8000/api/runs -H 'content-type: application/json' \\
         -d '{"task": "compare three sources"}'
    curl -N localhost:8000/api/runs/<run_id>/events

The agent fetches three sources in parallel (each a simulated 0.3 s call) and merges them;
`publish` needs a person's approval (approve it from the console or
`POST /api/runs/<run_id>/approvals/publish`). With `--journal`, a second
`agentloop serve` on the same journal answers for the same runs, and resumes the runs of a
server that died (docs/serve.md, "Replicas").
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import ScriptedModel

PLAN = """
ids = [submit_task("tool", "fetch_source", {"name": n}, task_id=f"fetch_{n}")
       for n in ("arxiv", "news", "patents")]
wait_for_tasks(ids)
found = get_task_results(ids)
note = submit_task("tool", "publish", {"summary": " | ".join(found.values())}, task_id="publish")
wait_for_tasks([note])
final_answer({"sources": found, "published": get_task_results([note])[note]})
"""


async def fetch_source(name: str) -> str:
    """Fetch what one source says (a simulated 0.3 s call).

    Args:
        name: the source.
    """
    await asyncio.sleep(0.3)
    return f"{name}: 3 relevant findings"


async def publish(summary: str) -> str:
    """Publish the merged summary (needs approval).

    Args:
        summary: what to publish.
    """
    return f"published {len(summary)} characters"


def make_agent(journal: Any = None, *, approvals: bool = True) -> AsyncAgent:
    """The served agent (`agentloop serve` calls it with `journal=` when given `--journal`)."""
    return create_async_agent(
        tools=[fetch_source, publish],
        model=ScriptedModel([PLAN]),  # each run's first step: the plan above
        name="research",
        journal=journal,
        idempotent=["fetch_source"],
        needs_approval=["publish"] if approvals else None,
    )
