"""The OpenTelemetry GenAI client metrics of model calls, through the metrics API only.

A trace shows one run; dashboards and alerts need the aggregate: how many tokens each model
uses and how long its calls take, per provider and model, across every run of a service. The
GenAI semantic conventions name two histograms for that, and this records them for every model
call agentloop makes (a controller's, and a smolagents managed agent's):

- `gen_ai.client.token.usage` (unit `{token}`): one measurement per reply for its input tokens
  and one for its output tokens (`gen_ai.token.type` = `input` / `output`), only when the reply
  reports them (the conventions forbid guessing);
- `gen_ai.client.operation.duration` (unit `s`): one per call, with `error.type` when it
  raised.

Both carry `gen_ai.operation.name` (`chat`), `gen_ai.provider.name`, `gen_ai.request.model`,
and where known `gen_ai.response.model` and `server.address` / `server.port`; the bucket
boundaries are the ones the conventions advise. As with spans, nothing is installed: the
instruments come from the meter provider passed in, or the global one, whose API proxy records
nothing until the application sets an SDK provider (and then forwards to it).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import metrics
from opentelemetry.util.types import AttributeValue

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "ModelMetrics"]

TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""`gen_ai.client.token.usage` buckets, as the GenAI conventions advise."""

DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""`gen_ai.client.operation.duration` buckets (seconds), as the GenAI conventions advise."""


class ModelMetrics:
    """The two GenAI client histograms of one agent, from its meter provider."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        from .._version import __version__

        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("agentloop", __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def record(
        self,
        attributes: Mapping[str, AttributeValue],
        *,
        seconds: float,
        tokens: tuple[int, int] | None,
        error_type: str | None,
    ) -> None:
        """One call: its duration, and its (input, output) `tokens` if the reply reported them;
        `error_type` if it raised (then there are no tokens to count)."""
        if error_type is not None:
            self._duration.record(seconds, {**attributes, "error.type": error_type})
            return
        self._duration.record(seconds, attributes)
        if tokens is not None:
            inputs, outputs = tokens
            self._tokens.record(inputs, {**attributes, "gen_ai.token.type": "input"})
            self._tokens.record(outputs, {**attributes, "gen_ai.token.type": "output"})
