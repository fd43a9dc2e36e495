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

When a run's stream wants the model's words as it writes them, the streamed path of the same
kinds is used instead (`streamed_reply`): an `async def agenerate_stream` of the model's own
(async-iterating smolagents `ChatMessageStreamDelta`s), or LiteLLM's streamed completion. The
reply it returns is the one the plain path would have given; the text also goes, chunk by
chunk, to the callback. A model with neither (sync-only, or async without a stream) gives its
whole reply as one chunk: the run does that (`_run`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["AwaitedReply", "StreamedReply", "awaited_reply", "streamed_reply"]

AwaitedReply = Callable[[Any, dict[str, Any]], Awaitable[Any]]
"""`await reply(messages, kwargs)`: a model's reply, awaited on the loop."""

StreamedReply = Callable[[Any, dict[str, Any], Callable[[str], None]], Awaitable[Any]]
"""`await reply(messages, kwargs, on_text)`: a model's reply, its text handed to `on_text`
as it comes."""


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


def streamed_reply(model: Any) -> StreamedReply | None:
    """The streamed path to `model`'s replies, or `None` if it cannot stream on the loop."""
    cls = type(model)
    stream_owner = _owner(cls, "agenerate_stream")
    if stream_owner is not None and inspect.isasyncgenfunction(
        stream_owner.__dict__["agenerate_stream"]
    ):
        for other in (_owner(cls, "generate"), _owner(cls, "agenerate")):
            if other is not None and not issubclass(stream_owner, other):
                return None  # replies are made below the stream: it would skip that

        from smolagents.models import agglomerate_stream_deltas  # once per agent

        async def own(messages: Any, kwargs: dict[str, Any], on_text: Callable[[str], None]) -> Any:
            deltas = []
            async with contextlib.aclosing(model.agenerate_stream(messages, **kwargs)) as stream:
                async for delta in stream:
                    deltas.append(delta)
                    if delta.content:
                        on_text(delta.content)
            return agglomerate_stream_deltas(deltas)

        return own
    return _litellm_stream(model)


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


def _litellm_stream(model: Any) -> StreamedReply | None:
    """LiteLLM's streamed completion, for the models `_litellm_reply` awaits."""
    from smolagents.models import LiteLLMModel

    from ._litellm_async import async_path_unavailable, litellm_astream

    if async_path_unavailable(model) is not None:
        return None
    if type(model).generate_stream is not LiteLLMModel.generate_stream:
        return None  # a subclass streams its own way: its whole reply, in one chunk

    async def completion(
        messages: Any, kwargs: dict[str, Any], on_text: Callable[[str], None]
    ) -> Any:
        return await litellm_astream(model, messages, on_text, **kwargs)

    return completion
