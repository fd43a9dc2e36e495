"""A journaled run in a process of its own, for the crash tests (`test_crash.py`).

`python -m tests.durability.crash_worker JOURNAL RUN_ID LOG {crash,finish} {idempotent,not}`

Step 1 fans out three `fetch` tasks and merges them; step 2 submits one `charge` task and
answers with the total. Every tool execution and every model call appends a line to LOG (and
flushes it to disk), so the parent can count what ran in which process. With `crash`, `charge`
says `IN_FLIGHT` on stdout and then hangs: the parent kills this process there.
"""

from __future__ import annotations

import asyncio
import json
import sys

from agentloop import AgentloopError, create_async_agent
from agentloop.testing import FunctionModel

from ._worker_io import execution_log, fetch_tool, say

STEP_1 = """
ids = [submit_task("tool", "fetch", {"n": n}) for n in (1, 2, 3)]
print(wait_for_tasks(ids))
fetched = get_task_results(ids)
total = sum(fetched.values())
print("fetched", total)
"""
STEP_2 = """
charge_id = submit_task("tool", "charge", {"amount": total})
wait_for_tasks([charge_id])
receipt = get_task_results([charge_id])[charge_id]
final_answer({"total": total, "receipt": receipt if receipt else str(receipt)})
"""


def main() -> None:
    journal, run_id, log_path, mode, idempotent = sys.argv[1:6]

    log = execution_log(log_path)
    fetch = fetch_tool(log)

    async def charge(amount: int) -> str:
        """Charge an amount."""
        log(f"charge {amount}")
        if mode == "crash":
            say("IN_FLIGHT")
            await asyncio.Event().wait()
        return f"receipt-{amount}"

    def reply(messages: list) -> str:
        step = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")
        log(f"model step {step + 1}")
        return STEP_1 if step == 0 else STEP_2

    agent = create_async_agent(
        tools=[fetch, charge],
        model=FunctionModel(reply),
        journal=journal,
        idempotent={"charge"} if idempotent == "idempotent" else (),
    )

    async def run() -> None:
        async with agent:
            try:
                result = await agent.arun(
                    "Charge the fetched total.", run_id=run_id, return_full_result=True
                )
            except AgentloopError as exc:
                say(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
                raise SystemExit(3) from None
        summary = {
            "answer": result.output,
            "resumed": result.resumed,
            "replayed_steps": result.replayed_steps,
            "replayed_tasks": result.replayed_tasks,
            "rerun_tasks": result.rerun_tasks,
            "unknown_tasks": result.unknown_tasks,
        }
        say(json.dumps(summary))

    asyncio.run(run())


if __name__ == "__main__":
    main()
