"""What a run's models cost, in dollars, by sub-agent: against the local OpenAI-compatible stub,
through the real litellm client, priced from LiteLLM's installed cost map (issue 23, point 5).

The stub reports usage in every reply; the expected figures are computed here from the same
map (`litellm.model_cost`) and the requests the stub recorded, never copied from the code under
test. Sub-agents are called one after the other (direct calls in one code block), so the stub's
scripted replies go to the agent they were written for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import litellm  # here, not in a test: a cold import takes seconds
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import CodeAgent, LiteLLMModel

from agentloop import (
    BudgetExceededError,
    InvalidArgumentsError,
    Limits,
    ModelUsage,
    RunEventKind,
    create_async_agent,
)
from agentloop.testing import ScriptedModel

from ..cli.llm_stub import LLMStub, RecordedRequest

PRICED = "openai/gpt-4o-mini"
UNPRICED = "openai/agentloop-stub-model"
"""An id LiteLLM routes (to an OpenAI-compatible endpoint) but its cost map does not list."""


def code(body: str) -> str:
    return f"Thought: go.\n<code>\n{body}\n</code>"


def model(stub: LLMStub, model_id: str = PRICED) -> LiteLLMModel:
    litellm.suppress_debug_info = True
    return LiteLLMModel(
        model_id=model_id, api_key="sk-test", api_base=stub.base_url, max_retries=0, retry=False
    )


def tokens(request: RecordedRequest, reply: str) -> tuple[int, int]:
    """The usage the stub reported for `request` (its own rule: words in, words out)."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in request.body["messages"])
    return prompt, max(1, len(reply.split()))


def price(usage: tuple[int, int], model_id: str = "gpt-4o-mini") -> float:
    """What LiteLLM's installed map says `usage` costs."""
    entry = litellm.model_cost[model_id]
    return usage[0] * entry["input_cost_per_token"] + usage[1] * entry["output_cost_per_token"]


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]


@pytest.fixture
def spans() -> Iterator[Spans]:
    recorder = Spans()
    yield recorder
    recorder.provider.shutdown()


# -- one model: the run's cost, its span, and a model without a price ------------------------------


async def test_a_litellm_run_costs_what_the_cost_map_says(stub: LLMStub, spans: Spans) -> None:
    answer = code('final_answer("done")')
    stub.add_replies(answer)
    agent = create_async_agent(model=model(stub), tracer_provider=spans.provider)
    async with agent:
        result = await agent.arun("go", return_full_result=True)

    (request,) = stub.requests
    used = tokens(request, answer)
    expected = price(used)
    assert result.output == "done"
    assert (result.usage.input_tokens, result.usage.output_tokens) == used
    assert result.usage.model_calls == 1 and result.usage.unpriced_calls == 0
    assert result.usage.cost_usd == pytest.approx(expected, rel=1e-9)
    assert expected > 0
    assert result.sub_agent_usage == {}
    chat = spans.named("chat ")[0].attributes or {}
    assert chat["llm.cost.total"] == pytest.approx(expected, rel=1e-9)
    run = spans.named("invoke_agent async_agent")[0].attributes or {}
    assert run["agentloop.usage.cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert (run["gen_ai.usage.input_tokens"], run["gen_ai.usage.output_tokens"]) == used
    assert run["agentloop.usage.model_calls"] == 1
    stats = agent.task_manager.get_statistics()
    assert stats["cost_usd"] == pytest.approx(expected, rel=1e-9)


async def test_a_model_id_the_map_does_not_list_has_no_cost(stub: LLMStub, spans: Spans) -> None:
    stub.add_replies(code('final_answer("done")'))
    agent = create_async_agent(model=model(stub, UNPRICED), tracer_provider=spans.provider)
    async with agent:
        result = await agent.arun("go", return_full_result=True)

    assert result.usage.model_calls == 1
    assert result.usage.input_tokens > 0  # tokens are counted; only the price is unknown
    assert result.usage.cost_usd is None and result.usage.unpriced_calls == 1
    assert "llm.cost.total" not in (spans.named("chat ")[0].attributes or {})
    run = spans.named("invoke_agent async_agent")[0].attributes or {}
    assert "agentloop.usage.cost_usd" not in run
    assert run["agentloop.usage.unpriced_calls"] == 1


# -- sub-agents: the breakdown, and one budget across them ---------------------------------------


DELEGATING = [
    code('a = researcher(task="find")\nb = writer(task="write")\nfinal_answer(a + b)'),
    code('final_answer("found ")'),
    code('final_answer("written")'),
]
"""The controller calls a smolagents agent, then an `AsyncAgent`; each answers at once."""


async def test_the_result_lists_what_each_sub_agent_spent(stub: LLMStub) -> None:
    stub.add_replies(*DELEGATING)
    researcher = CodeAgent(
        tools=[],
        model=model(stub),
        name="researcher",
        description="finds",
        max_steps=2,
        verbosity_level=0,
    )
    writer = create_async_agent(model=model(stub), name="writer", description="writes")
    agent = create_async_agent(model=model(stub), managed_agents=[researcher, writer])
    async with agent, writer:
        result = await agent.arun("go", return_full_result=True)

    assert result.output.endswith("found written")  # after smolagents' "Here is ..." line
    asked = stub.requests
    assert len(asked) == 3
    spent = [tokens(request, reply) for request, reply in zip(asked, DELEGATING, strict=True)]
    by_agent = {"researcher": spent[1], "writer": spent[2]}
    assert set(result.sub_agent_usage) == {"researcher", "writer"}
    for name, used in by_agent.items():
        usage = result.sub_agent_usage[name]
        assert (usage.model_calls, usage.input_tokens, usage.output_tokens) == (1, *used)
        assert usage.cost_usd == pytest.approx(price(used), rel=1e-9)
    assert result.usage.model_calls == 3
    assert result.usage.input_tokens == sum(used[0] for used in spent)
    assert result.usage.cost_usd == pytest.approx(sum(price(used) for used in spent), rel=1e-9)


async def test_a_cost_budget_counts_a_sub_agent_and_ends_the_run(stub: LLMStub) -> None:
    delegate = code('a = expert(task="think")\nb = expert(task="think")\nfinal_answer(a + b)')
    thought = code('final_answer("a long and careful thought " * 5)')

    def build(limits: Limits | None) -> Any:
        expert = CodeAgent(
            tools=[],
            model=model(stub),
            name="expert",
            description="thinks",
            max_steps=2,
            verbosity_level=0,
        )
        return create_async_agent(model=model(stub), managed_agents=[expert], limits=limits)

    # What each call costs, measured on a run without a budget (the runs are identical).
    stub.add_replies(delegate, thought, thought)
    async with build(None) as free:
        measured = await free.arun("go", return_full_result=True)
    first = measured.usage.cost_usd - measured.sub_agent_usage["expert"].cost_usd
    per_expert_call = measured.sub_agent_usage["expert"].cost_usd / 2
    budget = first + per_expert_call / 2  # passed by the expert's first reply

    stub.add_replies(delegate, thought, thought)
    before = len(stub.requests)
    agent = build(Limits(max_cost_usd=budget))
    async with agent:
        stream = agent.astream("go")
        async with stream:
            events = [event async for event in stream]
        with pytest.raises(
            BudgetExceededError, match=r"past its budget of \$[0-9.]+ \(`max_cost_usd`"
        ):
            await stream.result()

    assert len(stub.requests) - before == 2  # the controller's call and the expert's first
    end = events[-1].to_dict()
    assert end["kind"] == RunEventKind.RUN_FAILED
    usage = end["usage"]
    assert usage["max_cost_usd"] == budget
    assert usage["model_calls"] == 2 and usage["cost_usd"] > budget
    assert usage["sub_agents"]["expert"]["model_calls"] == 1
    assert usage["sub_agents"]["expert"]["cost_usd"] == pytest.approx(per_expert_call)


# -- a dollar budget needs prices ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_max_cost_usd_must_be_a_positive_amount(bad: Any) -> None:
    with pytest.raises(ValueError, match="`max_cost_usd` must be a positive number"):
        Limits(max_cost_usd=bad)


def test_a_cost_budget_with_an_unpriced_controller_is_refused() -> None:
    with pytest.raises(InvalidArgumentsError) as refused:
        create_async_agent(model=ScriptedModel(["x"]), limits=Limits(max_cost_usd=1.0))
    message = str(refused.value)
    assert (
        "the controller's model: `ScriptedModel('agentloop/scripted')` is not a LiteLLM" in message
    )
    assert "max_total_tokens" in message  # what to do instead


def test_a_cost_budget_with_an_unpriced_sub_agent_is_refused(stub: LLMStub) -> None:
    plain = CodeAgent(tools=[], model=model(stub, UNPRICED), name="plain", description="p")
    nested = create_async_agent(model=ScriptedModel(["x"]), name="nested", description="n")
    with pytest.raises(InvalidArgumentsError) as refused:
        create_async_agent(
            model=model(stub), managed_agents=[plain, nested], limits=Limits(max_cost_usd=1.0)
        )
    message = str(refused.value)
    assert f"plain's model: `{UNPRICED}` has no price in LiteLLM's cost map" in message
    assert "nested's model: `ScriptedModel('agentloop/scripted')` is not a LiteLLM" in message
    assert "the controller" not in message  # its model has a price
    create_async_agent(model=model(stub), limits=Limits(max_cost_usd=1.0))  # priced: accepted


async def test_an_unpriced_model_added_later_counts_nothing_and_is_logged_once(
    stub: LLMStub, caplog: pytest.LogCaptureFixture
) -> None:
    delegate = code('a = late(task="1")\nb = late(task="2")\nfinal_answer(a + b)')
    stub.add_replies(delegate, code('final_answer("x")'), code('final_answer("y")'))
    agent = create_async_agent(model=model(stub), limits=Limits(max_cost_usd=1.0))
    late = CodeAgent(
        tools=[], model=model(stub, UNPRICED), name="late", description="l", verbosity_level=0
    )
    agent.task_manager.register_managed_agents([late])
    async with agent:
        with caplog.at_level(logging.WARNING, logger="agentloop"):
            result = await agent.arun("go", return_full_result=True)

    assert result.output.endswith("y")
    late_usage = result.sub_agent_usage["late"]
    assert (late_usage.model_calls, late_usage.unpriced_calls) == (2, 2)
    assert late_usage.cost_usd is None
    assert result.usage.unpriced_calls == 2
    controller = price(tokens(stub.requests[0], delegate))  # the only priced call
    assert result.usage.cost_usd == pytest.approx(controller, rel=1e-9)
    warnings = [r.getMessage() for r in caplog.records if "not known" in r.getMessage()]
    assert len(warnings) == 1 and UNPRICED in warnings[0] and "max_cost_usd=1.0" in warnings[0]


def test_model_usage_is_a_value() -> None:
    usage = ModelUsage(model_calls=2, input_tokens=10, output_tokens=5, cost_usd=0.25)
    assert usage.total_tokens == 15
    assert usage.to_dict() == {
        "model_calls": 2,
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "cost_usd": 0.25,
        "unpriced_calls": 0,
    }


def test_a_reply_without_litellms_own_figure_is_priced_from_its_tokens(stub: LLMStub) -> None:
    """A reply replayed from a journal has no raw response: its tokens are priced by the map,
    and a resumed run's budget counts it once."""
    from smolagents.models import ChatMessage, MessageRole
    from smolagents.monitoring import TokenUsage

    from agentloop.agent._accounting import AgentAccounting
    from agentloop.core._budgets import RunBudget

    replayed = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="x",
        token_usage=TokenUsage(input_tokens=1000, output_tokens=100),
    )
    budget = RunBudget(
        run_id="r",
        max_model_calls=None,
        max_total_tokens=None,
        max_cost_usd=1.0,
        accounting=AgentAccounting(),
    )
    budget.charge_replayed(replayed, model(stub))
    budget.charge_replayed(replayed, model(stub, UNPRICED))

    usage, _ = budget.report()
    assert (usage.model_calls, usage.input_tokens, usage.unpriced_calls) == (2, 2000, 1)
    assert usage.cost_usd == pytest.approx(price((1000, 100)), rel=1e-9)
