"""Run spans, task spans and model-call spans carry what Phoenix lists: input, output, status."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import TokenUsage

from agentloop import TaskRegistry, create_async_agent
from agentloop.testing import ScriptedModel
from agentloop.tracing import _openinference as oi

from .conftest import Spans
from .test_spans import make_agent


async def test_run_span_has_task_answer_and_ok(spans: Spans) -> None:
    agent = make_agent(spans)
    async with agent:  # type: ignore[attr-defined]
        answer = await agent.arun("fan out")  # type: ignore[attr-defined]
    run = spans.named("invoke_agent async_agent")[0]
    attributes = run.attributes or {}
    assert attributes["openinference.span.kind"] == "AGENT"
    assert attributes["input.value"] == "fan out"
    assert attributes["input.mime_type"] == "text/plain"
    assert json.loads(str(attributes["output.value"])) == answer
    assert attributes["output.mime_type"] == "application/json"
    assert run.status.status_code is StatusCode.OK


async def test_failed_run_span_is_error(spans: Spans) -> None:
    agent = create_async_agent(
        tools=[], model=ScriptedModel(["1 / 0"]), max_steps=1, tracer_provider=spans.provider
    )
    async with agent:
        await agent.arun("divide")  # smolagents gives up after max_steps: an answer, not raise
    agent = create_async_agent(
        tools=[], model=ScriptedModel(["x = 1"]), tracer_provider=spans.provider
    )
    async with agent:
        with pytest.raises(Exception, match="step"):
            await agent.arun("run out of script")
    runs = spans.named("invoke_agent async_agent")
    assert [r.status.status_code for r in runs] == [StatusCode.OK, StatusCode.ERROR]
    assert [e.name for e in runs[1].events] == ["exception"]


async def test_task_spans_have_arguments_in_and_result_out(spans: Spans) -> None:
    agent = make_agent(spans)
    async with agent:  # type: ignore[attr-defined]
        await agent.arun("fan out")  # type: ignore[attr-defined]
    tool = spans.named("execute_tool sync_tool")[0]
    attributes = tool.attributes or {}
    assert attributes["openinference.span.kind"] == "TOOL"
    assert json.loads(str(attributes["input.value"])) == {"n": 1}
    assert attributes["output.value"] == "1"
    assert tool.status.status_code is StatusCode.OK
    expert = spans.named("invoke_agent expert")[0]
    assert (expert.attributes or {})["openinference.span.kind"] == "AGENT"
    assert str((expert.attributes or {})["output.value"]).endswith("insight")
    wait = spans.named("agentloop.wait")[0]  # Phoenix drops links: the ids are its input too
    assert (wait.attributes or {})["openinference.span.kind"] == "CHAIN"
    task_ids = [(s.attributes or {})["agentloop.task.id"] for s in (tool, expert)]
    assert set(task_ids) <= set(str((wait.attributes or {})["input.value"]).split())
    assert wait.status.status_code is StatusCode.OK


async def test_task_span_values_are_bounded(spans: Spans) -> None:
    async def huge(text: str) -> str:
        return text * 100

    async with TaskRegistry(tools=[huge], tracer_provider=spans.provider) as registry:
        await registry.wait(await registry.submit("tool", "huge", {"text": "abc" * 10_000}))
    attributes = spans.named("execute_tool huge")[0].attributes or {}
    assert len(str(attributes["input.value"])) < 4100
    assert len(str(attributes["output.value"])) < 4100


async def test_task_span_starts_at_submit(spans: Spans) -> None:
    release = asyncio.Event()

    async def upstream() -> int:
        await release.wait()
        return 1

    async def downstream(x: int) -> int:
        return x

    async with TaskRegistry(tools=[upstream, downstream], tracer_provider=spans.provider) as reg:
        first = await reg.submit("tool", "upstream")
        second = await reg.submit("tool", "downstream", {"x": {"$result_of": first}})
        release.set()
        await reg.wait(second)
        infos = {i: reg.get(i) for i in (first, second)}
    for task_id, name in ((first, "upstream"), (second, "downstream")):
        span = spans.named(f"execute_tool {name}")[0]
        assert span.start_time == int(infos[task_id].created_at * 1e9)


# -- model calls ------------------------------------------------------------------------------


async def test_one_chat_span_per_model_call_with_usage(spans: Spans) -> None:
    model = ScriptedModel(["x = 1", "final_answer(x)"], model_id="acme/scripted")
    agent = create_async_agent(tools=[], model=model, tracer_provider=spans.provider)
    async with agent:
        assert await agent.arun("two steps") == 1
    chats = spans.named("chat ")
    assert len(chats) == model.calls == 2
    run = spans.named("invoke_agent async_agent")[0]
    for chat in chats:
        attributes = chat.attributes or {}
        assert chat.name == "chat acme/scripted"
        assert chat.kind is SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "acme/scripted"
        assert attributes["openinference.span.kind"] == "LLM"
        assert attributes["gen_ai.usage.input_tokens"] == 0
        assert attributes["llm.token_count.total"] == 0
        assert "<code>" in str(attributes["output.value"])
        assert chat.status.status_code is StatusCode.OK
        assert chat.parent is not None and chat.parent.span_id == run.context.span_id


class CountingReplies(ScriptedModel):
    """Reports token usage like a real provider does."""

    def generate(self, messages: list[ChatMessage], *args: Any, **kwargs: Any) -> ChatMessage:
        reply = super().generate(messages, *args, **kwargs)
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=reply.content,
            token_usage=TokenUsage(input_tokens=120, output_tokens=7),
        )


class Unreachable(ScriptedModel):
    def generate(self, messages: list[ChatMessage], *args: Any, **kwargs: Any) -> ChatMessage:
        raise ConnectionError("provider unreachable")


async def test_chat_span_reports_usage_and_errors(spans: Spans) -> None:
    agent = create_async_agent(
        tools=[], model=CountingReplies(["final_answer(2)"]), tracer_provider=spans.provider
    )
    async with agent:
        await agent.arun("count")
    attributes = spans.named("chat ")[0].attributes or {}
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["llm.token_count.total"] == 127
    spans.exporter.clear()
    agent = create_async_agent(
        tools=[], model=Unreachable(["final_answer(2)"]), tracer_provider=spans.provider
    )
    async with agent:
        with pytest.raises(Exception, match="unreachable"):
            await agent.arun("fail")
    chat = spans.named("chat ")[0]
    assert chat.status.status_code is StatusCode.ERROR
    assert [e.name for e in chat.events] == ["exception"]


async def test_model_is_forwarded_untouched_and_untraced_without_a_provider() -> None:
    model = ScriptedModel(["final_answer(3)"])
    agent = create_async_agent(tools=[], model=model)
    async with agent:
        assert await agent.arun("three") == 3
    assert model.calls == 1


def test_without_openinference_nothing_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openinference.instrumentation.smolagents", None)
    assert oi.provider() is None
    assert oi.instrumentor_tracer() is None
    assert not oi.generate_is_instrumented(ScriptedModel([]))


def test_traced_model_forwards_and_copies() -> None:
    import copy

    from agentloop.tracing._model_spans import traced_model
    from agentloop.tracing._spans import Tracing

    model = ScriptedModel(["final_answer(1)"], model_id="acme/m")
    traced = traced_model(model, Tracing())
    assert traced_model(traced, Tracing()) is traced
    assert traced.model_id == "acme/m"
    traced.temperature = 0.5
    assert model.temperature == 0.5  # type: ignore[attr-defined]
    assert copy.copy(traced).model_id == "acme/m"


async def test_without_openinference_installed(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if it were not installed (importing it would fail): async Tools, chat spans work."""
    for name in ("openinference", "openinference.instrumentation", oi._MODULE):
        monkeypatch.setitem(sys.modules, name, None)
    from smolagents import Tool

    class Echo(Tool):  # type: ignore[misc]
        name = "echo"
        description = "Echoes (async)."
        inputs = {"text": {"type": "string", "description": "what to echo"}}
        output_type = "string"

        async def forward(self, text: str) -> str:
            await asyncio.sleep(0)
            return text

    plan = 't = submit_task("tool", "echo", {"text": "hi"})\nwait_for_tasks([t])\n'
    plan += "final_answer(get_task_results([t])[t])"
    agent = create_async_agent(
        tools=[Echo()], model=ScriptedModel([plan]), tracer_provider=spans.provider
    )
    async with agent:
        assert await agent.arun("echo") == "hi"
    assert [s.name for s in spans.named("chat ")] == ["chat agentloop/scripted"]
    echo = spans.named("execute_tool echo")[0]
    assert (echo.attributes or {})["output.value"] == "hi"
    assert len(spans.traces()) == 1
