"""The OpenTelemetry GenAI client metrics of model calls (issue 23, point 5): the names, units,
buckets and attributes the semantic conventions give them, read back through the SDK's
`InMemoryMetricReader`, for a controller's calls and a managed agent's, against the stub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import litellm  # here, not in a test: a cold import takes seconds
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from smolagents import CodeAgent, LiteLLMModel

from agentloop import create_async_agent

from ..cli.llm_stub import LLMStub

MODEL_ID = "openai/gpt-4o-mini"


def code(body: str) -> str:
    return f"Thought: go.\n<code>\n{body}\n</code>"


def model(stub: LLMStub) -> LiteLLMModel:
    litellm.suppress_debug_info = True
    return LiteLLMModel(
        model_id=MODEL_ID, api_key="sk-test", api_base=stub.base_url, max_retries=0, retry=False
    )


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


class Metrics:
    """An SDK meter provider whose measurements the test reads."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    recorder = Metrics()
    yield recorder
    recorder.provider.shutdown()


def histograms(metrics: Metrics) -> dict[str, Any]:
    """agentloop's metrics by name."""
    data = metrics.reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "agentloop"
        for metric in scope.metrics
    }


def points(metric: Any) -> list[HistogramDataPoint]:
    return list(metric.data.data_points)


async def test_each_call_is_measured_with_the_genai_names_units_and_attributes(
    stub: LLMStub, metrics: Metrics
) -> None:
    stub.fail_first(1, 500)
    delegate = code('final_answer(expert(task="think"))')
    stub.add_replies(delegate, code('final_answer("thought")'))
    expert = CodeAgent(
        tools=[], model=model(stub), name="expert", description="thinks", verbosity_level=0
    )
    agent = create_async_agent(
        model=model(stub), managed_agents=[expert], meter_provider=metrics.provider
    )
    async with agent:
        with pytest.raises(Exception, match="500"):
            await agent.arun("fail")  # the stub answers the first call with a 500
        await agent.arun("delegate")

    measured = histograms(metrics)
    assert set(measured) == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
    duration = measured["gen_ai.client.operation.duration"]
    usage = measured["gen_ai.client.token.usage"]
    assert (duration.unit, usage.unit) == ("s", "{token}")
    served = [r for r in stub.requests if r.status == 200]
    assert len(served) == 2  # the controller's call and the expert's: both measured
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL_ID,
        "server.address": "127.0.0.1",
        "server.port": stub.port,
    }
    by_outcome = {p.attributes.get("error.type"): p for p in points(duration)}
    assert set(by_outcome) == {None, "InternalServerError"}
    failed, answered = by_outcome["InternalServerError"], by_outcome[None]
    assert failed.count == 1
    assert dict(failed.attributes) == {**common, "error.type": "InternalServerError"}
    assert answered.count == 2
    assert dict(answered.attributes) == {**common, "gen_ai.response.model": "gpt-4o-mini"}
    assert list(answered.explicit_bounds)[:3] == [0.01, 0.02, 0.04]  # the advised buckets
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points(usage)}
    assert set(by_type) == {"input", "output"}
    for kind, point in by_type.items():
        assert point.count == 2
        assert dict(point.attributes) == {
            **common,
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.token.type": kind,
        }
    prompt_words = [
        sum(len(str(m.get("content", "")).split()) for m in r.body["messages"]) for r in served
    ]
    assert by_type["input"].sum == sum(prompt_words)  # the usage the stub reported
    assert list(by_type["input"].explicit_bounds)[:3] == [1, 4, 16]


def test_the_global_provider_is_used_once_the_application_sets_it(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import metrics as api

    from agentloop.tracing._model_metrics import ModelMetrics

    recorder = ModelMetrics()  # no provider given: the global one, read when a call is made
    monkeypatch.setattr(api, "get_meter_provider", lambda: metrics.provider)  # "set" it
    recorder.record({"gen_ai.request.model": "m"}, seconds=0.5, tokens=(3, 4), error_type=None)

    measured = histograms(metrics)
    assert [p.count for p in points(measured["gen_ai.client.operation.duration"])] == [1]
    assert sorted(p.sum for p in points(measured["gen_ai.client.token.usage"])) == [3, 4]


def test_without_a_meter_provider_no_instrument_is_made() -> None:
    """The API's proxy keeps every meter asked of it: one per agent would pile up."""
    from opentelemetry import metrics as api

    from agentloop.tracing._model_metrics import ModelMetrics

    proxy = api.get_meter_provider()
    meters = getattr(proxy, "_meters", None)
    if meters is None:
        pytest.skip("a global meter provider is set in this process")
    before = len(meters)
    for _ in range(5):
        ModelMetrics().record({}, seconds=0.1, tokens=(1, 1), error_type=None)
    assert len(meters) == before
