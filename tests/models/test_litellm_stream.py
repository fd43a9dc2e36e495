"""`litellm_astream`: a `LiteLLMModel`'s reply streamed on the loop, chunk by chunk.

Against the local OpenAI-compatible stub (`tests/cli/llm_stub.py`), through the real client
stack (litellm → openai SDK → HTTP, `stream=True`): the text arrives before the reply ends
(the stub holds the rest behind a gate), the reply is the one `generate` gives, usage comes
from the last chunk, a refused request is retried before the first chunk, and cancelling
mid-stream closes the response. Then a whole run through `astream`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import litellm  # noqa: F401  (here, not in a test: a cold import takes seconds)
import pytest
from smolagents import LiteLLMModel

from agentloop import RunEventKind, create_async_agent
from agentloop.agent._litellm_async import litellm_astream

from ..cli.llm_stub import LLMStub
from .test_litellm_async import ask, essentials, litellm_model

REPLY = "Thought: six times seven.\n<code>\nfinal_answer(6 * 7)\n</code>"


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def stub(gate: threading.Event) -> Iterator[LLMStub]:
    with LLMStub(chunk_chars=7, stream_gate=gate, gate_after=1) as server:
        yield server


async def test_the_text_arrives_before_the_reply_ends_and_joins_to_generates_reply(
    stub: LLMStub, gate: threading.Event
) -> None:
    stub.add_replies(REPLY, REPLY)
    model = litellm_model(stub)
    gate.set()
    expected = await asyncio.to_thread(model.generate, ask("q"))
    gate.clear()
    first_text = asyncio.Event()
    texts: list[str] = []

    def on_text(text: str) -> None:
        texts.append(text)
        first_text.set()

    streaming = asyncio.create_task(litellm_astream(model, ask("q"), on_text))
    await asyncio.wait_for(first_text.wait(), 10)
    assert not streaming.done() and texts == [REPLY[:7]]  # the stub holds the rest
    gate.set()
    reply = await asyncio.wait_for(streaming, 10)

    assert "".join(texts) == REPLY and len(texts) > 3
    assert essentials(reply) == essentials(expected)  # text, role and usage as generate's
    assert stub.requests[-1].body["stream"] is True
    assert stub.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_a_refused_request_is_retried_before_the_first_chunk(
    stub: LLMStub, gate: threading.Event
) -> None:
    gate.set()
    stub.fail_first(1, 429)
    stub.add_replies(REPLY)
    model = LiteLLMModel(
        model_id="openai/gpt-4o-mini", api_key="sk-test", api_base=stub.base_url, max_retries=0
    )
    model.retryer.wait_seconds = 0.0  # smolagents' retryer, as `generate_stream` would use it
    texts: list[str] = []
    reply = await asyncio.wait_for(litellm_astream(model, ask("q"), texts.append), 20)
    assert reply.content == REPLY == "".join(texts)
    assert [r.status for r in stub.requests] == [429, 200]


async def test_cancelling_mid_stream_ends_the_call_at_once(
    stub: LLMStub, gate: threading.Event
) -> None:
    stub.add_replies(REPLY)
    model = litellm_model(stub)
    first_text = asyncio.Event()
    streaming = asyncio.create_task(litellm_astream(model, ask("q"), lambda text: first_text.set()))
    await asyncio.wait_for(first_text.wait(), 10)
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    assert streaming.cancelled()  # at once, though the stub still holds the rest
    assert stub.streams_ended == 0


async def test_a_run_streams_a_litellm_models_words_to_astream(
    stub: LLMStub, gate: threading.Event
) -> None:
    gate.set()
    stub.add_replies(REPLY)
    agent = create_async_agent(model=litellm_model(stub))
    async with agent, agent.astream("q") as stream:
        events = [event async for event in stream]
        assert await stream.result() == 42
    words = "".join(e.delta.text for e in events if e.delta is not None)
    assert words == REPLY
    assert sum(e.kind is RunEventKind.MODEL_DELTA for e in events) >= 1


async def test_a_run_without_a_stream_asks_for_the_whole_reply(
    stub: LLMStub, gate: threading.Event
) -> None:
    stub.add_replies(REPLY)
    agent = create_async_agent(model=litellm_model(stub))
    async with agent:
        assert await agent.arun("q") == 42
    assert "stream" not in stub.requests[-1].body
