"""docs/tracing.md's Phoenix snippet against a real Phoenix server (`nox -s phoenix`).

The nox session starts `phoenix serve` on 127.0.0.1 and sets `AGENTLOOP_PHOENIX_URL`; without
it these tests are skipped. One run of that snippet (its snippet literally: `register(...,
auto_instrument=True, set_global_tracer_provider=False)`, `SmolagentsInstrumentor().instrument()`,
`create_async_agent(...)` with no `tracer_provider=`), with a scripted model, an async tool, a
sync tool and a managed agent; then the spans are read back with Phoenix's own client.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import CodeAgent, Tool

from agentloop import create_async_agent
from agentloop.testing import ScriptedModel

URL = os.environ.get("AGENTLOOP_PHOENIX_URL", "")
pytestmark = [
    pytest.mark.skipif(not URL, reason="needs a Phoenix server: run `nox -s phoenix`"),
    pytest.mark.timeout(240),
]
PROJECT = f"agentloop-{uuid.uuid4().hex[:8]}"
LOOKUP_S = 0.3
"""How long the async tool works: its TOOL span must last at least that long."""
READ_BACK_S = 60
"""Phoenix ingests spans asynchronously: how long to wait for all of them to be queryable."""

PLAN = """
ids = [
    submit_task("tool", "lookup", {"key": "a"}),
    submit_task("tool", "add", {"a": 1, "b": 2}),
    submit_task("managed_agent", "expert", {"task": "think"}),
]
wait_for_tasks(ids, max_wait_time=30)
final_answer(list(get_task_results(ids).values()))
"""
TASK = "Look up a, add 1 and 2, and ask the expert."


class Lookup(Tool):  # type: ignore[misc]
    name = "lookup"
    description = "Looks a key up (async, slow)."
    inputs = {"key": {"type": "string", "description": "the key"}}
    output_type = "string"

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer  # the tool's own instrumentation

    async def forward(self, key: str) -> str:
        with self.tracer.start_as_current_span("inside lookup"):
            await asyncio.sleep(LOOKUP_S)  # simulated I/O: the work the TOOL span must cover
        return f"value of {key}"


class Add(Tool):  # type: ignore[misc]
    name = "add"
    description = "Adds two integers (sync)."
    inputs = {
        "a": {"type": "integer", "description": "first"},
        "b": {"type": "integer", "description": "second"},
    }
    output_type = "integer"

    def forward(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture(scope="module")
def snippet_run() -> Iterator[tuple[Any, list[ReadableSpan]]]:
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from phoenix.otel import register

    # -- docs/tracing.md's snippet, literally (only the endpoint is the test server's) --
    tracer_provider = register(
        project_name=PROJECT,
        endpoint=f"{URL}/v1/traces",
        auto_instrument=True,
        set_global_tracer_provider=False,
    )
    SmolagentsInstrumentor().instrument()
    memory = InMemorySpanExporter()
    # (Phoenix's provider drops its own exporter on `add_span_processor` unless told not to)
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory), replace_default_processor=False)
    try:
        expert = CodeAgent(
            tools=[],
            model=ScriptedModel(["final_answer('insight')"]),
            name="expert",
            description="An expert.",
            verbosity_level=-1,
        )
        tools = [Lookup(tracer_provider.get_tracer("tools")), Add()]
        async_agent = create_async_agent(
            tools=tools, managed_agents=[expert], model=ScriptedModel([PLAN])
        )
        result = async_agent.run_with_async_guidance(TASK)
        async_agent.shutdown()
        tracer_provider.force_flush()
        yield result, list(memory.get_finished_spans())
    finally:
        SmolagentsInstrumentor().uninstrument()
        tracer_provider.shutdown()


def test_the_snippet_gives_one_trace_with_agentloops_spans(
    snippet_run: tuple[Any, list[ReadableSpan]],
) -> None:
    result, spans = snippet_run
    assert result[:2] == ["value of a", 3]
    names = [s.name for s in spans]
    for expected in (
        "invoke_agent async_agent",
        "execute_tool lookup",
        "execute_tool add",
        "invoke_agent expert",
        "agentloop.wait",
        "CodeAgent.run",
        "Lookup",
        "Add",
    ):
        assert expected in names, names
    ids = {s.context.span_id for s in spans}
    assert not [s.name for s in spans if s.parent and s.parent.span_id not in ids]
    assert len({s.context.trace_id for s in spans}) == 1
    assert [s.name for s in spans if s.parent is None] == ["invoke_agent async_agent"]


def _read_back(expected: int) -> list[dict[str, Any]]:
    from phoenix.client import Client

    client = Client(base_url=URL)
    deadline = time.monotonic() + READ_BACK_S
    while True:  # polling an external server's ingestion: there is no event to wait on
        try:
            found = client.spans.get_spans(project_identifier=PROJECT, limit=1000)
        except httpx.HTTPStatusError as exc:  # 404 until the first span creates the project
            if exc.response.status_code != 404 or time.monotonic() > deadline:
                raise
            found = []
        if len(found) >= expected or time.monotonic() > deadline:
            return [dict(span) for span in found]
        time.sleep(0.5)


def _seconds(span: dict[str, Any]) -> float:
    start = datetime.fromisoformat(span["start_time"])
    end = datetime.fromisoformat(span["end_time"])
    return (end - start).total_seconds()


def test_phoenix_shows_the_trace(snippet_run: tuple[Any, list[ReadableSpan]]) -> None:
    _, exported = snippet_run
    spans = _read_back(len(exported))
    assert len(spans) == len(exported), sorted(s["name"] for s in spans)
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    by_id = {s["context"]["span_id"]: s for s in spans}
    # the tree: one root, every other span's parent is in the trace
    roots = [s for s in spans if not s.get("parent_id")]
    assert [r["name"] for r in roots] == ["invoke_agent async_agent"]
    assert all(s["parent_id"] in by_id for s in spans if s.get("parent_id"))

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_id"]]

    assert parent(_one(spans, "CodeAgent.run"))["name"] == "invoke_agent async_agent"
    assert parent(_one(spans, "execute_tool lookup"))["name"] == "SubmitTaskTool"
    assert parent(_one(spans, "inside lookup"))["name"] == "Lookup"
    assert parent(_one(spans, "Lookup"))["name"] == "execute_tool lookup"
    assert parent(_one(spans, "expert.run"))["name"] == "invoke_agent expert"
    # the root: task in, answer out, OK
    root = roots[0]
    assert root["span_kind"] == "AGENT"
    assert root["status_code"] == "OK"
    attributes = root["attributes"]
    assert TASK in attributes["input.value"]
    assert "value of a" in attributes["output.value"]
    # the async TOOL span covers the awaited work and carries the real output
    lookup = _one(spans, "Lookup")
    assert lookup["span_kind"] == "TOOL"
    assert lookup["status_code"] == "OK"
    assert _seconds(lookup) >= LOOKUP_S
    assert lookup["attributes"]["output.value"] == "value of a"
    # task spans: arguments in, result out
    add = _one(spans, "execute_tool add")
    assert add["status_code"] == "OK"
    assert add["attributes"]["output.value"] == "3"


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, sorted(s["name"] for s in spans))
    return found[0]
