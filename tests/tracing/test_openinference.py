"""With openinference's SmolagentsInstrumentor (as in the Phoenix setup), the trace stays whole."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from smolagents import Tool
from wrapt import wrap_function_wrapper

from agentloop import create_async_agent
from agentloop.testing import ScriptedModel

from .conftest import Spans
from .test_spans import make_agent

instrumentation = pytest.importorskip("openinference.instrumentation.smolagents")
from openinference.instrumentation.smolagents._wrappers import _ModelWrapper  # noqa: E402


@pytest.fixture
def instrumented(spans: Spans) -> Iterator[Spans]:
    instrumentor = instrumentation.SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()


async def test_instrumented_run_is_one_trace_with_agentloop_spans_inside(
    instrumented: Spans,
) -> None:
    agent = make_agent(instrumented)
    app = instrumented.provider.get_tracer("app")
    async with agent:  # type: ignore[attr-defined]
        with app.start_as_current_span("request"):
            await agent.arun("fan out")  # type: ignore[attr-defined]
    names = [s.name for s in instrumented.all()]
    assert [s.name for s in instrumented.roots()] == ["request"]
    assert len(instrumented.traces()) == 1
    # openinference's own spans are there, and so are agentloop's
    assert any(name.startswith("CodeAgent") for name in names), names
    assert any(name.startswith("execute_tool sync_tool") for name in names)
    by_id = instrumented.by_id()
    # the managed agent's instrumented run nests under its task span
    expert_task = instrumented.named("invoke_agent expert")[0]
    children = [
        s
        for s in instrumented.all()
        if s.parent and s.parent.span_id == expert_task.context.span_id
    ]
    assert children, "the managed agent's own spans are children of its task span"
    # agentloop's task spans sit under the span current where submit_task was called
    task_span = instrumented.named("execute_tool sync_tool")[0]
    ancestors = []
    node = task_span
    while node.parent is not None:
        node = by_id[node.parent.span_id]
        ancestors.append(node.name)
    assert "invoke_agent async_agent" in ancestors
    assert ancestors[-1] == "request"


# -- docs/tracing.md's snippet: no `tracer_provider=` for agentloop ----------------------


def _assert_one_connected_trace(recorded: Spans) -> None:
    ids = {s.context.span_id for s in recorded.all()}
    orphans = [s.name for s in recorded.all() if s.parent and s.parent.span_id not in ids]
    assert not orphans, orphans
    assert len(recorded.roots()) == 1
    assert len(recorded.traces()) == 1


async def test_snippet_without_provider_uses_the_instrumentors(instrumented: Spans) -> None:
    # `register(auto_instrument=True, set_global_tracer_provider=False)` instrumented with its
    # provider (the fixture); the snippet's own `.instrument()` then changes nothing
    instrumentation.SmolagentsInstrumentor().instrument()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    agent = make_agent(instrumented, tracer_provider=None)
    async with agent:  # type: ignore[attr-defined]
        await agent.arun("fan out")  # type: ignore[attr-defined]
    names = [s.name for s in instrumented.all()]
    for expected in ("invoke_agent async_agent", "execute_tool sync_tool", "agentloop.wait"):
        assert expected in names, names
    assert "CodeAgent.run" in names
    _assert_one_connected_trace(instrumented)
    assert instrumented.roots()[0].name == "invoke_agent async_agent"
    ours = instrumented.named("execute_tool sync_tool")[0]
    assert ours.instrumentation_scope is not None
    assert ours.instrumentation_scope.name == "agentloop"


async def test_no_provider_anywhere_says_once_how_to_pass_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instrumentor = instrumentation.SmolagentsInstrumentor()
    instrumentor.instrument()  # no provider, and the global one is the API's proxy
    try:
        agent = create_async_agent(tools=[], model=ScriptedModel(["final_answer(1)"]))
        with caplog.at_level(logging.WARNING, logger="agentloop"):
            async with agent:
                for _ in range(3):
                    await agent.arun("one")
                    agent.task_manager.tracing._next_check = 0.0  # re-check now, not in 0.5 s
    finally:
        instrumentor.uninstrument()
    advice = [r for r in caplog.records if "tracer_provider=" in r.getMessage()]
    assert len(advice) == 1, caplog.records


# -- async smolagents Tools under openinference -----------------------------------------------


class Lookup(Tool):  # type: ignore[misc]
    name = "lookup"
    description = "Looks a key up."
    inputs = {"key": {"type": "string", "description": "the key"}}
    output_type = "string"

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    async def forward(self, key: str) -> str:
        await asyncio.sleep(0)
        with self.tracer.start_as_current_span("inside lookup"):
            await asyncio.sleep(0)
        return f"value of {key}"


LOOKUPS = """
ids = [submit_task("tool", "lookup", {"key": key}) for key in ("a", "b")]
wait_for_tasks(ids)
final_answer(list(get_task_results(ids).values()))
"""


async def test_async_tool_span_covers_the_await_and_has_the_output(
    instrumented: Spans, caplog: pytest.LogCaptureFixture
) -> None:
    tool = Lookup(instrumented.provider.get_tracer("tools"))
    agent = create_async_agent(
        tools=[tool], model=ScriptedModel([LOOKUPS]), tracer_provider=instrumented.provider
    )
    with caplog.at_level(logging.WARNING):
        async with agent:
            answer = await agent.arun("look up")
    assert answer == ["value of a", "value of b"]
    assert not [r for r in caplog.records if "Invalid type" in r.getMessage()]
    by_id = instrumented.by_id()
    tool_spans = [s for s in instrumented.named("Lookup")]
    assert len(tool_spans) == 2
    for inner in instrumented.named("inside lookup"):
        parent = by_id[inner.parent.span_id]  # type: ignore[union-attr]
        assert parent.name == "Lookup"  # inside the TOOL span, not beside it
        assert parent.start_time <= inner.start_time  # type: ignore[operator]
        assert inner.end_time <= parent.end_time  # type: ignore[operator]
        assert by_id[parent.parent.span_id].name == "execute_tool lookup"  # type: ignore[union-attr]
    outputs = sorted(str((s.attributes or {})["output.value"]) for s in tool_spans)
    assert outputs == ["value of a", "value of b"]
    for span in tool_spans:
        attributes = span.attributes or {}
        assert attributes["openinference.span.kind"] == "TOOL"
        assert attributes["tool.name"] == "lookup"
        assert span.status.status_code is StatusCode.OK
    _assert_one_connected_trace(instrumented)


async def test_async_tool_without_instrumentation_is_plain(spans: Spans) -> None:
    tool = Lookup(spans.provider.get_tracer("tools"))
    agent = create_async_agent(
        tools=[tool], model=ScriptedModel([LOOKUPS]), tracer_provider=spans.provider
    )
    async with agent:
        assert await agent.arun("look up") == ["value of a", "value of b"]
    assert not spans.named("Lookup")
    by_id = spans.by_id()
    for inner in spans.named("inside lookup"):
        assert by_id[inner.parent.span_id].name == "execute_tool lookup"  # type: ignore[union-attr]


# -- model calls: agentloop's `chat` span only where openinference makes none -----------------


class Instrumentable(ScriptedModel):
    """A model whose `generate` openinference wraps (as it wraps smolagents' own models)."""


async def test_no_duplicate_model_spans_under_openinference(instrumented: Spans) -> None:
    instrumentor = instrumentation.SmolagentsInstrumentor()
    wrap_function_wrapper(Instrumentable, "generate", _ModelWrapper(tracer=instrumentor._tracer))
    try:
        wrapped = Instrumentable(["final_answer(1)"], model_id="acme/wrapped")
        agent = create_async_agent(tools=[], model=wrapped, tracer_provider=instrumented.provider)
        async with agent:
            await agent.arun("one")
    finally:
        Instrumentable.generate = ScriptedModel.generate  # type: ignore[method-assign]
        del Instrumentable.generate
    assert not instrumented.named("chat ")
    assert len(instrumented.named("Instrumentable.generate")) == 1
    # a model openinference does not wrap (it overrides `generate`) gets agentloop's span
    instrumented.exporter.clear()
    agent = create_async_agent(
        tools=[], model=ScriptedModel(["final_answer(1)"]), tracer_provider=instrumented.provider
    )
    async with agent:
        await agent.arun("one")
    assert [s.name for s in instrumented.named("chat ")] == ["chat agentloop/scripted"]
    assert not [s for s in instrumented.all() if s.name.endswith(".generate")]


class Failing(Lookup):
    name = "failing"

    async def forward(self, key: str) -> str:
        await asyncio.sleep(0)
        raise LookupError(f"no {key}")


async def test_a_failing_async_tool_span_is_error(instrumented: Spans) -> None:
    plan = 't = submit_task("tool", "failing", {"key": "a"})\nwait_for_tasks([t])\n'
    plan += "final_answer(str(get_task_results([t])[t]))"
    agent = create_async_agent(
        tools=[Failing(instrumented.provider.get_tracer("tools"))],
        model=ScriptedModel([plan]),
        tracer_provider=instrumented.provider,
    )
    async with agent:
        assert "no a" in await agent.arun("fail")
    tool_span = instrumented.named("Failing")[0]
    assert tool_span.status.status_code is StatusCode.ERROR
    assert [e.name for e in tool_span.events] == ["exception"]
    assert instrumented.named("execute_tool failing")[0].status.status_code is StatusCode.ERROR
