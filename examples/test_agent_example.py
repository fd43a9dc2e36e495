"""How to test your own agentloop agent: offline, deterministic, fast.

A `ScriptedModel` stands in for the LLM and replies with the code you give it, one step per
controller turn, so a test pins down what your tools and the task machinery do with that code.
The `agentloop_leak_check` fixture (from agentloop's pytest plugin, installed with the package)
fails a test that leaves threads running.

Run it with `pytest examples/test_agent_example.py` (needs pytest-asyncio; with
`asyncio_mode = "auto"` the `@pytest.mark.asyncio` marks are optional).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import ScriptedModel

# -- the application code under test --------------------------------------------------------------

_STOCK = {"apple": 12, "pear": 7, "plum": 30}


async def lookup_stock(sku: str) -> int:
    """Units in stock for one product (an async call to the inventory service)."""
    await asyncio.sleep(0.05)
    if sku not in _STOCK:
        raise KeyError(f"no product {sku!r}")
    return _STOCK[sku]


def price_of(sku: str) -> float:
    """Unit price of one product (a blocking call, run in a worker thread)."""
    time.sleep(0.05)
    return {"apple": 0.5, "pear": 0.75, "plum": 0.25}[sku]


def make_agent(model: ScriptedModel) -> AsyncAgent:
    return create_async_agent(tools=[lookup_stock, price_of], model=model, max_workers=2)


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_agent_merges_parallel_lookups(agentloop_leak_check: None) -> None:
    model = ScriptedModel(
        [
            """
skus = ["apple", "pear", "plum"]
stock_ids = {sku: submit_task("tool", "lookup_stock", {"sku": sku}) for sku in skus}
price_ids = {sku: submit_task("tool", "price_of", {"sku": sku}) for sku in skus}
wait_for_tasks(list(stock_ids.values()) + list(price_ids.values()), max_wait_time=10)
stock = get_task_results(list(stock_ids.values()))
prices = get_task_results(list(price_ids.values()))
final_answer(sum(stock[stock_ids[s]] * prices[price_ids[s]] for s in skus))
"""
        ]
    )
    async with make_agent(model) as agent:
        answer = await agent.arun("What is our stock worth?")

        assert answer == pytest.approx(12 * 0.5 + 7 * 0.75 + 30 * 0.25)
        assert model.calls == 1  # one controller turn: the script was followed as written
        stats = agent.task_manager.get_statistics()
        assert stats["total_submitted"] == 6
        assert stats["total_completed"] == 6
        assert stats["total_failed"] == 0
        assert (stats["pending"], stats["running"]) == (0, 0)  # the run left nothing behind


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_failed_task_is_visible_to_the_model(agentloop_leak_check: None) -> None:
    model = ScriptedModel(
        [
            # A failed task's result is a falsy TaskFailure that says what went wrong.
            """
ids = [submit_task("tool", "lookup_stock", {"sku": sku}) for sku in ["apple", "kiwi"]]
wait_for_tasks(ids, max_wait_time=10)
results = get_task_results(ids)
missing = [str(results[i]) for i in ids if not results[i]]
print(missing)
""",
            # The next turn can react to what the previous one printed.
            """
final_answer({"apple": results[ids[0]], "errors": missing})
""",
        ]
    )
    async with make_agent(model) as agent:
        answer = await agent.arun("How many apples and kiwis do we have?")

        assert answer["apple"] == 12
        [error] = answer["errors"]
        assert "FAILED" in error
        assert "no product 'kiwi'" in error
        stats = agent.task_manager.get_statistics()
        assert (stats["total_completed"], stats["total_failed"]) == (1, 1)
        assert (stats["pending"], stats["running"]) == (0, 0)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_concurrent_runs_are_isolated(agentloop_leak_check: None) -> None:
    # One agent (and one model) shared by concurrent runs, as in a web server.
    model = ScriptedModel(
        [
            """
task_id = submit_task("tool", "lookup_stock", {"sku": "plum"}, task_id="plums")
wait_for_tasks([task_id], max_wait_time=10)
final_answer(get_task_results([task_id])[task_id])
"""
        ]
    )
    async with make_agent(model) as agent:
        answers = await asyncio.gather(*(agent.arun("How many plums?") for _ in range(5)))

        assert answers == [30] * 5  # the same task id in five runs: no clash, no mix-up
        stats = agent.task_manager.get_statistics()
        assert (stats["total_submitted"], stats["total_completed"]) == (5, 5)
        assert stats["open_scopes"] == 0
