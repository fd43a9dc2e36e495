"""With openinference's SmolagentsInstrumentor (as in the Phoenix setup), the trace stays whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Spans
from .test_spans import make_agent

instrumentation = pytest.importorskip("openinference.instrumentation.smolagents")


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
