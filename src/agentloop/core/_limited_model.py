"""`LimitedModel`: a model whose calls spend a `ModelLimits` budget and retry by its policy.

Each call takes a `max_concurrent` slot (first come, first served), waits for its start in the
requests and tokens schedule, makes the call, and gives the slot back. A transient error (429,
5xx, a timeout) is retried after the wait the provider asked for (`retry-after-ms`,
`retry-after`) or an exponential backoff with jitter, up to `max_attempts`; the slot is not held
while waiting to retry, and the retry queues again behind the calls that came meanwhile. Then
the last error propagates as the model's own, so the step sees it as smolagents expects.
Cancellation propagates at once, and gives back only what the call took.

An awaited call (`_areply`) waits on the loop, holding no thread. A blocking call (`_reply`: a
plain smolagents managed agent's, in its worker thread) waits in that thread, and stops waiting
when its task is cancelled (`CURRENT_CANCEL`).

This is the one place that retries: the agent calls a copy of the model with its own retries
off (`without_own_retries`). The wrapper sits inside the `chat` span (`TracedModel`), so the
span covers the whole wait; it gets an `agentloop.model.queued` event for a wait in the queue
or the schedule and an `agentloop.model.retry` event per retry, and every retry is logged and
handed to `MODEL_RETRY_LISTENER` (a run's stream shows it as `model_retried`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry import trace

from .._text import truncate
from .._util import ModelCall, WrapperModel
from ..errors import AgentloopError
from ._cancellation import CURRENT_CANCEL
from ._model_limits import ModelLimits, RetryPlan

__all__ = ["MODEL_RETRY_LISTENER", "LimitedModel", "ModelRetry", "estimated_tokens"]

logger = logging.getLogger("agentloop.model")

CHARS_PER_TOKEN = 4
"""The token estimate's rule of thumb for English text (OpenAI's)."""
IMAGE_TOKENS = 1000
"""Tokens assumed per image part of a prompt."""
MESSAGE_TOKENS = 4
"""Tokens a chat format adds per message."""
QUEUED_EVENT_SECONDS = 0.001
"""Shorter waits for a slot or a start are not worth a span event."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRetry:
    """One retry of a model call: what failed, and how long until the next attempt."""

    model: str
    attempt: int
    """The attempt that failed (1: the first)."""
    max_attempts: int
    wait: float
    """Seconds until the next attempt."""
    reason: str
    """`HTTP 429 RateLimitError`, `Timeout`, ..."""
    status: int | None
    retry_after: bool
    """The wait is the one the provider asked for (`Retry-After`)."""
    error: str
    """The error's message, bounded."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MODEL_RETRY_LISTENER: ContextVar[Callable[[ModelRetry], None] | None] = ContextVar(
    "agentloop_model_retry_listener", default=None
)
"""Told of every retry of a model call made in this context (a streamed run sets it); called
on the loop for an awaited call, in the worker thread for a blocking one."""


class LimitedModel(WrapperModel):
    """A model whose calls spend `limits` and retry by its policy (see the module docstring)."""

    __slots__ = ("_limits",)

    def __init__(self, model: Any, limits: ModelLimits) -> None:
        super().__init__(model)
        self._limits = limits

    @property
    def limits(self) -> ModelLimits:
        return self._limits

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        limits = self._limits
        estimate = self._estimate(messages, kwargs)
        attempt = 1
        while True:
            try:
                reply = await self._attempt(proceed, messages, kwargs, estimate)
            except Exception as error:
                plan = limits._retry_plan(error, attempt)
                if plan is None:
                    raise
                self._announce(plan, error, attempt)
                if plan.from_provider:
                    limits._pace.hold_off(plan.wait)
                await asyncio.sleep(plan.wait)
                attempt += 1
                continue
            self._settle(estimate, reply)
            return reply

    async def _attempt(
        self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any], estimate: int
    ) -> Any:
        """One attempt: a slot, the scheduled start, the call; the slot is given back after."""
        limits = self._limits
        slots, pace = limits._slots, limits._pace
        arrived = time.monotonic()
        if slots is not None:
            await slots.acquire()
        try:
            if pace.paced:
                reservation = pace.reserve(estimate)
                delay = reservation.start - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.sleep(delay)
                    except BaseException:
                        pace.give_back(reservation)
                        raise
            _note_queued(time.monotonic() - arrived)
            return await proceed(messages, kwargs)
        finally:
            if slots is not None:
                slots.release()

    def _reply(
        self, call: Callable[..., Any], messages: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """A blocking call (a plain smolagents agent's, in its worker thread): the same budget
        and policy, waiting in this thread; a cancelled task stops waiting."""
        limits = self._limits
        abandon = threading.Event()
        signal = CURRENT_CANCEL.get()
        if signal is not None:
            signal.add(abandon.set)
        estimate = self._estimate(messages, kwargs)
        attempt = 1
        while True:
            try:
                reply = self._attempt_blocking(call, messages, args, kwargs, estimate, abandon)
            except AgentloopError:
                raise
            except Exception as error:
                plan = limits._retry_plan(error, attempt)
                if plan is None:
                    raise
                self._announce(plan, error, attempt)
                if plan.from_provider:
                    limits._pace.hold_off(plan.wait)
                if abandon.wait(plan.wait):
                    raise _abandoned() from error
                attempt += 1
                continue
            self._settle(estimate, reply)
            return reply

    def _attempt_blocking(
        self,
        call: Callable[..., Any],
        messages: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        estimate: int,
        abandon: threading.Event,
    ) -> Any:
        limits = self._limits
        slots, pace = limits._slots, limits._pace
        arrived = time.monotonic()
        if slots is not None and not slots.acquire_blocking(abandon):
            raise _abandoned()
        try:
            if abandon.is_set():
                raise _abandoned()
            if pace.paced:
                reservation = pace.reserve(estimate)
                delay = reservation.start - time.monotonic()
                if delay > 0 and abandon.wait(delay):
                    pace.give_back(reservation)
                    raise _abandoned()
            _note_queued(time.monotonic() - arrived)
            return call(messages, *args, **kwargs)
        finally:
            if slots is not None:
                slots.release()

    # -- tokens -----------------------------------------------------------------------------------

    def _estimate(self, messages: Any, kwargs: dict[str, Any]) -> int:
        limits = self._limits
        if not limits.tokens_per_minute:
            return 0
        return estimated_tokens(
            messages, _max_tokens(kwargs, self.innermost), limits._typical_output_tokens()
        )

    def _settle(self, estimate: int, reply: Any) -> None:
        """Correct the token schedule by the usage the reply reports."""
        limits = self._limits
        if not limits.tokens_per_minute:
            return
        usage = getattr(reply, "token_usage", None)
        inputs = getattr(usage, "input_tokens", None)
        outputs = getattr(usage, "output_tokens", None)
        if isinstance(inputs, int) and isinstance(outputs, int):
            limits._observe_output(outputs)
            limits._pace.correct(estimate, inputs + outputs)

    # -- retries, made visible --------------------------------------------------------------------

    def _announce(self, plan: RetryPlan, error: BaseException, attempt: int) -> None:
        limits = self._limits
        retry = ModelRetry(
            model=str(getattr(self, "model_id", None) or type(self.innermost).__name__),
            attempt=attempt,
            max_attempts=limits.max_attempts,
            wait=round(plan.wait, 3),
            reason=plan.cause.reason,
            status=plan.cause.status,
            retry_after=plan.from_provider,
            error=truncate(str(error), 300),
        )
        logger.info(
            "model `%s`: attempt %d of %d failed (%s); retrying in %.3f s%s",
            retry.model,
            attempt,
            retry.max_attempts,
            retry.reason,
            retry.wait,
            " (Retry-After)" if retry.retry_after else "",
        )
        span = trace.get_current_span()
        if span.is_recording():
            attributes: dict[str, Any] = {
                "agentloop.model.attempt": attempt,
                "agentloop.model.retry_wait_seconds": retry.wait,
                "agentloop.model.retry_after": retry.retry_after,
                "error.type": retry.reason,
            }
            if retry.status is not None:
                attributes["http.response.status_code"] = retry.status
            span.add_event("agentloop.model.retry", attributes)
            span.set_attribute("agentloop.model.attempts", attempt + 1)
        listener = MODEL_RETRY_LISTENER.get()
        if listener is not None:
            listener(retry)


def estimated_tokens(messages: Any, max_tokens: int | None, typical_output: int) -> int:
    """A call's tokens before it is made: its prompt's text at `CHARS_PER_TOKEN` characters a
    token (plus per message and per image), and its reply's `max_tokens` if set, else the
    running mean of the replies so far (providers count `max_tokens` at the request too)."""
    chars = images = count = 0
    for message in messages if isinstance(messages, (list, tuple)) else ():
        count += 1
        content = _field(message, "content")
        if type(content) is str:
            chars += len(content)
        elif type(content) is list:
            for part in content:
                text = _field(part, "text")
                if type(text) is str:
                    chars += len(text)
                elif _field(part, "type") in ("image", "image_url"):
                    images += 1
    prompt = chars // CHARS_PER_TOKEN + MESSAGE_TOKENS * count + IMAGE_TOKENS * images
    return prompt + (max_tokens if max_tokens is not None else typical_output)


def _field(item: Any, name: str) -> Any:
    """`item[name]` of a dict (the common case, checked first: an ABC check costs more than
    the rest of the estimate) or another mapping, else its attribute `name`."""
    if type(item) is dict or isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _max_tokens(kwargs: Mapping[str, Any], model: Any) -> int | None:
    """The reply's bound, from the call or the model's own completion settings."""
    own = getattr(model, "kwargs", None)
    for source in (kwargs, own if type(own) is dict else {}):
        for name in ("max_tokens", "max_completion_tokens"):
            value = source.get(name)
            if type(value) is int and value > 0:
                return value
    return None


def _note_queued(seconds: float) -> None:
    if seconds < QUEUED_EVENT_SECONDS:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("agentloop.model.queued", {"agentloop.model.queued_seconds": seconds})


def _abandoned() -> AgentloopError:
    return AgentloopError("the task was cancelled while its model call waited for `ModelLimits`.")
