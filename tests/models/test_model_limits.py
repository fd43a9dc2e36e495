"""`ModelLimits` around a real client: a smolagents `LiteLLMModel` calling the local stub through
litellm and the openai SDK, as a user's agent would. The stub enforces what a provider does
(holds requests, answers 429 with `Retry-After`, fails with 5xx), and every timing assertion
reads the times the stub recorded, never a sleep of the test's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import litellm  # here, not in a test: a cold import takes seconds, more than a test's timeout
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import CodeAgent, LiteLLMModel

from agentloop import ModelLimits, RunEventKind, create_async_agent
from agentloop._util import ModelCall
from agentloop.agent._model_calls import awaited_reply
from agentloop.core._budgets import MeteredModel
from agentloop.core._limited_model import LimitedModel
from agentloop.core._limits_by_model import limited
from agentloop.testing import ScriptedModel
from agentloop.testing.models import code_reply
from agentloop.tracing._model_spans import TracedModel

from ..cli.llm_stub import LLMStub
from .test_litellm_async import STUB_THREADS, Heard, ask

MODEL_ID = "openai/gpt-4o-mini"
DONE = code_reply("final_answer('done')")


def user_model(stub: LLMStub, **options: Any) -> LiteLLMModel:
    """A LiteLLMModel as users build it: smolagents' retries and the openai SDK's left on."""
    litellm.suppress_debug_info = True
    return LiteLLMModel(model_id=MODEL_ID, api_key="sk-test", api_base=stub.base_url, **options)


class Calls:
    """Model calls made straight through a `LimitedModel`, as a run's turn makes them."""

    def __init__(self, stub: LLMStub, limits: ModelLimits) -> None:
        self.model = limited(user_model(stub), limits)
        reply = awaited_reply(self.model.wrapped)
        assert reply is not None
        self._call = ModelCall(reply)

    async def ask(self, text: str) -> Any:
        return await self.model.agenerate_through(self._call, ask(text), {})


def asked(stub: LLMStub) -> list[str]:
    """The question each request the stub answered carried, in the order it answered them."""
    return [r.text("user") for r in stub.requests if r.status == 200]


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub(respond=lambda request: f"re: {request.text('user')}") as server:
        yield server


# -- the budget: concurrency, order, schedule -----------------------------------------------------


async def test_no_more_calls_reach_the_provider_than_max_concurrent(stub: LLMStub) -> None:
    limits = ModelLimits(max_concurrent=2)
    calls = Calls(stub, limits)
    heard = Heard(stub, held=2)
    stub.hold()
    try:
        asking = [asyncio.create_task(calls.ask(f"q{i}")) for i in range(6)]
        async with asyncio.timeout(20):
            await heard.all_held.wait()
        assert (limits.in_flight, limits.waiting) == (2, 4)  # four wait here, not there
    finally:
        stub.release()
    replies = await asyncio.gather(*asking)

    assert sorted(str(r.content) for r in replies) == sorted(f"re: q{i}" for i in range(6))
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_calls_are_served_first_come_first_served(stub: LLMStub) -> None:
    limits = ModelLimits(max_concurrent=1)
    calls = Calls(stub, limits)
    heard = Heard(stub, held=1)
    stub.hold()
    try:
        asking = [asyncio.create_task(calls.ask("q0"))]
        async with asyncio.timeout(20):
            await heard.all_held.wait()
        for i in range(1, 6):
            asking.append(asyncio.create_task(calls.ask(f"q{i}")))
            await asyncio.sleep(0)  # the call runs to the limiter's queue
            assert limits.waiting == i
    finally:
        stub.release()
    await asyncio.gather(*asking)

    assert asked(stub) == [f"q{i}" for i in range(6)]  # the last to come is served last


async def test_starts_are_spaced_by_requests_per_minute(stub: LLMStub) -> None:
    calls = Calls(stub, ModelLimits(requests_per_minute=600))  # one start per 0.1 s
    await asyncio.gather(*(calls.ask(f"q{i}") for i in range(5)))

    times = sorted(r.at for r in stub.requests)
    assert times[-1] - times[0] >= 0.4 - 0.05  # four gaps; a request may land a little late


async def test_cancelling_a_call_that_waits_frees_nothing_it_did_not_take(stub: LLMStub) -> None:
    limits = ModelLimits(max_concurrent=1)
    calls = Calls(stub, limits)
    heard = Heard(stub, held=1)
    stub.hold()
    try:
        holder = asyncio.create_task(calls.ask("holder"))
        async with asyncio.timeout(20):
            await heard.all_held.wait()
        waiter = asyncio.create_task(calls.ask("waiter"))
        await asyncio.sleep(0)
        assert limits.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (limits.in_flight, limits.waiting) == (1, 0)  # the holder keeps its slot
    finally:
        stub.release()
    await holder
    assert limits.in_flight == 0
    await calls.ask("after")  # the slot is free, not lost

    assert asked(stub) == ["holder", "after"]


async def test_calls_waiting_for_the_limiter_hold_no_thread(stub: LLMStub) -> None:
    waiting = 50
    limits = ModelLimits(max_concurrent=1)
    calls = Calls(stub, limits)
    await calls.ask("warm up")  # litellm starts its process-wide workers
    before = {thread.ident for thread in threading.enumerate()}
    heard = Heard(stub, held=1)
    stub.hold()
    try:
        asking = [asyncio.create_task(calls.ask(f"q{i}")) for i in range(waiting + 1)]
        async with asyncio.timeout(20):
            await heard.all_held.wait()
        await asyncio.sleep(0)
        assert limits.waiting == waiting
        added = [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in before and not thread.name.endswith(STUB_THREADS)
        ]
        for call in asking[1:]:
            call.cancel()
    finally:
        stub.release()
    await asyncio.gather(*asking, return_exceptions=True)

    assert added == []
    assert (limits.in_flight, limits.waiting) == (0, 0)


async def test_two_agents_given_one_object_share_one_budget(stub: LLMStub) -> None:
    limits = ModelLimits(max_concurrent=1)
    stub.respond = lambda request: DONE
    first = create_async_agent(model=user_model(stub), model_limits=limits, name="first")
    second = create_async_agent(model=user_model(stub), model_limits=limits, name="second")
    heard = Heard(stub, held=1)
    stub.hold()
    try:
        runs = [asyncio.create_task(agent.arun("go")) for agent in (first, second)]
        async with asyncio.timeout(20):
            await heard.all_held.wait()
            while limits.waiting < 1:  # noqa: ASYNC110 - the other run reaches the queue
                await asyncio.sleep(0)
        assert limits.in_flight == 1  # the other agent's call waits for the same slot
    finally:
        stub.release()
    assert await asyncio.gather(*runs) == ["done", "done"]
    await first.aclose()
    await second.aclose()


# -- retries -----------------------------------------------------------------------------------


async def test_a_429_waits_what_retry_after_says(stub: LLMStub) -> None:
    stub.fail_next(429, retry_after_ms=300)
    calls = Calls(stub, ModelLimits())
    reply = await calls.ask("q")

    refused, answered = stub.requests
    assert (refused.status, answered.status) == (429, 200)
    assert answered.at - refused.at >= 0.3
    assert str(reply.content) == "re: q"


async def test_attempts_are_bounded_then_the_error_reaches_the_run(stub: LLMStub) -> None:
    stub.fail_next(*[503] * 10, retry_after_ms=None)
    limits = ModelLimits(max_attempts=3, retry_backoff=0.01)
    agent = create_async_agent(model=user_model(stub), model_limits=limits)
    async with agent:
        with pytest.raises(Exception, match=r"503|ServiceUnavailable") as raised:
            await agent.arun("go")

    # three attempts in all: smolagents' retries and the openai SDK's are off under the limits
    assert [r.status for r in stub.requests] == [503, 503, 503]
    assert "ServiceUnavailable" in repr(raised.value) + repr(raised.value.__cause__)


async def test_a_request_the_provider_refuses_for_good_is_not_retried(stub: LLMStub) -> None:
    stub.fail_next(400)
    calls = Calls(stub, ModelLimits(retry_backoff=0.01))
    with pytest.raises(Exception, match=r"400|BadRequest"):
        await calls.ask("q")
    assert len(stub.requests) == 1


async def test_5xx_are_retried_and_each_retry_is_a_stream_event(stub: LLMStub) -> None:
    stub.respond = lambda request: DONE
    stub.fail_next(500, 502, retry_after_ms=None)
    limits = ModelLimits(retry_backoff=0.01)
    agent = create_async_agent(model=user_model(stub), model_limits=limits)
    async with agent, agent.astream("go") as stream:
        events = [event async for event in stream]
        answer = await stream.result()

    retried = [e.to_dict() for e in events if e.kind is RunEventKind.MODEL_RETRIED]
    assert answer == "done"
    assert [(e["kind"], e["status"], e["attempt"]) for e in retried] == [
        ("model_retried", 500, 1),
        ("model_retried", 502, 2),
    ]
    assert retried[0]["model"] == MODEL_ID and not retried[0]["retry_after"]
    assert 0 < retried[0]["wait"] <= 0.01 and "InternalServerError" in retried[0]["reason"]
    assert [r.status for r in stub.requests] == [500, 502, 200]


async def test_the_model_span_covers_the_retry_and_says_so(stub: LLMStub) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stub.respond = lambda request: DONE
    stub.fail_next(429, retry_after_ms=50)
    agent = create_async_agent(
        model=user_model(stub), model_limits=ModelLimits(), tracer_provider=provider
    )
    async with agent:
        assert await agent.arun("go") == "done"

    (chat,) = [s for s in exporter.get_finished_spans() if s.name == f"chat {MODEL_ID}"]
    (retry,) = [e for e in chat.events if e.name == "agentloop.model.retry"]
    attributes = dict(retry.attributes or {})
    assert attributes["http.response.status_code"] == 429
    assert attributes["agentloop.model.retry_after"] is True
    assert attributes["agentloop.model.retry_wait_seconds"] == 0.05
    assert (chat.attributes or {})["agentloop.model.attempts"] == 2
    assert chat.end_time is not None and chat.start_time is not None
    assert chat.end_time - chat.start_time >= 50_000_000  # the span covers the wait (ns)
    provider.shutdown()


# -- what the limits apply to ---------------------------------------------------------------------


def test_the_limits_sit_inside_the_span_and_the_budget(stub: LLMStub) -> None:
    """The budget wraps the model's own call (the chain's link), inside the `chat` span and
    the run's budget: its waits and retries are the call's, and a fallback chain moves on
    only once a model's budget has given up."""
    model = user_model(stub)
    agent = create_async_agent(model=model, model_limits=ModelLimits(max_concurrent=1))
    metered = agent._model
    assert isinstance(metered, MeteredModel)
    assert isinstance(metered.wrapped, TracedModel)
    assert metered.wrapped.wrapped is model
    [link] = agent._chain.links
    assert isinstance(link.budget, LimitedModel)
    assert link.model is link.budget.wrapped is not model  # a copy, with its own retries off
    assert link.model.retryer.max_attempts == 1
    assert model.retryer.max_attempts > 1  # the user's model is untouched
    assert agent.model is model


async def test_a_managed_agent_with_the_same_model_id_spends_the_same_budget(
    stub: LLMStub,
) -> None:
    stub.respond = lambda request: code_reply("final_answer('sub done')")
    stub.fail_next(503, retry_after_ms=20)
    expert = CodeAgent(
        tools=[], model=user_model(stub), name="expert", description="Helps.", verbosity_level=-1
    )
    controller = ScriptedModel(['final_answer(expert(task="help"))'], model_id=MODEL_ID)
    limits = ModelLimits(max_concurrent=1)
    agent = create_async_agent(
        managed_agents=[expert], model=controller, model_limits={MODEL_ID: limits}
    )
    async with agent, agent.astream("go") as stream:
        events = [event async for event in stream]
        answer = await stream.result()

    assert "sub done" in str(answer)
    retried = [e.to_dict() for e in events if e.kind is RunEventKind.MODEL_RETRIED]
    assert [(e["status"], e["retry_after"]) for e in retried] == [(503, True)]
    assert [r.status for r in stub.requests] == [503, 200]  # one retry, by the limits' policy
    assert limits.in_flight == 0
