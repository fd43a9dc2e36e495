"""Per-run model budgets, counted across managed agents (issue 16, budgets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from smolagents import CodeAgent
from smolagents.monitoring import TokenUsage

from agentloop import BudgetExceededError, Limits, RunEventKind, create_async_agent
from agentloop.testing import FunctionModel


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


class TokenModel(FunctionModel):
    """A FunctionModel whose replies report `tokens` tokens each (input + output)."""

    def __init__(self, reply: Any, tokens: int) -> None:
        super().__init__(reply)
        self.tokens = tokens

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        message = super().generate(*args, **kwargs)
        message.token_usage = TokenUsage(input_tokens=self.tokens - 1, output_tokens=1)
        return message


def endless(messages: list[Any]) -> str:
    return "x = 1"  # never a final answer


async def test_an_endless_model_stops_after_exactly_max_model_calls() -> None:
    model = FunctionModel(endless)
    agent = create_async_agent(model=model, limits=Limits(max_model_calls=4), max_steps=50)
    async with agent:
        with pytest.raises(BudgetExceededError, match="budget of 4 model calls"):
            await within(20, agent.arun("go"))
        assert model.calls == 4
        stats = agent.task_manager.get_statistics()
    assert stats["model_calls"] == 4


async def test_sub_agent_calls_count_and_stop_when_the_budget_is_spent() -> None:
    sub_model = FunctionModel(endless)
    expert = CodeAgent(
        tools=[], model=sub_model, name="expert", description="never done", max_steps=50
    )
    controller = FunctionModel(
        lambda m: 'wait_for_tasks([submit_task("managed_agent", "expert", {"task": "t"})])'
    )
    agent = create_async_agent(
        managed_agents=[expert], model=controller, limits=Limits(max_model_calls=6), max_steps=50
    )
    async with agent:
        with pytest.raises(BudgetExceededError, match="budget of 6 model calls"):
            await within(30, agent.arun("go"))
        assert await agent.task_manager._engine.runner.settle(10) == 0  # no task still running
        calls = controller.calls + sub_model.calls
        stats = agent.task_manager.get_statistics()
        assert (stats["running"], stats["pending"]) == (0, 0)
    assert calls == 6 and sub_model.calls >= 1
    assert controller.calls + sub_model.calls == calls  # nothing charged after the stop


async def test_a_token_budget_stops_once_the_reported_usage_passes_it() -> None:
    model = TokenModel(endless, tokens=100)
    agent = create_async_agent(model=model, limits=Limits(max_total_tokens=250), max_steps=50)
    async with agent:
        stream = agent.astream("go")
        async with stream:
            events = [event async for event in stream]
        with pytest.raises(BudgetExceededError, match="used 300 tokens, past its budget of 250"):
            await stream.result()
    assert model.calls == 3
    end = events[-1].to_dict()
    assert end["kind"] == RunEventKind.RUN_FAILED
    assert end["usage"] == {
        "model_calls": 3,
        "input_tokens": 297,
        "output_tokens": 3,
        "total_tokens": 300,
        "cost_usd": None,  # a test double has no price
        "unpriced_calls": 3,
        "max_model_calls": None,
        "max_total_tokens": 250,
        "max_cost_usd": None,
        "sub_agents": {},
    }


async def test_without_a_budget_usage_is_still_counted() -> None:
    model = TokenModel(lambda m: "final_answer(1)", tokens=7)
    agent = create_async_agent(model=model)
    async with agent:
        assert await within(20, agent.arun("go")) == 1
        stats = agent.task_manager.get_statistics()
    assert (stats["model_calls"], stats["total_tokens"]) == (1, 7)
