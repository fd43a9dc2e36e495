"""A fallback chain of two `LiteLLMModel`s on two local stubs: the primary's provider answers
429 (retries off, so the rate limit reaches the chain), the call moves to the fallback's, and
the run's stream says so. The error class is litellm's own `RateLimitError`, recognised by
name (agentloop imports no provider library to classify it)."""

from __future__ import annotations

import litellm  # noqa: F401  (here, not in a test: a cold import takes seconds)
import pytest
from smolagents import LiteLLMModel

from agentloop import RunEventKind, create_async_agent

from ..cli.llm_stub import LLMStub

REPLY = "Thought: done.\n<code>\nfinal_answer(6 * 7)\n</code>"


def model_on(stub: LLMStub, model_id: str) -> LiteLLMModel:
    return LiteLLMModel(
        model_id=model_id, api_key="sk-test", api_base=stub.base_url, max_retries=0, retry=False
    )


async def test_a_rate_limited_provider_moves_the_run_to_the_fallback_provider() -> None:
    with LLMStub() as down, LLMStub([REPLY]) as up:
        down.fail_first(5, 429)
        chain = [model_on(down, "openai/gpt-4o"), model_on(up, "openai/gpt-4o-mini")]
        async with create_async_agent(model=chain) as agent, agent.astream("q") as stream:
            events = [event async for event in stream]
            assert await stream.result() == 42
    [moved] = [e.to_dict() for e in events if e.kind is RunEventKind.MODEL_FALLBACK]
    assert (moved["model"], moved["next_model"]) == ("openai/gpt-4o", "openai/gpt-4o-mini")
    assert "RateLimitError" in moved["error"]
    assert [r.status for r in down.requests] == [429]
    assert len(up.requests) == 1 and up.requests[0].streamed


async def test_each_model_of_a_chain_retries_within_its_own_budget_before_the_chain_moves_on() -> (
    None
):
    """With `model_limits` by model id, the primary's budget retries its 429s (honouring
    `retry-after-ms`) up to its `max_attempts`; only then does the call go to the fallback,
    which spends its own budget."""
    from agentloop import ModelLimits

    with LLMStub(retry_after_ms=5) as down, LLMStub([REPLY]) as up:
        down.fail_first(10, 429)
        chain = [model_on(down, "openai/gpt-4o"), model_on(up, "openai/gpt-4o-mini")]
        primary_budget = ModelLimits(max_attempts=3, retry_backoff=0.01)
        fallback_budget = ModelLimits(max_concurrent=1)
        agent = create_async_agent(
            model=chain,
            model_limits={"openai/gpt-4o": primary_budget, "openai/gpt-4o-mini": fallback_budget},
        )
        async with agent, agent.astream("q") as stream:
            events = [event async for event in stream]
            assert await stream.result() == 42
    kinds = [e.kind for e in events]
    assert kinds.count(RunEventKind.MODEL_RETRIED) == 2  # attempts 1 and 2 of 3 were retried
    assert kinds.index(RunEventKind.MODEL_RETRIED) < kinds.index(RunEventKind.MODEL_FALLBACK)
    assert [r.status for r in down.requests] == [429, 429, 429]
    assert len(up.requests) == 1


async def test_a_reply_from_the_fallback_is_priced_as_the_fallbacks() -> None:
    from .test_cost import price

    with LLMStub() as down, LLMStub([REPLY]) as up:
        down.fail_first(5, 429)
        chain = [model_on(down, "openai/gpt-4o"), model_on(up, "openai/gpt-4o-mini")]
        async with create_async_agent(model=chain) as agent:
            result = await agent.arun("q", return_full_result=True)
    usage = result.usage
    tokens = (usage.input_tokens, usage.output_tokens)
    assert usage.unpriced_calls == 0 and tokens[1] > 0
    assert usage.cost_usd == pytest.approx(price(tokens, "gpt-4o-mini"))
    assert usage.cost_usd != pytest.approx(price(tokens, "gpt-4o"))
