"""A `chat {model}` span per model call of a controller, so a trace shows where the time went.

Without openinference, a run's trace had task spans but nothing for the LLM calls between them,
so neither a trace viewer nor `agentloop demo --trace` could tell model time from tool time.
`traced_model(model, tracing)` wraps the controller's model duck-typed: each call the engine
awaits goes through it; everything else is forwarded untouched.

Each call gets a GenAI `chat {model_id}` span (CLIENT kind, `gen_ai.request.model`,
`gen_ai.usage.*` when the reply carries token usage, ERROR status with the exception when the
call raises) with the OpenInference names beside them (`openinference.span.kind=LLM`,
`llm.model_name`, `llm.token_count.*`, bounded `input.value` / `output.value`, and
`llm.cost.total`, the reply's price in US dollars, when the agent knows it: the GenAI
conventions have no name for cost). When the reply
comes from the model's own `generate` and openinference's smolagents instrumentation wraps it,
no span is made here: the call gets openinference's LLM span, never two. An awaited call
(`agenerate`, LiteLLM's async completion) is not seen by openinference, so it gets this one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from .._util import REPLYING_MODEL, ModelCall, WrapperModel, model_name
from . import _openinference
from ._spans import Tracing
from ._values import TEXT, span_value

__all__ = ["TracedModel", "traced_model"]

_INPUT_LIMIT = 2000


class TracedModel(WrapperModel):
    """A controller's model, with a span around each call."""

    __slots__ = ("_price", "_tracing")

    def __init__(
        self, model: Any, tracing: Tracing, price: Callable[[Any], float | None] | None = None
    ) -> None:
        super().__init__(model)
        self._tracing = tracing
        self._price = price

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        tracing = self._tracing
        if not tracing.enabled or (
            proceed.through_generate and _openinference.generate_is_instrumented(self.innermost)
        ):
            return await proceed(messages, kwargs)
        model = self.wrapped
        model_id = str(getattr(model, "model_id", None) or type(model).__name__)
        with tracing.tracer.start_as_current_span(
            f"chat {model_id}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model_id,
                "openinference.span.kind": "LLM",
                "llm.model_name": model_id,
                "input.value": _last_message_text(messages),
                "input.mime_type": TEXT,
            },
        ) as span:  # an exception is recorded, and sets ERROR, by the context manager
            reply = await proceed(messages, kwargs)
            attributes: dict[str, str | int | float] = {}
            replying = REPLYING_MODEL.get()
            if replying is not None:  # a fallback chain's next model, or the one asked
                attributes["gen_ai.response.model"] = model_name(replying)
            usage = getattr(reply, "token_usage", None)
            inputs = getattr(usage, "input_tokens", None)
            outputs = getattr(usage, "output_tokens", None)
            if isinstance(inputs, int) and isinstance(outputs, int):
                attributes["gen_ai.usage.input_tokens"] = inputs
                attributes["gen_ai.usage.output_tokens"] = outputs
                attributes["llm.token_count.prompt"] = inputs
                attributes["llm.token_count.completion"] = outputs
                attributes["llm.token_count.total"] = inputs + outputs
            cost = self._price(reply) if self._price is not None else None
            if cost is not None:
                attributes["llm.cost.total"] = cost
            content = getattr(reply, "content", reply)
            attributes["output.value"], attributes["output.mime_type"] = span_value(
                _text_of(content)
            )
            span.set_attributes(attributes)
            span.set_status(Status(StatusCode.OK))
        return reply


def traced_model(
    model: Any, tracing: Tracing, price: Callable[[Any], float | None] | None = None
) -> Any:
    """`model` wrapped so each call gets a span (the model itself if it is wrapped already);
    `price(reply)` is what a reply cost, when the agent knows."""
    return model if isinstance(model, TracedModel) else TracedModel(model, tracing, price)


def _last_message_text(messages: Any) -> str:
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        return span_value(messages, _INPUT_LIMIT)[0]
    last = messages[-1]
    content = last.get("content") if isinstance(last, dict) else getattr(last, "content", last)
    return span_value(_text_of(content), _INPUT_LIMIT)[0]


def _text_of(content: Any) -> Any:
    """A message's text: smolagents gives a string or a list of `{"type": "text", ...}` parts."""
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content[:50]
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        if texts:
            return "\n".join(texts)
    return content
