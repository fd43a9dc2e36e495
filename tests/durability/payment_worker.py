"""A journaled run that charges an order through a payment service, in a process of its own,
for the exactly-once tests (`test_exactly_once.py`).

`python -m tests.durability.payment_worker JOURNAL RUN_ID SERVICE_URL ORDER MODE`

The model's code submits one `charge` task and answers with its receipt. `charge` is a sync
tool (it runs in a worker thread) that POSTs the order with `current_task().idempotency_key`;
the agent's reconcile hook asks the service `GET /charges/{key}`. `charge` is not marked
idempotent: without the hook a resumed run would report its outcome unknown.

MODE says where this process dies (the parent SIGKILLs it, or it kills itself):

- `before`: `charge` says `CHARGING` on stdout and blocks before sending anything;
- `committed`: `charge` sends the request; the service commits it and tells the parent,
  which kills this process before any reply;
- `replied`: `charge` reads the service's reply and kills its own process before the outcome
  reaches the journal;
- `finish`: nothing dies; the last line on stdout is the run's summary as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from agentloop import (
    AgentloopError,
    Reconciliation,
    TaskContext,
    create_async_agent,
    current_task,
)
from agentloop.testing import FunctionModel

from ._worker_io import say

STEP = """
charge_id = submit_task("tool", "charge", {"order": ORDER, "amount": 4200})
wait_for_tasks([charge_id])
receipt = get_task_results([charge_id])[charge_id]
final_answer({"order": ORDER, "receipt": receipt if receipt else str(receipt)})
"""


def main() -> None:
    journal, run_id, url, order, mode = sys.argv[1:6]
    client = httpx.Client(base_url=url, timeout=30)

    def charge(order: str, amount: int) -> dict[str, Any]:
        """Charge an order.

        Args:
            order: the order id.
            amount: the amount in cents.
        """
        task = current_task()  # in this worker thread: the task's context was copied here
        if mode == "before":
            say("CHARGING")
            threading.Event().wait()  # the parent kills this process here
        reply = client.post(
            "/charges",
            json={"order": order, "amount": amount},
            headers={"Idempotency-Key": task.idempotency_key, "X-Attempt": str(task.attempt)},
        )
        reply.raise_for_status()
        if mode == "replied":
            os.kill(os.getpid(), signal.SIGKILL)  # the reply is read, its outcome not journaled
        receipt: dict[str, Any] = reply.json()
        return receipt

    async def check_charge(task: TaskContext, arguments: Mapping[str, Any]) -> Reconciliation:
        """Did the interrupted attempt charge the order? The service knows by key."""
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            found = await http.get(f"/charges/{task.idempotency_key}")
        if found.status_code == 404:
            return Reconciliation.not_done()
        if found.status_code == 200:
            return Reconciliation.done(found.json())
        return Reconciliation.unknown(f"the payment service answered {found.status_code}")

    agent = create_async_agent(
        tools=[charge],
        model=FunctionModel(lambda messages: f"ORDER = {order!r}\n{STEP}"),
        journal=journal,
        reconcile={"charge": check_charge},
    )

    async def run() -> None:
        async with agent:
            try:
                result = await agent.arun(
                    f"Charge order {order}.", run_id=run_id, return_full_result=True
                )
            except AgentloopError as exc:
                say(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
                raise SystemExit(3) from None
        say(
            json.dumps(
                {
                    "answer": result.output,
                    "resumed": result.resumed,
                    "rerun_tasks": result.rerun_tasks,
                    "unknown_tasks": result.unknown_tasks,
                    "reconciled_tasks": result.reconciled_tasks,
                }
            )
        )

    asyncio.run(run())


if __name__ == "__main__":
    main()
