"""The controller's models: one, or a fallback chain (`model=[primary, fallback, ...]`).

A provider that is rate-limited past its retries, down, or refusing a prompt longer than its
context window fails the call; with a chain, the same call goes to the next model instead and
the run goes on. Which errors move on is the application's choice (`fallback_on`); by default
the ones another provider may not have: rate limits, server errors (5xx), timeouts, lost
connections, and a context window exceeded. Anything else (a bad request, a refused key, a
budget spent, a cancellation) is the call's error at once: another model would fail the same
way, or the run must stop.

Each link knows its own paths (awaited, streamed, or blocking in a thread: `_model_calls`),
decided once per agent, and its own provider budget (`model_limits`, by model id): a model's
retries and its budget's waits happen inside its link, so the chain moves on only once a
model has given up, and a fallback spends its own budget, not the primary's. The run (`_run`)
walks the chain per call, says which model made each reply (`REPLYING_MODEL`, read by the
span, the journal and the stream) and reports each move to the next model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._util import model_name
from ..core._limited_model import LimitedModel
from ..core._limits_by_model import limited
from ..core._model_limits import ModelLimits
from ..errors import InvalidArgumentsError
from ._model_calls import AwaitedReply, StreamedReply, awaited_reply, streamed_reply

__all__ = ["FallbackOn", "ModelChain", "ModelLink", "is_provider_failure"]

FallbackOn = Callable[[Exception], bool] | Sequence[type[Exception]] | None
"""What moves a call to the next model: a predicate, exception classes, or `None` for
`is_provider_failure`."""

_MOVE_ON_NAMES = frozenset(
    {
        "RateLimitError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
        "APIConnectionError",
        "APITimeoutError",
        "Timeout",
        "ContextWindowExceededError",
    }
)
"""Provider errors (LiteLLM's and the OpenAI SDK's class names, matched along the MRO so no
provider library is imported here) that another model may not have."""


def is_provider_failure(error: Exception) -> bool:
    """The default `fallback_on`: rate limited, the provider down or slow (HTTP 429, 408, 5xx,
    a timeout, a lost connection), or the prompt past the model's context window."""
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    if any(klass.__name__ in _MOVE_ON_NAMES for klass in type(error).__mro__):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and (status in (408, 429) or 500 <= status < 600)


@dataclass(frozen=True, slots=True)
class ModelLink:
    """One model of the chain and how the loop reaches it."""

    model: Any
    """The model called: the user's, or a copy with its own retries off when a budget
    retries for it."""
    model_id: str
    awaited: AwaitedReply | None
    """Its async path (`None`: its blocking `generate`, in a thread)."""
    streamed: StreamedReply | None
    """Its streamed path (`None`: a stream gets each reply whole)."""
    budget: LimitedModel | None = None
    """Its provider budget (`model_limits`): the calls wait and retry through it."""

    @classmethod
    def of(cls, model: Any, limits: ModelLimits | None = None) -> ModelLink:
        budget = limited(model, limits) if limits is not None else None
        called = budget.wrapped if budget is not None else model
        awaited = awaited_reply(called)
        return cls(
            model=called,
            model_id=model_name(model),
            awaited=awaited,
            streamed=streamed_reply(called) if awaited is not None else None,
            budget=budget,
        )


@dataclass(frozen=True, slots=True)
class ModelChain:
    """The controller's models in the order they are tried, and when to try the next."""

    links: tuple[ModelLink, ...]
    moves_on: Callable[[Exception], bool]
    models: tuple[Any, ...]
    """The chain's models, as the user gave them."""
    by_id: Mapping[str, Any]
    """The chain's models by model id (the first of two with one id)."""

    @classmethod
    def of(
        cls,
        model: Any,
        fallback_on: FallbackOn = None,
        budgets: Mapping[str, ModelLimits] | None = None,
    ) -> ModelChain:
        """The chain for `create_async_agent`'s `model` (one model, or a list or tuple of
        them) and `fallback_on`, each checked; `budgets` by model id."""
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise InvalidArgumentsError("`model=[]`: a fallback chain needs at least one model.")
        for position, candidate in enumerate(models):
            if isinstance(candidate, (list, tuple, str)) or not (
                callable(getattr(candidate, "generate", None))
                or callable(getattr(candidate, "agenerate", None))
            ):
                raise InvalidArgumentsError(
                    f"`model` entry {position} is {type(candidate).__name__}, not a model: give "
                    "smolagents models (LiteLLMModel(...), agentloop.testing.ScriptedModel, ...)."
                )
        budgets = budgets or {}
        links = tuple(
            ModelLink.of(m, budgets.get(str(getattr(m, "model_id", None) or ""))) for m in models
        )
        by_id: dict[str, Any] = {}
        for link, original in zip(links, models, strict=True):
            by_id.setdefault(link.model_id, original)
        return cls(links, _moves_on(fallback_on), tuple(models), by_id)

    @property
    def primary(self) -> Any:
        """The first model, as the user gave it (the agent's `model`)."""
        return self.models[0]


def _moves_on(fallback_on: FallbackOn) -> Callable[[Exception], bool]:
    if fallback_on is None:
        return is_provider_failure
    if isinstance(fallback_on, (list, tuple)):
        classes = tuple(fallback_on)
        if not all(isinstance(c, type) and issubclass(c, Exception) for c in classes):
            raise InvalidArgumentsError(
                f"`fallback_on` must be exception classes or a predicate, received {fallback_on!r}."
            )
        return lambda error: isinstance(error, classes)
    if isinstance(fallback_on, type) or not callable(fallback_on):
        raise InvalidArgumentsError(
            "`fallback_on` must be a predicate `(Exception) -> bool` or a list of exception "
            f"classes, received {fallback_on!r}."
        )
    return fallback_on
