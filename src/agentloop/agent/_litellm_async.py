"""smolagents' `LiteLLMModel.generate`, awaited on the event loop instead of blocking a thread.

Why: `LiteLLMModel.generate` calls `litellm.completion`, which holds its thread for the whole
HTTP round trip (seconds, minutes for a long reply), and its rate limiter and retries wait with
`time.sleep`. A run waiting for its model that way holds an OS thread, so the cost of waiting
runs grows with their number (the design says: waiting costs no thread). litellm has the same
call as a coroutine, `acompletion`; `litellm_agenerate` is `generate` with its three waits made
awaitable and everything else left to smolagents, so a reply is the `ChatMessage` `generate`
returns:

- the request: `await model.client.acompletion(**kwargs)`, with the kwargs smolagents' own
  `_prepare_completion_kwargs` builds from exactly the arguments `generate` passes. The client
  is the `litellm` module unless the user gave another one; one with an `async def acompletion`
  (a litellm `Router`) is awaited the same way. Cancelling the awaiting task closes the request.
- the rate limit: the model's own `RateLimiter` state (`_interval`, `_last_call`, on the same
  `time.time` clock), waited with `asyncio.sleep`. The slot is reserved before the wait, so
  concurrent calls on one loop queue up one interval apart (smolagents' threads race for it).
- the retries: the model's own `Retrying` settings (`max_attempts`, 1 when the model was built
  with `retry=False`; the wait, exponential base and jitter; the rate-limit predicate; its
  loggers and messages), waited with `asyncio.sleep`. Only `Exception`s are retried:
  cancellation always propagates at once.

litellm's `acompletion` still runs its synchronous request set-up in the loop's default executor
for a moment before sending; the wait for the reply holds no thread (tested: 50 calls waiting at
once through a one-thread default executor).

Where that equivalence cannot be promised (not a `LiteLLMModel`, a subclass that overrides
`generate`, a client without an awaitable `acompletion`, a rate limiter or retryer smolagents did
not build), `litellm_agenerate` raises `AsyncPathUnavailable` before doing anything, so the
caller can call `generate` in a thread instead; `async_path_unavailable(model)` gives the same
answer up front.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from smolagents import Tool
from smolagents.models import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCallStreamDelta,
    LiteLLMModel,
    agglomerate_stream_deltas,
    remove_content_after_stop_sequences,
)
from smolagents.monitoring import TokenUsage
from smolagents.utils import RateLimiter, Retrying

__all__ = [
    "AsyncPathUnavailable",
    "async_path_unavailable",
    "completion_kwargs_of",
    "litellm_agenerate",
    "litellm_astream",
]

_LIMITER_STATE = ("_enabled", "_interval", "_last_call")
"""The fields of smolagents' `RateLimiter` that the async wait reads and advances."""


class AsyncPathUnavailable(Exception):
    """The model's reply cannot be awaited the way its `generate` would produce it; call
    `generate` in a thread instead. Raised before any request, wait or rate-limit slot."""


def async_path_unavailable(model: Any) -> str | None:
    """Why `litellm_agenerate(model, ...)` would refuse `model`, or None if it can await it."""
    if not isinstance(model, LiteLLMModel):
        return f"`{type(model).__name__}` is not a smolagents LiteLLMModel"
    if type(model).generate is not LiteLLMModel.generate:
        return (
            f"`{type(model).__name__}` overrides `generate`; awaiting litellm directly would "
            "skip that override"
        )
    if _acompletion(model.client) is None:
        return (
            f"the model's client (`{type(model.client).__name__}`) has no `async def "
            "acompletion`; only the litellm module or a client like a litellm Router can be awaited"
        )
    limiter = model.rate_limiter
    if not isinstance(limiter, RateLimiter) or not all(hasattr(limiter, f) for f in _LIMITER_STATE):
        return f"the model's rate limiter (`{type(limiter).__name__}`) is not smolagents' own"
    if not isinstance(model.retryer, Retrying):
        return f"the model's retryer (`{type(model.retryer).__name__}`) is not smolagents' own"
    return None


async def litellm_agenerate(
    model: LiteLLMModel,
    messages: list[ChatMessage | dict[str, Any]],
    stop_sequences: list[str] | None = None,
    response_format: dict[str, str] | None = None,
    tools_to_call_from: list[Tool] | None = None,
    **kwargs: Any,
) -> ChatMessage:
    """Await the reply `model.generate(messages, ...)` would return, holding no thread while
    waiting. Raises what `generate` raises (the last attempt's error, or `RuntimeError` for a
    reply without choices), and `AsyncPathUnavailable` (before anything) for a model it cannot
    await; cancellation propagates and cancels the request."""
    response = await _completed(
        model, messages, stop_sequences, response_format, tools_to_call_from, kwargs
    )

    if not response.choices:
        raise RuntimeError(
            f"Unexpected API response: model '{model.model_id}' returned no choices. "
            " This may indicate a possible API or upstream issue. "
            f"Response details: {response.model_dump()}"
        )
    message = response.choices[0].message
    content = message.content
    if stop_sequences is not None and not model.supports_stop_parameter:
        content = remove_content_after_stop_sequences(content, stop_sequences)
    return ChatMessage(
        role=message.role,
        content=content,
        tool_calls=message.tool_calls,
        raw=response,
        token_usage=TokenUsage(
            input_tokens=response.usage.prompt_tokens,
            output_tokens=response.usage.completion_tokens,
        ),
    )


async def litellm_astream(
    model: LiteLLMModel,
    messages: list[ChatMessage | dict[str, Any]],
    on_text: Callable[[str], None],
    stop_sequences: list[str] | None = None,
    response_format: dict[str, str] | None = None,
    tools_to_call_from: list[Tool] | None = None,
    **kwargs: Any,
) -> ChatMessage:
    """`litellm_agenerate`, streamed: the reply's text goes to `on_text` chunk by chunk as
    the provider sends it, and the whole reply is returned, as `generate_stream`'s deltas
    joined. The request is `generate_stream`'s (`stream=True`, usage in the last chunk);
    rate limit and retries as `litellm_agenerate`'s. A failed request is retried only
    before its first chunk (later, the text already shown would be shown twice): an error
    mid-stream is the call's error."""
    streaming = {**kwargs, "stream": True, "stream_options": {"include_usage": True}}
    chunks = await _completed(
        model, messages, stop_sequences, response_format, tools_to_call_from, streaming
    )
    deltas: list[ChatMessageStreamDelta] = []
    try:
        async for chunk in chunks:
            delta = _stream_delta(chunk)
            if delta is None:
                continue
            deltas.append(delta)
            if delta.content:
                on_text(delta.content)
    except BaseException:  # cancelled or failed mid-stream: close the response now
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await asyncio.shield(aclose())
        raise
    reply = agglomerate_stream_deltas(deltas)
    reply.tool_calls = reply.tool_calls or None  # as `generate` gives a reply without any
    if stop_sequences is not None and not model.supports_stop_parameter:
        reply.content = remove_content_after_stop_sequences(reply.content, stop_sequences)
    return reply


def _stream_delta(chunk: Any) -> ChatMessageStreamDelta | None:
    """One streamed chunk as smolagents' `generate_stream` reads it: its text, its tool-call
    parts and the usage the last chunk carries; `None` for a chunk with none of them."""
    usage = getattr(chunk, "usage", None)
    token_usage = (
        TokenUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
        if usage
        else None
    )
    delta = chunk.choices[0].delta if chunk.choices else None
    content = getattr(delta, "content", None)
    calls = getattr(delta, "tool_calls", None)
    if token_usage is None and not content and not calls:
        return None
    return ChatMessageStreamDelta(
        content=content,
        token_usage=token_usage,
        tool_calls=[
            ChatMessageToolCallStreamDelta(
                index=call.index, id=call.id, type=call.type, function=call.function
            )
            for call in calls
        ]
        if calls
        else None,
    )


async def _completed(
    model: LiteLLMModel,
    messages: list[ChatMessage | dict[str, Any]],
    stop_sequences: list[str] | None,
    response_format: dict[str, str] | None,
    tools_to_call_from: list[Tool] | None,
    kwargs: dict[str, Any],
) -> Any:
    """The provider's answer to `generate`'s request (a response, or a stream of chunks with
    `stream=True` in `kwargs`): refused before anything for a model it cannot await, then
    the model's rate limit, then its retries."""
    reason = async_path_unavailable(model)
    if reason is not None:
        raise AsyncPathUnavailable(reason)
    acompletion = _acompletion(model.client)
    assert acompletion is not None  # checked by async_path_unavailable
    request = completion_kwargs_of(
        model, messages, stop_sequences, response_format, tools_to_call_from, kwargs
    )
    await _throttle(model.rate_limiter)
    return await _retrying(model.retryer, acompletion, request)


def completion_kwargs_of(
    model: LiteLLMModel,
    messages: list[ChatMessage | dict[str, Any]],
    stop_sequences: list[str] | None,
    response_format: dict[str, str] | None,
    tools_to_call_from: list[Tool] | None,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The request `generate` (and `generate_stream`) would send: smolagents' own builder,
    with the arguments they give it."""
    return model._prepare_completion_kwargs(  # type: ignore[no-any-return]
        messages=messages,
        stop_sequences=stop_sequences,
        response_format=response_format,
        tools_to_call_from=tools_to_call_from,
        model=model.model_id,
        api_base=model.api_base,
        api_key=model.api_key,
        convert_images_to_image_urls=True,
        custom_role_conversions=model.custom_role_conversions,
        **kwargs,
    )


def _acompletion(client: Any) -> Callable[..., Awaitable[Any]] | None:
    """The client's awaitable completion call: litellm's `acompletion` for the litellm module
    (whatever instrumentation wraps it), else an `async def acompletion` (possibly wrapped)."""
    acompletion = getattr(client, "acompletion", None)
    if acompletion is None:
        return None
    if isinstance(client, ModuleType) and client.__name__ == "litellm":
        return acompletion  # type: ignore[no-any-return]
    if inspect.iscoroutinefunction(acompletion) or inspect.iscoroutinefunction(
        getattr(acompletion, "__wrapped__", None)
    ):
        return acompletion  # type: ignore[no-any-return]
    return None


async def _throttle(limiter: RateLimiter) -> None:
    """`RateLimiter.throttle` without blocking: reserve the next slot, then wait for it.

    The slot is taken before the wait (no await in between), so concurrent calls on the loop
    each get their own; a call cancelled while it waits gives its slot back if none was
    reserved after it."""
    if not limiter._enabled:
        return
    now = time.time()
    previous = limiter._last_call
    slot = max(now, previous + limiter._interval)
    limiter._last_call = slot
    if slot <= now:
        return
    try:
        await asyncio.sleep(slot - now)
    except asyncio.CancelledError:
        if limiter._last_call == slot:
            limiter._last_call = previous
        raise


async def _retrying(
    retryer: Retrying, call: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]
) -> Any:
    """`Retrying.__call__(call, **kwargs)` with `await`: the same attempts, backoff and log lines.

    smolagents catches `BaseException` and asks its predicate; here only `Exception`s are, so a
    cancellation is never mistaken for a retryable error."""
    start = time.time()
    delay = retryer.wait_seconds
    name = getattr(call, "__name__", repr(call))
    for attempt in range(1, max(1, retryer.max_attempts) + 1):
        try:
            result = await call(**kwargs)
        except Exception as error:
            retry = retryer.retry_predicate(error) if retryer.retry_predicate else False
            if not retry or attempt >= retryer.max_attempts:
                raise
            _log_attempt(retryer, name, start, attempt)
            delay *= retryer.exponential_base * (1 + retryer.jitter * random.random())
            if retryer.before_sleep_logger:
                logger, level = retryer.before_sleep_logger
                logger.log(
                    level,
                    f"Retrying {name} in {delay} seconds as it raised "
                    f"{error.__class__.__name__}: {error}.",
                )
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            if attempt > 1:
                _log_attempt(retryer, name, start, attempt)
            return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _log_attempt(retryer: Retrying, name: str, start: float, attempt: int) -> None:
    """smolagents' `after_logger` line, after a failed attempt that is retried or a late success."""
    if retryer.after_logger:
        logger, level = retryer.after_logger
        logger.log(
            level,
            f"Finished call to '{name}' after {time.time() - start:.3f}(s), "
            f"this was attempt n°{attempt}/{retryer.max_attempts}.",
        )
