"""What a model reply cost in US dollars, from LiteLLM's own cost data, offline.

Only LiteLLM models are priced (smolagents' `LiteLLMModel` and its subclasses): their model id
names the provider and the model (`openai/gpt-4o-mini`), which is what LiteLLM's cost map is
keyed on. Any other model (a local `TransformersModel`, an `OpenAIServerModel` pointed at some
server, a test double) has no price agentloop could know, and its cost is `None`: never a
guess. Where LiteLLM already priced a reply (its `response_cost`, computed from the reply's
usage, cached tokens included), that figure is taken as it is; otherwise (a reply replayed
from a journal, a client that does not report one) the reply's input and output tokens are
priced with `litellm.cost_per_token` for the model id. A model id the map does not list is
remembered as such (until the map changes, e.g. `litellm.register_model(...)`), so an unpriced
model costs one failed lookup, not one per call.

The cost map is the copy installed with litellm (agentloop sets `LITELLM_LOCAL_MODEL_COST_MAP`
before anything imports litellm, see `agentloop._util.prefer_local_cost_map`): no network.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from ..core._usage import reply_tokens

__all__ = ["Pricing", "litellm_model_id"]

_MAX_UNKNOWN = 256
"""Model ids remembered as unpriced; more (a model id built per call?) start the set over."""


def litellm_model_id(model: Any) -> str | None:
    """The model id of a LiteLLM model (`None` for any other model)."""
    from smolagents import LiteLLMModel

    if not isinstance(model, LiteLLMModel):
        return None
    model_id = getattr(model, "model_id", None)
    return model_id if isinstance(model_id, str) and model_id else None


class Pricing:
    """Prices the replies of an agent's models (one per agent; thread-safe)."""

    def __init__(self) -> None:
        self._unknown: set[str] = set()
        self._map_size = -1
        """The size of LiteLLM's cost map when `_unknown` was filled: a registered model
        changes it, and the ids are asked again."""
        self._last: tuple[Any, Any, float | None] | None = None
        """The last reply priced, its model and its price: a call's span and its budget ask
        for the same one."""

    def cost(self, model: Any, reply: Any) -> float | None:
        """What `reply` from `model` cost in US dollars, or None if that is not known."""
        last = self._last
        if last is not None and last[0] is reply and last[1] is model:
            return last[2]
        cost = self._cost(model, reply)
        self._last = (reply, model, cost)
        return cost

    def unpriced(self, model: Any) -> str | None:
        """Why `model`'s calls cannot be priced, or None if they can."""
        model_id = litellm_model_id(model)
        if model_id is None:
            return (
                f"`{_name(model)}` is not a LiteLLM model (agentloop prices LiteLLM models only, "
                "from LiteLLM's cost map)"
            )
        if self._per_token(model_id, 1, 1) is None:
            return f"`{model_id}` has no price in LiteLLM's cost map"
        return None

    def _cost(self, model: Any, reply: Any) -> float | None:
        model_id = litellm_model_id(model)
        if model_id is None:
            return None
        hidden = getattr(getattr(reply, "raw", None), "_hidden_params", None)
        if isinstance(hidden, dict):
            priced = hidden.get("response_cost")
            if _is_amount(priced):
                return float(priced)
        inputs, outputs = reply_tokens(reply)
        return self._per_token(model_id, inputs, outputs)

    def _per_token(self, model_id: str, inputs: int, outputs: int) -> float | None:
        """`inputs` and `outputs` tokens of `model_id`, priced by LiteLLM's map."""
        import litellm

        size = len(litellm.model_cost)
        if size != self._map_size or len(self._unknown) > _MAX_UNKNOWN:
            self._unknown = set()
            self._map_size = size
        if model_id in self._unknown:
            return None
        try:
            prompt, completion = litellm.cost_per_token(
                model=model_id, prompt_tokens=inputs, completion_tokens=outputs
            )
        except Exception:  # litellm raises its own error for a model its map does not list
            self._unknown.add(model_id)
            return None
        total = float(prompt) + float(completion)
        return total if _is_amount(total) else None


def _is_amount(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _name(model: Any) -> str:
    model_id = getattr(model, "model_id", None)
    kind = type(model).__name__
    return f"{kind}({model_id!r})" if isinstance(model_id, str) else kind
