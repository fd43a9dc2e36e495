"""One connected OpenTelemetry trace per run, across threads, tasks and managed agents."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import StatusCode
from smolagents import CodeAgent

from agentloop import Limits, TaskRegistry, create_async_agent
from agentloop.testing import ScriptedModel

from .conftest import Spans

FAN_OUT = """
ids = [
    submit_task("tool", "sync_tool", {"n": 1}),
    submit_task("tool", "async_tool", {"n": 2}),
    submit_task("managed_agent", "expert", {"task": "think"}),
]
wait_for_tasks(ids, max_wait_time=30)
final_answer(list(get_task_results(ids).values()))
"""


def make_agent(spans: Spans, **kwargs: object) -> object:
    """Two tools and a managed agent; `tracer_provider=None` leaves the provider to agentloop."""
    kwargs.setdefault("tracer_provider", spans.provider)
    tracer = spans.provider.get_tracer("tools")

    def sync_tool(n: int) -> int:
        with tracer.start_as_current_span("inside sync_tool"):
            return n

    async def async_tool(n: int) -> int:
        with tracer.start_as_current_span("inside async_tool"):
            await asyncio.sleep(0)
            return n

    expert = CodeAgent(
        tools=[],
        model=ScriptedModel(["final_answer('insight')"]),
        name="expert",
        description="An expert.",
        verbosity_level=-1,
    )
    return create_async_agent(
        tools=[sync_tool, async_tool],
        managed_agents=[expert],
        model=ScriptedModel([FAN_OUT]),
        **kwargs,
    )


async def test_a_run_is_one_trace_under_the_callers_span(spans: Spans) -> None:
    agent = make_agent(spans)
    request_tracer = spans.provider.get_tracer("app")
    async with agent:  # type: ignore[attr-defined]
        with request_tracer.start_as_current_span("request"):
            answer = await agent.arun("fan out")  # type: ignore[attr-defined]
    assert answer[:2] == [1, 2]
    assert [s.name for s in spans.roots()] == ["request"]
    assert len(spans.traces()) == 1
    run = spans.named("invoke_agent async_agent")[0]
    assert run.parent.span_id == spans.roots()[0].context.span_id  # type: ignore[union-attr]
    assert run.attributes["agentloop.run.id"].startswith("run_")  # type: ignore[index,union-attr]


async def test_task_spans_carry_ids_and_parent_the_tools_own_spans(spans: Spans) -> None:
    agent = make_agent(spans)
    async with agent:  # type: ignore[attr-defined]
        await agent.arun("fan out")  # type: ignore[attr-defined]
    by_id = spans.by_id()
    run = spans.named("invoke_agent async_agent")[0]
    task_spans = spans.named("execute_tool") + spans.named("invoke_agent expert")
    assert len(task_spans) == 3
    for span in task_spans:
        assert span.attributes["agentloop.task.id"]  # type: ignore[index]
        assert span.attributes["agentloop.task.status"] == "completed"  # type: ignore[index]
        assert span.parent.span_id == run.context.span_id  # type: ignore[union-attr]
    for name in ("sync_tool", "async_tool"):
        inner = spans.named(f"inside {name}")[0]
        parent = by_id[inner.parent.span_id]  # type: ignore[union-attr]
        assert parent.name == f"execute_tool {name}"
        assert parent.attributes["gen_ai.tool.name"] == name  # type: ignore[index]
    tool_span = spans.named("execute_tool sync_tool")[0]
    assert tool_span.attributes["gen_ai.operation.name"] == "execute_tool"  # type: ignore[index]
    assert "agentloop.task.queued_ms" in tool_span.attributes  # type: ignore[operator]


async def test_wait_span_links_to_the_tasks_it_waited_for(spans: Spans) -> None:
    agent = make_agent(spans)
    async with agent:  # type: ignore[attr-defined]
        await agent.arun("fan out")  # type: ignore[attr-defined]
    task_ids = {
        s.context.span_id for s in spans.named("execute_tool") + spans.named("invoke_agent expert")
    }
    waits = spans.named("agentloop.wait")
    assert waits, "the wait made a span"
    linked = {link.context.span_id for link in waits[0].links}
    assert linked == task_ids


async def test_failed_and_retried_tasks(spans: Spans) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"attempt {calls}")
        return "ok"

    async def broken() -> None:
        raise ValueError("bad row")

    limits = Limits(retry_backoff=0)
    async with TaskRegistry(
        tools=[flaky, broken], limits=limits, tracer_provider=spans.provider
    ) as registry:
        ok = await registry.submit("tool", "flaky", retries=2)
        bad = await registry.submit("tool", "broken")
        await registry.wait([ok, bad])
    flaky_span = spans.named("execute_tool flaky")[0]
    retries = [e for e in flaky_span.events if e.name == "retry"]
    assert [e.attributes["agentloop.task.attempt"] for e in retries] == [1, 2]  # type: ignore[index]
    assert flaky_span.attributes["agentloop.task.attempts"] == 3  # type: ignore[index]
    assert flaky_span.status.status_code is StatusCode.OK  # retried, then completed
    broken_span = spans.named("execute_tool broken")[0]
    assert broken_span.status.status_code is StatusCode.ERROR
    assert "ValueError: bad row" in (broken_span.status.description or "")
    exceptions = [e for e in broken_span.events if e.name == "exception"]
    assert exceptions[0].attributes["exception.type"] == "ValueError"  # type: ignore[index]


async def test_timed_out_task_span(spans: Spans) -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async with TaskRegistry(tools=[forever], tracer_provider=spans.provider) as registry:
        await registry.wait(await registry.submit("tool", "forever", timeout=0.01))
    span = spans.named("execute_tool forever")[0]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["agentloop.task.status"] == "timed_out"  # type: ignore[index]
    assert [e.name for e in span.events].count("timeout") == 1


async def test_dependencies_are_linked(spans: Spans) -> None:
    async def one() -> int:
        return 1

    async def inc(x: int) -> int:
        return x + 1

    async with TaskRegistry(tools=[one, inc], tracer_provider=spans.provider) as registry:
        first = await registry.submit("tool", "one")
        second = await registry.submit("tool", "inc", {"x": {"$result_of": first}})
        await registry.wait(second)
    one_span = spans.named("execute_tool one")[0]
    inc_span = spans.named("execute_tool inc")[0]
    assert [link.context.span_id for link in inc_span.links] == [one_span.context.span_id]


async def test_concurrent_runs_make_separate_traces(spans: Spans) -> None:
    agent = make_agent(spans)
    app = spans.provider.get_tracer("app")

    async def request(i: int) -> object:
        with app.start_as_current_span(f"request {i}"):
            return await agent.arun(f"run {i}")  # type: ignore[attr-defined]

    async with agent:  # type: ignore[attr-defined]
        await asyncio.gather(*(request(i) for i in range(20)))
    roots = spans.roots()
    assert len(roots) == 20
    assert len(spans.traces()) == 20
    by_id = spans.by_id()
    for span in spans.all():  # every span's ancestry ends at the root of its own trace
        node = span
        while node.parent is not None:
            node = by_id[node.parent.span_id]
            assert node.context.trace_id == span.context.trace_id
        assert node.name.startswith("request")


async def test_no_sdk_means_no_spans_and_no_errors() -> None:
    async def quick() -> int:
        return 1

    async with TaskRegistry(tools=[quick]) as registry:
        assert not registry.tracing.enabled
        await registry.wait(await registry.submit("tool", "quick"))
        assert await registry.result((registry.list()[0]).task_id) == 1
