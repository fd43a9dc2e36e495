"""What model calls spent: calls, tokens and money, counted as they happen and read as values.

`Usage` is the counter a budget (and an agent's process-wide totals) adds to from any thread;
`ModelUsage` is the frozen value a run's result, its events and its span report. Money is
counted only where a call's price is known: a call the agent could not price (a model LiteLLM's
cost map does not list, or a model that is not a LiteLLM model) adds to `unpriced_calls` and to
no dollar figure, so a figure is never a guess; `cost_usd` is `None` when no call at all could
be priced.

`ModelAccounting` is what the agent layer gives a budget so that the core can price a reply and
report a call without importing litellm or knowing which meter the application listens on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CallRecord", "ModelAccounting", "ModelUsage", "Usage", "reply_tokens"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUsage:
    """Model calls, tokens and cost spent by a run, a sub-agent or an agent.

    Attributes:
        model_calls: model calls made (refused calls are not made, so not counted).
        input_tokens: input tokens, as the models reported them.
        output_tokens: output tokens, as the models reported them.
        cost_usd: what the priced calls cost, in US dollars, from LiteLLM's cost map; `None`
            when models replied and no reply could be priced. Complete when `unpriced_calls`
            is 0, otherwise a lower bound.
        unpriced_calls: replies whose price is unknown (they add nothing to `cost_usd`).
    """

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    unpriced_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form events and the service carry."""
        return {
            "model_calls": self.model_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "unpriced_calls": self.unpriced_calls,
        }


class Usage:
    """Counters of model calls, tokens and cost (thread-safe)."""

    __slots__ = (
        "_lock",
        "cost_usd",
        "input_tokens",
        "model_calls",
        "output_tokens",
        "priced",
        "unpriced",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.model_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        """What the priced replies cost."""
        self.priced = 0
        """Replies with a price."""
        self.unpriced = 0
        """Replies without one."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add_call(self) -> None:
        """Count a call (before it is made: a call that then fails is still a call)."""
        with self._lock:
            self.model_calls += 1

    def add_reply(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        """Count a reply's tokens and its price (`None`: unknown)."""
        with self._lock:
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            if cost is None:
                self.unpriced += 1
            else:
                self.priced += 1
                self.cost_usd += cost

    def snapshot(self) -> ModelUsage:
        with self._lock:
            return ModelUsage(
                model_calls=self.model_calls,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cost_usd=None if self.unpriced and not self.priced else self.cost_usd,
                unpriced_calls=self.unpriced,
            )


def reply_tokens(reply: Any) -> tuple[int, int]:
    """(input, output) tokens a smolagents reply reports (0 where it reports none)."""
    usage = getattr(reply, "token_usage", None)
    return (
        int(getattr(usage, "input_tokens", 0) or 0),
        int(getattr(usage, "output_tokens", 0) or 0),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CallRecord:
    """One model call as it ended, for the application's metrics."""

    model: Any
    """The model called (the user's, under agentloop's wrappers)."""
    reply: Any
    """Its reply (`None` if it raised)."""
    error: BaseException | None
    seconds: float


class ModelAccounting(Protocol):
    """What an agent knows about its model calls that the core cannot: their price (LiteLLM's
    cost data) and where the application's metrics go. Built once per agent."""

    def price(self, model: Any, reply: Any) -> float | None:
        """What `reply` from `model` cost in US dollars, or None if that is not known."""
        ...

    def record(self, call: CallRecord) -> None:
        """Report one finished call (duration, tokens, error) to the application's metrics."""
        ...
