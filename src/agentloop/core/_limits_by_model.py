"""Which models an agent's `model_limits=` applies to, and the models it applies to them with.

`model_limits=ModelLimits(...)` is the agent's model's budget: every run's calls, and those of
the agent's smolagents managed agents whose model has the same `model_id` (the same model at
the same provider: one budget). `model_limits={"openai/gpt-4o": ModelLimits(...), ...}` names
the model of each budget; the agent's model and each managed agent's take the one their
`model_id` names, if any. An `AsyncAgent` managed agent has its own `model_limits` (give it
the same object to share the budget).

A run's managed agents are copied per task (`_isolation`); the copy's models are wrapped there,
from the mapping the run's turn puts in `CURRENT_MODEL_LIMITS` (which worker threads inherit).

`without_own_retries` makes the model the wrapper calls: a shallow copy with its own retries
off, so that attempts do not multiply (smolagents' `ApiModel` retries rate-limit errors up to
3 times, 60 s apart and more, whatever `Retry-After` says, and the openai SDK under LiteLLM
twice more per attempt).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from ..errors import InvalidArgumentsError
from ._limited_model import LimitedModel
from ._model_limits import ModelLimits

__all__ = [
    "CURRENT_MODEL_LIMITS",
    "ModelLimitsSpec",
    "limit_tree",
    "limited",
    "model_limits_by_id",
    "own_limits",
    "without_own_retries",
]

ModelLimitsSpec = ModelLimits | Mapping[str, ModelLimits] | None
"""What `model_limits=` takes."""

CURRENT_MODEL_LIMITS: ContextVar[Mapping[str, ModelLimits] | None] = ContextVar(
    "agentloop_model_limits", default=None
)
"""The budgets of the current run's agent, by `model_id`, for its managed agents' models."""


def model_limits_by_id(spec: ModelLimitsSpec, model: Any) -> dict[str, ModelLimits]:
    """`model_limits=` as a mapping from model id to budget (checked; `model` is the agent's)."""
    if spec is None:
        return {}
    if isinstance(spec, ModelLimits):
        model_id = _model_id(model)
        return {model_id: spec} if model_id else {}
    if not isinstance(spec, Mapping):
        raise InvalidArgumentsError(
            "`model_limits` must be an agentloop.ModelLimits, or a mapping from model id to "
            f"ModelLimits, received {type(spec).__name__}."
        )
    for key, value in spec.items():
        if not isinstance(key, str) or not isinstance(value, ModelLimits):
            raise InvalidArgumentsError(
                "`model_limits` maps model ids (str) to agentloop.ModelLimits, received "
                f"{type(key).__name__} -> {type(value).__name__} for {key!r}."
            )
    return dict(spec)


def own_limits(spec: ModelLimitsSpec, model: Any) -> ModelLimits | None:
    """The budget of the agent's own model."""
    if isinstance(spec, ModelLimits):
        return spec
    if isinstance(spec, Mapping):
        return spec.get(_model_id(model) or "")
    return None


def limited(model: Any, limits: ModelLimits) -> LimitedModel:
    """`model` (with its own retries off) spending `limits`."""
    return LimitedModel(without_own_retries(model), limits)


def without_own_retries(model: Any) -> Any:
    """A shallow copy of `model` that makes one attempt per call, or `model` itself if it has
    no retries of its own. Duck-typed: smolagents' `retryer` (`max_attempts` set to 1, on a
    copy of it), and for a model whose client is the litellm module, `max_retries=0` in its
    completion settings (`kwargs`, which override the call's)."""
    retryer: Any = getattr(model, "retryer", None)
    attempts = getattr(retryer, "max_attempts", None)
    retries = isinstance(attempts, int) and attempts > 1
    client = getattr(model, "client", None)
    through_litellm = isinstance(client, ModuleType) and client.__name__ == "litellm"
    settings = getattr(model, "kwargs", None)
    sdk_retries = through_litellm and isinstance(settings, dict)
    if not (retries or sdk_retries):
        return model
    clone = copy.copy(model)
    if retries:
        once = copy.copy(retryer)
        once.max_attempts = 1
        clone.retryer = once
    if sdk_retries and isinstance(settings, dict):
        clone.kwargs = {**settings, "max_retries": 0}
    return clone


def limit_tree(agent: Any, by_id: Mapping[str, ModelLimits]) -> None:
    """Wrap the model of a smolagents agent copy, and of its managed agents, whose `model_id`
    has a budget in `by_id`."""
    model = getattr(agent, "model", None)
    limits = by_id.get(_model_id(model) or "") if model is not None else None
    if limits is not None and not isinstance(model, LimitedModel):
        agent.model = limited(model, limits)
    for sub in (getattr(agent, "managed_agents", None) or {}).values():
        limit_tree(sub, by_id)


def _model_id(model: Any) -> str | None:
    model_id = getattr(model, "model_id", None)
    return model_id if isinstance(model_id, str) and model_id else None
