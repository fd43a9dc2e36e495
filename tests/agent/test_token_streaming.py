"""Token streaming: the model's words reach a run's stream as it writes them (`model_delta`).

What is checked: deltas arrive while the model is still writing (gated, not timed); they
belong to the step whose `step` event follows and join to its reply; a consumer that falls
behind gets them coalesced, never dropped and never slowing the model; models that cannot
stream give one delta per reply; nobody listening means the model is not asked to stream;
cancelling the stream mid-reply closes the model's stream; a journaled run streams, and a
resumed one replays no deltas for its recorded steps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, Model
from smolagents.monitoring import TokenUsage

from agentloop import RunEvent, RunEventKind, create_async_agent
from agentloop.agent._feed import DELTA_INTERVAL
from agentloop.testing import FunctionModel, ScriptedModel, code_reply

STEPS = ["x = 6 * 7\nprint(x)", "final_answer(x)"]


def deltas_by_step(events: list[RunEvent]) -> dict[int, str]:
    joined: dict[int, str] = {}
    for event in events:
        if event.kind is RunEventKind.MODEL_DELTA:
            assert event.delta is not None
            joined[event.delta.step] = joined.get(event.delta.step, "") + event.delta.text
    return joined


class GatedModel(Model):  # type: ignore[misc]
    """Streams its first chunk, then waits for `gate` before the rest: a test can look at
    the stream while the model is surely mid-reply."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="test/gated")
        self.replies = replies
        self.gate = asyncio.Event()
        self.first_chunk_sent = asyncio.Event()
        self.closed_early = False
        self.calls: list[str] = []

    async def agenerate(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.calls.append("agenerate")
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.replies.pop(0))

    async def agenerate_stream(
        self, messages: Any, **kwargs: Any
    ) -> AsyncIterator[ChatMessageStreamDelta]:
        self.calls.append("agenerate_stream")
        text = self.replies.pop(0)
        half = len(text) // 2
        try:
            yield ChatMessageStreamDelta(content=text[:half])
            self.first_chunk_sent.set()
            await self.gate.wait()
            yield ChatMessageStreamDelta(content=text[half:])
            yield ChatMessageStreamDelta(
                content="", token_usage=TokenUsage(input_tokens=3, output_tokens=5)
            )
        except (GeneratorExit, asyncio.CancelledError):  # closed, or cancelled mid-wait
            self.closed_early = True
            raise


async def test_deltas_arrive_while_the_model_is_still_writing() -> None:
    reply = code_reply("final_answer('done')")
    model = GatedModel([reply])
    seen: list[RunEvent] = []
    async with create_async_agent(model=model) as agent:
        async with agent.astream("go") as stream:
            async for event in stream:
                seen.append(event)
                if event.kind is RunEventKind.MODEL_DELTA and not model.gate.is_set():
                    assert model.first_chunk_sent.is_set()  # mid-reply: waiting for the gate
                    model.gate.set()
            assert await stream.result() == "done"
    first = next(e for e in seen if e.kind is RunEventKind.MODEL_DELTA)
    assert first.delta is not None and reply.startswith(first.delta.text)
    assert deltas_by_step(seen) == {1: reply}
    step = next(e for e in seen if e.kind is RunEventKind.STEP)
    assert step.step is not None and (step.step.input_tokens, step.step.output_tokens) == (3, 5)
    assert model.calls == ["agenerate_stream"]


async def test_each_steps_deltas_join_to_its_reply_and_come_before_its_step_event() -> None:
    """A model writing slower than the feed's rate bound: each chunk is its own delta."""
    model = ScriptedModel(STEPS, chunk_chars=12, chunk_delay=DELTA_INTERVAL * 1.5)
    async with create_async_agent(model=model) as agent:
        async with agent.astream("go") as stream:
            events = [event async for event in stream]
    assert deltas_by_step(events) == {1: code_reply(STEPS[0]), 2: code_reply(STEPS[1])}
    kinds = [
        (e.kind, e.delta.step if e.delta else e.step.number if e.step else None) for e in events
    ]
    step_one = kinds.index((RunEventKind.STEP, 1))
    assert all(step != 2 for kind, step in kinds[:step_one] if kind is RunEventKind.MODEL_DELTA)
    assert all(step == 2 for kind, step in kinds[step_one:] if kind is RunEventKind.MODEL_DELTA)
    chunks = sum(-(-len(code_reply(step)) // 12) for step in STEPS)
    delivered = sum(kind is RunEventKind.MODEL_DELTA for kind, _ in kinds)
    assert chunks // 2 < delivered <= chunks  # as they came (a busy loop may merge a few)
    as_json = next(e.to_dict() for e in events if e.kind is RunEventKind.MODEL_DELTA)
    assert set(as_json) >= {"kind", "step", "text"} and as_json["kind"] == "model_delta"
    json.dumps(as_json, allow_nan=False)


async def test_a_consumer_that_falls_behind_gets_coalesced_deltas_and_loses_none() -> None:
    """Not reading at all until the run ends: the buffer holds one delta per step, each with
    the step's whole reply; the model was never held back (the run finished unread)."""
    model = ScriptedModel(STEPS, chunk_chars=1)  # one event per character if delivered live
    async with create_async_agent(model=model) as agent:
        stream = agent.astream("go", max_buffered=8)
        async with stream:
            assert await stream.result() == 42
            events = [event async for event in stream]
    deltas = [e for e in events if e.kind is RunEventKind.MODEL_DELTA]
    assert len(deltas) == 2 and stream.dropped == 0
    assert deltas_by_step(events) == {1: code_reply(STEPS[0]), 2: code_reply(STEPS[1])}
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_model_bursting_its_reply_wakes_the_reader_a_few_times_not_per_chunk() -> None:
    """A thousand chunks written at once: the reader is woken at most once per
    `DELTA_INTERVAL` (plus the first), and gets every word."""
    reply = "final_answer(1)  # " + "x" * 4000
    model = ScriptedModel([reply], chunk_chars=4)
    async with create_async_agent(model=model) as agent, agent.astream("go") as stream:
        events = [event async for event in stream]
    deltas = [e for e in events if e.kind is RunEventKind.MODEL_DELTA]
    assert deltas_by_step(events) == {1: code_reply(reply)}  # ~1000 chunks of text
    assert len(deltas) < 100  # not one event per chunk


class AsyncOnlyModel(FunctionModel):
    """An async model without a stream of its own."""

    agenerate_stream = None  # type: ignore[assignment]


class SyncOnlyModel(FunctionModel):
    """A sync-only model: agentloop calls its blocking `generate` in a thread."""

    agenerate = None  # type: ignore[assignment]
    agenerate_stream = None  # type: ignore[assignment]


@pytest.mark.parametrize("model_class", [AsyncOnlyModel, SyncOnlyModel])
async def test_a_model_that_cannot_stream_gives_one_delta_per_reply(model_class: type) -> None:
    replies = iter(STEPS)
    model = model_class(lambda messages: next(replies))
    async with create_async_agent(model=model) as agent:
        async with agent.astream("go") as stream:
            events = [event async for event in stream]
            assert await stream.result() == 42
    deltas = [e for e in events if e.kind is RunEventKind.MODEL_DELTA]
    assert [d.delta.text for d in deltas if d.delta] == [code_reply(s) for s in STEPS]


async def test_without_a_stream_the_model_is_not_asked_to_stream() -> None:
    model = GatedModel([code_reply("final_answer(1)")])
    async with create_async_agent(model=model) as agent:
        assert await agent.arun("go") == 1
    assert model.calls == ["agenerate"]


async def test_closing_the_stream_mid_reply_closes_the_models_stream() -> None:
    model = GatedModel([code_reply("final_answer(1)")])
    async with create_async_agent(model=model) as agent:
        stream = agent.astream("go")
        async with stream:
            async for event in stream:
                if event.kind is RunEventKind.MODEL_DELTA:
                    break
        assert model.first_chunk_sent.is_set() and not model.gate.is_set()
        with pytest.raises(asyncio.CancelledError):
            await stream.result()
    assert model.closed_early


async def test_a_journaled_run_streams_and_a_resumed_one_replays_no_deltas(tmp_path: Path) -> None:
    broken = {"on": True}

    def reply(messages: list[Any]) -> str:
        turn = sum(1 for m in messages if getattr(m.role, "value", m.role) == "assistant")
        if turn == 1 and broken["on"]:
            raise ConnectionError("the provider is down")
        return STEPS[turn]

    agent = create_async_agent(
        model=FunctionModel(reply, chunk_chars=4),
        journal=tmp_path / "runs.sqlite",
        stream_outputs=True,  # accepted with a journal: the journal records whole replies
    )
    async with agent:
        async with agent.astream("go", run_id="r") as first:
            first_events = [event async for event in first]
        assert deltas_by_step(first_events)[1] == code_reply(STEPS[0])
        broken["on"] = False
        async with agent.astream("go", run_id="r") as second:
            events = [event async for event in second]
            assert await second.result() == 42
    assert RunEventKind.RUN_RESUMED in [e.kind for e in events]
    assert deltas_by_step(events) == {2: code_reply(STEPS[1])}  # step 1 came from the journal
