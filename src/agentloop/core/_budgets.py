"""Per-run model budgets: how many model calls and tokens a run may spend, sub-agents included.

A run's `RunBudget` lives in the `CURRENT_BUDGET` contextvar, which every thread and task of the
run inherits (the controller thread, worker threads running smolagents managed agents, nested
`AsyncAgent` runs). Every model call of the run goes through a `MeteredModel`, which charges
the current budget before the call (refusing it once the budget is spent) and charges the
reported token usage after it. A nested run's budget charges its parent's too, so delegated work
counts against the run that delegated it. Once exceeded, a budget stays exceeded: nothing else
is charged and every later call is refused, so sub-agents stop calling their models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._util import ModelCall, WrapperModel
from ..errors import BudgetExceededError

__all__ = ["CURRENT_BUDGET", "MeteredModel", "RunBudget", "Usage", "metered"]


class Usage:
    """Counters of model calls and tokens (thread-safe)."""

    __slots__ = ("_lock", "model_calls", "total_tokens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.model_calls = 0
        self.total_tokens = 0

    def add(self, calls: int, tokens: int) -> None:
        with self._lock:
            self.model_calls += calls
            self.total_tokens += tokens


class RunBudget:
    """What one run (or session turn) may spend, and what it has spent."""

    def __init__(
        self,
        *,
        run_id: str,
        max_model_calls: int | None,
        max_total_tokens: int | None,
        parent: RunBudget | None = None,
        totals: Usage | None = None,
    ) -> None:
        self.run_id = run_id
        self.max_model_calls = max_model_calls
        self.max_total_tokens = max_total_tokens
        self.parent = parent
        self.usage = Usage()
        self._totals = totals
        self._lock: threading.Lock = parent._lock if parent is not None else threading.Lock()
        """One lock for a budget and its ancestors, so a charge is atomic across the chain."""
        self.exceeded: str | None = None
        """Why the budget is spent (the error's message), once it is."""

    def before_call(self) -> None:
        """Charge one model call to this budget and its ancestors, or refuse it."""
        chain = self._chain()
        with self._lock:
            for budget in chain:
                budget._check_call()
            for budget in chain:
                budget.usage.add(1, 0)
        if self._totals is not None:
            self._totals.add(1, 0)

    def after_call(self, reply: Any) -> None:
        """Charge the tokens the reply reports; raise if that passes a token budget."""
        usage = getattr(reply, "token_usage", None)
        tokens = int(getattr(usage, "input_tokens", 0) or 0) + int(
            getattr(usage, "output_tokens", 0) or 0
        )
        if not tokens:
            return
        if self._totals is not None:
            self._totals.add(0, tokens)
        with self._lock:
            over = [budget for budget in self._chain() if budget._add_tokens(tokens)]
        if over:
            raise BudgetExceededError(over[0].exceeded)

    def charge_replayed(self, tokens: int) -> None:
        """Count a model reply a resumed run takes from its journal: the run spent it before
        the restart, so it counts against this budget (once) but is not refused, and the
        process's totals, which count calls this process made, are not charged."""
        with self._lock:
            for budget in self._chain():
                budget.usage.add(1, tokens)

    def _chain(self) -> list[RunBudget]:
        chain: list[RunBudget] = []
        budget: RunBudget | None = self
        while budget is not None:
            chain.append(budget)
            budget = budget.parent
        return chain

    def _check_call(self) -> None:
        """Under the lock: refuse a call if this budget is spent."""
        limit = self.max_model_calls
        if self.exceeded is None and limit is not None and self.usage.model_calls >= limit:
            self.exceeded = (
                f"run `{self.run_id}` reached its budget of {limit} model calls "
                f"(`max_model_calls`; {self.usage.total_tokens} tokens used)."
            )
        if self.exceeded is not None:
            raise BudgetExceededError(self.exceeded)

    def _add_tokens(self, tokens: int) -> bool:
        """Under the lock: add tokens; True if that spent the token budget just now."""
        self.usage.add(0, tokens)
        limit = self.max_total_tokens
        if self.exceeded is None and limit is not None and self.usage.total_tokens > limit:
            self.exceeded = (
                f"run `{self.run_id}` used {self.usage.total_tokens} tokens, past its budget "
                f"of {limit} (`max_total_tokens`; {self.usage.model_calls} model calls)."
            )
            return True
        return False

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_calls": self.usage.model_calls,
            "total_tokens": self.usage.total_tokens,
            "max_model_calls": self.max_model_calls,
            "max_total_tokens": self.max_total_tokens,
        }


CURRENT_BUDGET: ContextVar[RunBudget | None] = ContextVar("agentloop_budget", default=None)


class MeteredModel(WrapperModel):
    """A model whose calls are charged to the current run's budget (forwarding the rest):
    awaited ones (a controller's) and blocking ones (a plain smolagents managed agent's, in
    its worker thread)."""

    __slots__ = ()

    def _reply(
        self, call: Callable[..., Any], messages: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        budget = CURRENT_BUDGET.get()
        if budget is None:
            return call(messages, *args, **kwargs)
        budget.before_call()
        reply = call(messages, *args, **kwargs)
        budget.after_call(reply)
        return reply

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        budget = CURRENT_BUDGET.get()
        if budget is None:
            return await proceed(messages, kwargs)
        budget.before_call()
        reply = await proceed(messages, kwargs)
        budget.after_call(reply)
        return reply


def metered(model: Any) -> Any:
    """`model` charged to the current run's budget (the model itself if it already is)."""
    return model if isinstance(model, MeteredModel) else MeteredModel(model)
