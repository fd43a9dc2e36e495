"""Fallback chains: `model=[primary, fallback, ...]`.

A call the primary fails with a provider failure (rate limited, down, slow, context too long)
goes to the next model and the run goes on; any other error is the call's at once. The move is
said on the stream (`model_fallback`), on the call's span (an event, and the replying model),
and in the journal (which model made each recorded reply); a resumed run replays recorded
replies whoever made them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from smolagents.models import ChatMessageStreamDelta

from agentloop import InvalidArgumentsError, RunEventKind, create_async_agent
from agentloop.journal import EntryKind
from agentloop.testing import FunctionModel, ScriptedModel, code_reply

from ..tracing.conftest import Spans

STEPS = ["x = 6 * 7", "final_answer(x)"]


class ProviderError(Exception):
    """What a provider client raises for an HTTP error: the status on the exception."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class RateLimitError(Exception):
    """Named as LiteLLM's and the OpenAI SDK's are: recognised by name, nothing imported."""


def failing(error: Exception, model_id: str = "test/primary") -> FunctionModel:
    def reply(messages: list[Any]) -> str:
        raise error

    return FunctionModel(reply, model_id=model_id)


def turn(messages: list[Any]) -> int:
    return sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")


@pytest.mark.parametrize(
    "error",
    [ProviderError(429), ProviderError(503), RateLimitError("slow down"), TimeoutError("slow")],
    ids=["429", "503", "by-name", "timeout"],
)
async def test_a_provider_failure_moves_the_call_to_the_next_model(error: Exception) -> None:
    primary = failing(error)
    fallback = ScriptedModel(STEPS, model_id="test/fallback")
    agent = create_async_agent(model=[primary, fallback])
    assert agent.model is primary
    async with agent, agent.astream("go") as stream:
        events = [event async for event in stream]
        assert await stream.result() == 42
    moves = [e.to_dict() for e in events if e.kind is RunEventKind.MODEL_FALLBACK]
    assert [(m["step"], m["model"], m["next_model"]) for m in moves] == [
        (1, "test/primary", "test/fallback"),
        (2, "test/primary", "test/fallback"),
    ]
    assert str(error) in moves[0]["error"]
    assert primary.calls == 2 and fallback.calls == 2


@pytest.mark.parametrize(
    "error", [ProviderError(400), ProviderError(401), ValueError("bad prompt")], ids=str
)
async def test_any_other_error_is_the_calls_at_once(error: Exception) -> None:
    fallback = ScriptedModel(STEPS, model_id="test/fallback")
    async with create_async_agent(model=[failing(error), fallback]) as agent:
        with pytest.raises(Exception, match=str(error)):
            await agent.arun("go")
    assert fallback.calls == 0


async def test_the_application_names_the_errors_that_move_on() -> None:
    class Overloaded(Exception):
        pass

    fallback = ScriptedModel(STEPS, model_id="test/fallback")
    by_class = create_async_agent(
        model=[failing(Overloaded("busy")), fallback], fallback_on=[Overloaded]
    )
    by_predicate = create_async_agent(
        model=[failing(ProviderError(429)), ScriptedModel(STEPS)],
        fallback_on=lambda error: False,  # this application never falls back
    )
    async with by_class, by_predicate:
        assert await by_class.arun("go") == 42
        with pytest.raises(Exception, match="HTTP 429"):
            await by_predicate.arun("go")


async def test_when_every_model_fails_the_last_error_is_the_calls() -> None:
    chain = [failing(ProviderError(503)), failing(ProviderError(502), "test/second")]
    async with create_async_agent(model=chain) as agent:
        with pytest.raises(Exception, match="HTTP 502"):
            await agent.arun("go")


def test_a_bad_chain_is_refused_at_creation() -> None:
    with pytest.raises(InvalidArgumentsError, match="at least one model"):
        create_async_agent(model=[])
    with pytest.raises(InvalidArgumentsError, match="entry 1 is str"):
        create_async_agent(model=[ScriptedModel([]), "openai/gpt-4o"])
    with pytest.raises(InvalidArgumentsError, match="fallback_on"):
        create_async_agent(model=[ScriptedModel([])], fallback_on="RateLimitError")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentsError, match="fallback_on"):
        create_async_agent(model=[ScriptedModel([])], fallback_on=[ValueError, "x"])  # type: ignore[list-item]


class BreaksMidReply(ScriptedModel):
    """Streams a few words, then its provider drops the connection."""

    async def agenerate_stream(self, messages: Any, **kwargs: Any) -> AsyncIterator[Any]:
        yield ChatMessageStreamDelta(content="Thought: I will")
        await asyncio.sleep(0)
        raise ConnectionError("connection reset mid-reply")


async def test_a_stream_says_the_words_so_far_are_void_and_the_next_model_writes_again() -> None:
    chain = [BreaksMidReply(STEPS, model_id="test/primary"), ScriptedModel(STEPS, model_id="b")]
    async with create_async_agent(model=chain) as agent, agent.astream("go") as stream:
        events = [event async for event in stream]
    step_one = [
        e
        for e in events
        if (e.delta and e.delta.step == 1)
        or (e.kind is RunEventKind.MODEL_FALLBACK and e.extra["step"] == 1)
    ]
    kinds = [e.kind for e in step_one]
    assert kinds[0] is RunEventKind.MODEL_DELTA and RunEventKind.MODEL_FALLBACK in kinds
    after = kinds.index(RunEventKind.MODEL_FALLBACK)
    words = "".join(e.delta.text for e in step_one[after + 1 :] if e.delta)
    assert words == code_reply(STEPS[0])


async def test_the_span_says_which_model_replied_and_why_it_moved() -> None:
    spans = Spans()
    chain = [failing(ProviderError(429)), ScriptedModel(STEPS, model_id="test/fallback")]
    async with create_async_agent(model=chain, tracer_provider=spans.provider) as agent:
        assert await agent.arun("go") == 42
    [first, _] = spans.named("chat ")
    assert first.name == "chat test/primary"  # named for the chain, as the agent's model
    assert first.attributes is not None
    assert first.attributes["gen_ai.response.model"] == "test/fallback"
    [moved] = [e for e in first.events if e.name == "agentloop.model.fallback"]
    assert moved.attributes is not None
    assert moved.attributes["agentloop.model.failed"] == "test/primary"
    assert moved.attributes["agentloop.model.next"] == "test/fallback"


async def test_the_journal_records_which_model_replied_and_a_resume_replays_it(
    tmp_path: Path,
) -> None:
    outage = {"on": True}

    def primary_reply(messages: list[Any]) -> str:
        if outage["on"]:
            raise ProviderError(503)
        return STEPS[turn(messages)]

    def fallback_reply(messages: list[Any]) -> str:
        if turn(messages) == 1 and outage["on"]:
            raise ProviderError(503)  # both down at step 2: the run fails there
        return STEPS[turn(messages)]

    primary = FunctionModel(primary_reply, model_id="test/primary")
    fallback = FunctionModel(fallback_reply, model_id="test/fallback")
    agent = create_async_agent(model=[primary, fallback], journal=tmp_path / "runs.sqlite")
    async with agent:
        with pytest.raises(Exception, match="HTTP 503"):
            await agent.arun("go", run_id="r")
        outage["on"] = False
        before = (primary.calls, fallback.calls)
        result = await agent.arun("go", run_id="r", return_full_result=True)
        assert agent.journal is not None
        entries = agent.journal.entries("r")
    assert result.output == 42 and result.replayed_steps == 1
    assert (primary.calls, fallback.calls) == (before[0] + 1, before[1])  # step 2 only
    replies = [e.data.get("model") for e in entries if e.kind is EntryKind.MODEL_REPLY]
    assert replies == ["test/fallback", "test/primary"]
