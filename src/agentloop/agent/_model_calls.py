"""How the event loop gets a reply from the user's model: awaited where it can be.

Three kinds of model, in this order:

- one with its own `async def agenerate(messages, ...)` (agentloop's test models, or any model
  a user writes): awaited on the loop;
- smolagents' `LiteLLMModel`: LiteLLM's async completion, awaited on the loop
  (`_litellm_async`);
- any other (a sync-only smolagents model): `None` here, and the run calls its blocking
  `generate` in a controller thread, bounded like the run's code.

A class that overrides `generate` below the class that gave it its async path (a subclass of
`LiteLLMModel`, or of a test model, that changes how replies are made) is taken as sync-only:
awaiting the inherited async path would skip the override.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["AwaitedReply", "awaited_reply"]

AwaitedReply = Callable[[Any, dict[str, Any]], Awaitable[Any]]
"""`await reply(messages, kwargs)`: a model's reply, awaited on the loop."""


def awaited_reply(model: Any) -> AwaitedReply | None:
    """The async path to `model`'s replies, or `None` if it has only a blocking one."""
    cls = type(model)
    generate_owner = _owner(cls, "generate")
    agenerate_owner = _owner(cls, "agenerate")
    if agenerate_owner is not None and inspect.iscoroutinefunction(
        agenerate_owner.__dict__["agenerate"]
    ):
        if generate_owner is None or issubclass(agenerate_owner, generate_owner):

            async def own(messages: Any, kwargs: dict[str, Any]) -> Any:
                return await model.agenerate(messages, **kwargs)

            return own
        return None
    return _litellm_reply(model)


def _owner(cls: type, name: str) -> type | None:
    """The class in `cls`'s MRO that defines `name`."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _litellm_reply(model: Any) -> AwaitedReply | None:
    """LiteLLM's async completion for a plain `LiteLLMModel` (`_litellm_async` says which
    models it can await: not a subclass overriding `generate`, nor a client of their own
    without `acompletion`)."""
    from ._litellm_async import async_path_unavailable, litellm_agenerate

    if async_path_unavailable(model) is not None:
        return None

    async def completion(messages: Any, kwargs: dict[str, Any]) -> Any:
        return await litellm_agenerate(model, messages, **kwargs)

    return completion
