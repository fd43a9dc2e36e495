"""`ModelLimits`: one provider budget (concurrent calls, requests and tokens per minute) and
the retry policy for the calls that spend it.

The budget's state lives in the object itself, so the object *is* the budget: every run and
sub-agent of an agent given it shares it, and so does every agent given the same object (one
budget per process, whatever loop or thread calls). That state is a FIFO count of concurrent
calls (`_fifo_slots`) and a schedule of call starts (`_pace`); both are thread-safe and bound
to no event loop, so an object made at import time, or used by agents on different loops (each
blocking `run()` starts its own), is still one budget. `LimitedModel` (`_limited_model`) is
what spends it around each call.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentsError
from ._fifo_slots import FifoSlots
from ._pace import Pace
from ._provider_errors import Transient, retry_after, transient

__all__ = ["ModelLimits", "RetryPlan"]

DEFAULT_OUTPUT_TOKENS = 256
"""Output tokens assumed for a call before any reply reported its usage (no `max_tokens`)."""


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """Another attempt for a failed call: after `wait` seconds, because of `cause`."""

    wait: float
    cause: Transient
    from_provider: bool
    """The wait is the one the provider asked for (`Retry-After`), not a backoff."""


@dataclass(frozen=True, kw_only=True, eq=False, slots=True)
class ModelLimits:
    """A provider budget shared by every call made through it, and how those calls retry.

    `create_async_agent(..., model_limits=ModelLimits(...))` applies it to the agent's model
    (every run, and the agent's smolagents managed agents that use the same `model_id`);
    passing the same object to several agents makes one budget of them all. A mapping
    `{model_id: ModelLimits(...)}` gives each model its own (docs/models.md, "Provider limits
    and retries").

    Attributes:
        max_concurrent: calls in flight at once (`None`: no bound); more wait, first come
            first served, holding no thread.
        requests_per_minute: call starts per minute, evenly spaced (`60/r` s apart, plus 2%
            headroom), so no window of the provider's sees more (`None`: no bound).
        tokens_per_minute: tokens (prompt + reply) per minute; each call is estimated before
            it starts and corrected by the usage its reply reports (`None`: no bound).
        max_attempts: attempts per call, the first included; a transient error (429, 408,
            5xx, a timeout, a lost connection) is retried until then, then raised.
        max_retry_wait: longest wait before one retry, in seconds; a provider asking for a
            longer wait (`Retry-After`) gets the error raised at once instead.
        retry_backoff: the first wait when the provider names none, doubled at each retry up
            to `max_retry_wait`, each drawn at random from its upper half (jitter).
    """

    max_concurrent: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: int | None = None
    max_attempts: int = 6
    max_retry_wait: float = 60.0
    retry_backoff: float = 0.5
    _slots: FifoSlots | None = field(init=False, repr=False)
    _pace: Pace = field(init=False, repr=False)
    _typical_output: list[float] = field(init=False, repr=False)
    """One running mean of reported output tokens (a list: the dataclass is frozen)."""

    def __post_init__(self) -> None:
        _check_count("max_concurrent", self.max_concurrent, optional=True)
        _check_count("tokens_per_minute", self.tokens_per_minute, optional=True)
        _check_count("max_attempts", self.max_attempts, optional=False)
        _check_number("requests_per_minute", self.requests_per_minute, optional=True, zero=False)
        _check_number("max_retry_wait", self.max_retry_wait, optional=False, zero=True)
        _check_number("retry_backoff", self.retry_backoff, optional=False, zero=True)
        slots = FifoSlots(self.max_concurrent) if self.max_concurrent is not None else None
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "_pace", Pace(self.requests_per_minute, self.tokens_per_minute))
        object.__setattr__(self, "_typical_output", [float(DEFAULT_OUTPUT_TOKENS)])

    # -- what the budget looks like now -----------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Calls holding one of the `max_concurrent` slots now (0 without that bound)."""
        return self._slots.in_use if self._slots is not None else 0

    @property
    def waiting(self) -> int:
        """Calls queued for a `max_concurrent` slot now."""
        return self._slots.waiting if self._slots is not None else 0

    # -- what the model wrapper asks ------------------------------------------------------------

    def _retry_plan(self, error: BaseException, attempt: int) -> RetryPlan | None:
        """The next attempt after `attempt` failed with `error`, or None: raise it."""
        cause = transient(error)
        if cause is None or attempt >= self.max_attempts:
            return None
        asked = retry_after(error)
        if asked is not None:
            return RetryPlan(asked, cause, True) if asked <= self.max_retry_wait else None
        ceiling = min(self.retry_backoff * 2 ** (attempt - 1), self.max_retry_wait)
        return RetryPlan(random.uniform(ceiling / 2, ceiling), cause, False)

    def _typical_output_tokens(self) -> int:
        return int(self._typical_output[0])

    def _observe_output(self, tokens: int) -> None:
        """A reply reported `tokens` output tokens: fold it into the running estimate."""
        mean = self._typical_output
        mean[0] += 0.2 * (tokens - mean[0])

    # -- a budget is shared, never duplicated ---------------------------------------------------

    def __copy__(self) -> ModelLimits:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelLimits:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to another process), it is the same limits with a budget of its own."""
        return (_rebuilt, (self._settings(),))

    def _settings(self) -> dict[str, Any]:
        return {
            "max_concurrent": self.max_concurrent,
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "max_attempts": self.max_attempts,
            "max_retry_wait": self.max_retry_wait,
            "retry_backoff": self.retry_backoff,
        }


def _rebuilt(settings: dict[str, Any]) -> ModelLimits:
    return ModelLimits(**settings)


def _check_count(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        none = " or None" if optional else ""
        raise InvalidArgumentsError(
            f"`ModelLimits.{name}` must be a positive int{none}, received {value!r}."
        )


def _check_number(name: str, value: Any, *, optional: bool, zero: bool) -> None:
    if value is None and optional:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        none = " or None" if optional else ""
        raise InvalidArgumentsError(
            f"`ModelLimits.{name}` must be a finite number {bound}{none}, received {value!r}."
        )
