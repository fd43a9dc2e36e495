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
instruments come from the meter provider passed in, or from the global one once the
application has set it. Until then nothing is recorded, and no instrument is made: the API's
proxy provider keeps every meter and instrument asked of it (to forward them once a provider is
set), so asking it once per agent would keep a few objects alive for every agent a process ever
created. Whether the global provider is set is asked at most twice a second, as for spans.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import metrics
from opentelemetry.util.types import AttributeValue

try:  # the API's stand-in until the application sets a provider (not a public name)
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _Proxy
except ImportError:  # pragma: no cover - another API version: treat every provider as real
    _Proxy = type("_NoProxy", (), {})  # type: ignore[assignment,misc]

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
        self._histograms: tuple[metrics.Histogram, metrics.Histogram] | None = None
        self._next_check = 0.0
        if meter_provider is not None:
            self._histograms = _histograms(meter_provider)

    def _instruments(self) -> tuple[metrics.Histogram, metrics.Histogram] | None:
        """(token usage, duration), or None while the global provider is not set."""
        if self._histograms is not None:
            return self._histograms
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + _GLOBAL_PROVIDER_RECHECK_S
        provider = metrics.get_meter_provider()
        if isinstance(provider, _Proxy):
            return None
        self._histograms = _histograms(provider)
        return self._histograms

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
        instruments = self._instruments()
        if instruments is None:
            return
        usage, duration = instruments
        if error_type is not None:
            duration.record(seconds, {**attributes, "error.type": error_type})
            return
        duration.record(seconds, attributes)
        if tokens is not None:
            inputs, outputs = tokens
            usage.record(inputs, {**attributes, "gen_ai.token.type": "input"})
            usage.record(outputs, {**attributes, "gen_ai.token.type": "output"})

    @property
    def enabled(self) -> bool:
        """Whether a call would be recorded (so its attributes are worth working out)."""
        return self._instruments() is not None


_GLOBAL_PROVIDER_RECHECK_S = 0.5


def _histograms(provider: metrics.MeterProvider) -> tuple[metrics.Histogram, metrics.Histogram]:
    from .._version import __version__

    meter = provider.get_meter("agentloop", __version__)
    usage = meter.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Number of input and output tokens used.",
        explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
    )
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration",
        unit="s",
        description="GenAI operation duration.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )
    return usage, duration
