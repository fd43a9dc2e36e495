"""An agent's accounting of its model calls: their price, their GenAI metrics, and whether a
cost budget can be kept at all.

The core meters every model call of a run (`core._budgets`) but may not import litellm, nor
know which meter the application listens on; `AgentAccounting` is what it is handed instead,
built once per agent: `price` (LiteLLM's cost data, `_pricing`) and `record` (the GenAI
histograms, `tracing._model_metrics`, with the attributes that say which provider, model and
server a call went to, worked out once per model).

`check_cost_budget` refuses, when the agent is created, a dollar budget that could not be
kept: one of the agent's models (the controller's, or a managed agent's, nested ones included)
has no known price, so its calls would count nothing toward `max_cost_usd`. Refusing is
louder than a budget that silently does not bound; a model that only shows up later (a managed
agent registered after creation) is counted as unpriced and logged once per run instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

from .._util import REPLYING_MODEL, model_name
from ..core._usage import CallRecord
from ..errors import InvalidArgumentsError
from ..limits import Limits
from ..tracing._model_metrics import ModelMetrics
from ._pricing import Pricing, litellm_model_id

logger = logging.getLogger("agentloop")

__all__ = ["AgentAccounting", "check_cost_budget", "models_of"]

_PROVIDERS = {
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "gemini": "gcp.gemini",
    "groq": "groq",
    "mistral": "mistral_ai",
    "openai": "openai",
    "perplexity": "perplexity",
    "vertex_ai": "gcp.vertex_ai",
    "watsonx": "ibm.watsonx.ai",
    "xai": "x_ai",
}
"""LiteLLM's provider names, as the GenAI conventions name them (`gen_ai.provider.name`'s
well-known values); any other provider keeps LiteLLM's name."""

_MODEL_CLASSES = {
    "OpenAIServerModel": "openai",
    "OpenAIModel": "openai",
    "AzureOpenAIServerModel": "azure.ai.openai",
    "AzureOpenAIModel": "azure.ai.openai",
    "AmazonBedrockServerModel": "aws.bedrock",
    "AmazonBedrockModel": "aws.bedrock",
}
"""smolagents' model classes whose provider is known without LiteLLM."""

_MAX_DESCRIBED = 256


class AgentAccounting:
    """Prices an agent's model replies and reports each call to the GenAI metrics."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        self.pricing = Pricing()
        self._metrics = ModelMetrics(meter_provider)
        self._described: dict[tuple[type, str, str], dict[str, AttributeValue]] = {}
        self._lock = threading.Lock()

    def price(self, model: Any, reply: Any) -> float | None:
        try:
            return self.pricing.cost(model, reply)
        except Exception:  # pricing must never fail the call it prices: unpriced, and said
            logger.warning("could not price a reply of `%s`", model_name(model), exc_info=True)
            return None

    def reply_price(self, model: Any) -> functools.partial[float | None]:
        """`price` for `model`'s replies (what a model-call span asks)."""
        return functools.partial(self.price, model)

    def replying_price(self, model: Any) -> Callable[[Any], float | None]:
        """`price` for the replies of the model that made them (`REPLYING_MODEL`: a fallback
        chain's), `model`'s when none says (what the controller's model-call span asks)."""

        def price(reply: Any) -> float | None:
            return self.price(REPLYING_MODEL.get() or model, reply)

        return price

    def record(self, call: CallRecord) -> None:
        if not self._metrics.enabled:  # no meter provider yet: nothing to work out
            return
        attributes = self._attributes(call.model)
        reply = call.reply
        response_model = getattr(getattr(reply, "raw", None), "model", None)
        if isinstance(response_model, str) and response_model:
            attributes = {**attributes, "gen_ai.response.model": response_model}
        usage = getattr(reply, "token_usage", None)
        inputs = getattr(usage, "input_tokens", None)
        outputs = getattr(usage, "output_tokens", None)
        tokens = (inputs, outputs) if isinstance(inputs, int) and isinstance(outputs, int) else None
        error = call.error
        self._metrics.record(
            attributes,
            seconds=call.seconds,
            tokens=tokens,
            error_type=None if error is None else type(error).__name__,
        )

    def _attributes(self, model: Any) -> dict[str, AttributeValue]:
        """The attributes every measurement of `model`'s calls carries (worked out once)."""
        model_id = str(getattr(model, "model_id", None) or type(model).__name__)
        key = (type(model), model_id, str(getattr(model, "api_base", None)))
        described = self._described.get(key)
        if described is None:
            described = _describe(model, model_id)
            with self._lock:
                if len(self._described) >= _MAX_DESCRIBED:
                    self._described.clear()
                self._described[key] = described
        return described


def _describe(model: Any, model_id: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _provider(model),
        "gen_ai.request.model": model_id,
    }
    base = getattr(model, "api_base", None)
    if isinstance(base, str) and base:
        with contextlib.suppress(Exception):
            parts = urllib.parse.urlsplit(base)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
                port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
                if port is not None:
                    attributes["server.port"] = port
    return attributes


def _provider(model: Any) -> str:
    """`gen_ai.provider.name`: LiteLLM's provider for a LiteLLM model, the provider of one of
    smolagents' API clients, else the model's class (the best this client knows)."""
    model_id = litellm_model_id(model)
    if model_id is not None:
        import litellm

        with contextlib.suppress(Exception):
            provider = litellm.get_llm_provider(model=model_id)[1]
            return _PROVIDERS.get(str(provider), str(provider))
    return _MODEL_CLASSES.get(type(model).__name__, type(model).__name__)


def models_of(models: Iterable[Any], managed_agents: Iterable[Any]) -> list[tuple[str, Any]]:
    """Every model an agent's runs call, with whose it is: the controller's (each of a
    fallback chain), each managed agent's and their own managed agents' (an `AsyncAgent`
    lists its own the same way)."""
    return [*(("the controller", m) for m in models), *_managed_models(managed_agents)]


def _managed_models(agents: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    for agent in agents:
        name = str(getattr(agent, "name", None) or type(agent).__name__)
        tree = getattr(agent, "_model_tree", None)
        if isinstance(tree, list):  # an AsyncAgent: the models it listed when created
            for owner, model in tree:
                yield (name if owner == "the controller" else owner), model
            continue
        model = getattr(agent, "model", None)
        if model is not None:
            yield name, model
        yield from _managed_models((getattr(agent, "managed_agents", None) or {}).values())


def check_cost_budget(limits: Limits, models: Iterable[tuple[str, Any]], pricing: Pricing) -> None:
    """Refuse `limits.max_cost_usd` if any of `models` (owner, model) cannot be priced."""
    if limits.max_cost_usd is None:
        return
    problems = []
    for owner, model in models:
        reason = pricing.unpriced(model)
        if reason is not None:
            problems.append(f"{owner}'s model: {reason}")
    if problems:
        raise InvalidArgumentsError(
            f"`Limits(max_cost_usd={limits.max_cost_usd})` needs the price of every model the "
            f"agent's runs call, and some have none: {'; '.join(problems)}. Their calls would "
            "count nothing toward the budget. Use a LiteLLM model id that LiteLLM's cost map "
            "lists, register a price with `litellm.register_model(...)`, or bound the runs "
            "with `max_total_tokens` / `max_model_calls` instead."
        )
