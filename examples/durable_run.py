"""A run that survives its process: record it in a journal, kill the process, resume it.

    python examples/durable_run.py --journal runs.sqlite --crash   # dies while charging
    python examples/durable_run.py --journal runs.sqlite           # resumes: no refetching
    agentloop runs --journal runs.sqlite                           # what the journal holds

The scripted model's first step fetches three prices in parallel; its second charges their
total and answers. With `--crash` the process exits abruptly (`os._exit`, as a killed pod
would) while the charge runs. Run again with the same run id, the recorded steps replay from
the journal: the model is not asked again and the prices are not fetched again. `charge` is
marked idempotent (the payment provider deduplicates on the order id), so it runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import ScriptedModel

logger = logging.getLogger("example")

FETCH = """
ids = [submit_task("tool", "fetch_price", {"item": item}) for item in ("tea", "milk", "bread")]
wait_for_tasks(ids)
prices = get_task_results(ids)
total = sum(prices.values())
print("total", total)
"""
CHARGE = """
receipt = charge(order="order-42", amount=total)
final_answer(f"charged {total} for order-42: {receipt}")
"""


def build(journal: str, crash: bool) -> AsyncAgent:
    async def fetch_price(item: str) -> int:
        """The price of an item, in cents.

        Args:
            item: what to price.
        """
        logger.info("fetching the price of %s", item)
        return {"tea": 350, "milk": 120, "bread": 280}[item]

    async def charge(order: str, amount: int) -> str:
        """Charge an order (the provider deduplicates on `order`).

        Args:
            order: the order id.
            amount: cents to charge.
        """
        logger.info("charging %s cents for %s", amount, order)
        if crash:
            os._exit(1)  # the process dies mid-task, as a killed container would
        return f"receipt for {order}"

    return create_async_agent(
        tools=[fetch_price, charge],
        model=ScriptedModel([FETCH, CHARGE]),
        journal=journal,
        idempotent={"charge"},
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journal", default="runs.sqlite")
    parser.add_argument("--run-id", default="order-42")
    parser.add_argument("--crash", action="store_true", help="die while the charge runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    async with build(args.journal, args.crash) as agent:
        result = await agent.arun("Charge order-42.", run_id=args.run_id, return_full_result=True)
    logger.info(
        "answer: %s (resumed: %s, steps replayed: %d, tasks replayed: %d, rerun: %d)",
        result.output,
        result.resumed,
        result.replayed_steps,
        result.replayed_tasks,
        result.rerun_tasks,
    )


if __name__ == "__main__":
    asyncio.run(main())
