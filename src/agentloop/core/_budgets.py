"""Per-run model budgets: how many model calls, tokens and dollars a run may spend, sub-agents
included, and what it spent, by sub-agent.

A run's `RunBudget` lives in the `CURRENT_BUDGET` contextvar, which every thread and task of the
run inherits (the controller thread, worker threads running smolagents managed agents, nested
`AsyncAgent` runs). Every model call of the run goes through a `MeteredModel`, which charges
the current budget before the call (refusing it once the budget is spent) and charges the
reported token usage and the reply's price after it. A nested run's budget charges its parent's
too, so delegated work counts against the run that delegated it. Once exceeded, a budget stays
exceeded: nothing else is charged and every later call is refused, so sub-agents stop calling
their models.

Each budget also keeps what its sub-agents spent, by name: a smolagents managed agent's models
are metered under its name (`MeteredModel.label`), and a nested `AsyncAgent` run's budget
charges its parent under the nested agent's name. The price of a reply, and where a call's
metrics go, come from the agent layer (`ModelAccounting`): the core never imports litellm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._util import REPLYING_MODEL, ModelCall, WrapperModel
from ..errors import BudgetExceededError
from ._usage import CallRecord, ModelAccounting, ModelUsage, Usage, reply_tokens

__all__ = ["CURRENT_BUDGET", "MeteredModel", "RunBudget", "Usage", "metered"]

logger = logging.getLogger("agentloop")


class RunBudget:
    """What one run (or session turn) may spend, and what it has spent."""

    def __init__(
        self,
        *,
        run_id: str,
        max_model_calls: int | None,
        max_total_tokens: int | None,
        max_cost_usd: float | None = None,
        parent: RunBudget | None = None,
        totals: Usage | None = None,
        agent_name: str = "",
        accounting: ModelAccounting | None = None,
    ) -> None:
        self.run_id = run_id
        self.max_model_calls = max_model_calls
        self.max_total_tokens = max_total_tokens
        self.max_cost_usd = max_cost_usd
        self.parent = parent
        self.agent_name = agent_name
        """The agent whose run this is: the name its parent's breakdown lists it under."""
        self.accounting = accounting
        self.usage = Usage()
        self.by_agent: dict[str, Usage] = {}
        """What each sub-agent this run started spent (its own sub-agents included)."""
        self._totals = totals
        self._lock: threading.Lock = parent._lock if parent is not None else threading.Lock()
        """One lock for a budget and its ancestors, so a charge is atomic across the chain."""
        self._unpriced_warned: set[str] = set()
        """Models a cost budget of this chain could not price, already logged (at the root)."""
        self._parents: tuple[RunBudget, ...] = parent._chain if parent else ()
        """The budgets above this one, nearest first (not including itself: a budget that
        held itself would be freed only by the cyclic garbage collector)."""
        """This budget and its ancestors, innermost first: what each charge goes to."""
        self._via_parents: tuple[str, ...] = tuple(b.agent_name for b in self._chain[:-1])
        """For each ancestor, the sub-agent of its run the charge comes through."""
        self._cost_limited = next((b for b in self._chain if b.max_cost_usd is not None), None)
        """The innermost budget of the chain that counts dollars, if any."""
        self.exceeded: str | None = None
        """Why the budget is spent (the error's message), once it is."""

    @property
    def _chain(self) -> tuple[RunBudget, ...]:
        """This budget, then the ones above it."""
        return (self, *self._parents)

    def before_call(self, label: str | None = None) -> None:
        """Charge one model call to this budget and its ancestors, or refuse it. `label`: the
        sub-agent of this run making the call (`None`: the run's own controller)."""
        chain = self._chain
        with self._lock:
            for budget in chain:
                budget._check_call()
            for budget, via in zip(chain, (label, *self._via_parents), strict=True):
                for usage in budget._accounts(via):
                    usage.add_call()
        if self._totals is not None:
            self._totals.add_call()

    def after_call(
        self, reply: Any, model: Any = None, label: str | None = None, seconds: float = 0.0
    ) -> None:
        """Charge the reply's tokens and price; raise if that passes a token or cost budget."""
        if self.accounting is not None and model is not None:
            self._record(CallRecord(model=model, reply=reply, error=None, seconds=seconds))
        inputs, outputs = reply_tokens(reply)
        cost = self._price(model, reply)
        if self._totals is not None:
            self._totals.add_reply(inputs, outputs, cost)
        with self._lock:
            over = [
                budget
                for budget, via in zip(self._chain, (label, *self._via_parents), strict=True)
                if budget._add_reply(via, inputs, outputs, cost)
            ]
        if over:
            raise BudgetExceededError(over[0].exceeded)

    def call_failed(self, model: Any, error: BaseException, seconds: float) -> None:
        """A charged call raised: nothing more to charge, but the application's metrics
        count it (its duration and error type)."""
        if self.accounting is not None:
            self._record(CallRecord(model=model, reply=None, error=error, seconds=seconds))

    def charge_replayed(self, reply: Any, model: Any = None) -> None:
        """Count a model reply a resumed run takes from its journal: the run spent it before
        the restart, so it counts against this budget (once) but is not refused, and the
        process's totals, which count calls this process made, are not charged."""
        inputs, outputs = reply_tokens(reply)
        cost = self._price(model, reply)
        with self._lock:
            for budget, via in zip(self._chain, (None, *self._via_parents), strict=True):
                for usage in budget._accounts(via):
                    usage.add_call()
                    usage.add_reply(inputs, outputs, cost)

    def report(self) -> tuple[ModelUsage, dict[str, ModelUsage]]:
        """What the run spent, and what each of its sub-agents spent (a part of it)."""
        with self._lock:
            agents = dict(self.by_agent)
        return self.usage.snapshot(), {name: usage.snapshot() for name, usage in agents.items()}

    def _price(self, model: Any, reply: Any) -> float | None:
        """The reply's price; an unpriced reply under a cost budget is logged (once a model)."""
        cost = None if self.accounting is None else self.accounting.price(model, reply)
        if cost is None and self._cost_limited is not None:
            self._warn_unpriced(model, self._cost_limited)
        return cost

    def _warn_unpriced(self, model: Any, limited: RunBudget) -> None:
        model_id = str(getattr(model, "model_id", None) or type(model).__name__)
        seen = self._chain[-1]._unpriced_warned
        with self._lock:
            if model_id in seen:
                return
            seen.add(model_id)
        logger.warning(
            "run `%s` has a cost budget (`max_cost_usd=%s`), but the price of model `%s` is "
            "not known: its calls count toward the budget's tokens and calls, not its dollars.",
            limited.run_id,
            limited.max_cost_usd,
            model_id,
        )

    def _record(self, call: CallRecord) -> None:
        assert self.accounting is not None
        try:
            self.accounting.record(call)
        except Exception:  # the application's metrics must never fail its run
            logger.exception("recording a model call's metrics failed")

    def _accounts(self, via: str | None) -> tuple[Usage, ...]:
        """Under the lock: the counters a charge through sub-agent `via` goes to: the run's,
        and that sub-agent's (created on its first charge)."""
        if via is None:
            return (self.usage,)
        share = self.by_agent.get(via)
        if share is None:
            share = self.by_agent[via] = Usage()
        return self.usage, share

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

    def _add_reply(self, via: str | None, inputs: int, outputs: int, cost: float | None) -> bool:
        """Under the lock: add a reply's tokens and price; True if that spent a token or cost
        budget just now."""
        for account in self._accounts(via):
            account.add_reply(inputs, outputs, cost)
        if self.exceeded is not None:
            return False
        usage = self.usage
        limit = self.max_total_tokens
        if limit is not None and usage.total_tokens > limit:
            self.exceeded = (
                f"run `{self.run_id}` used {usage.total_tokens} tokens, past its budget "
                f"of {limit} (`max_total_tokens`; {usage.model_calls} model calls)."
            )
            return True
        dollars = self.max_cost_usd
        if dollars is not None and usage.cost_usd > dollars:
            self.exceeded = (
                f"run `{self.run_id}` spent {usd(usage.cost_usd)} on its models, past its "
                f"budget of {usd(dollars)} (`max_cost_usd`; {usage.model_calls} model calls, "
                f"{usage.total_tokens} tokens)."
            )
            return True
        return False

    def span_attributes(self) -> dict[str, int | float]:
        """What the run spent, as its span's attributes."""
        usage = self.usage.snapshot()
        attributes: dict[str, int | float] = {
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "agentloop.usage.model_calls": usage.model_calls,
        }
        if usage.cost_usd is not None:
            attributes["agentloop.usage.cost_usd"] = usage.cost_usd
        if usage.unpriced_calls:
            attributes["agentloop.usage.unpriced_calls"] = usage.unpriced_calls
        return attributes

    def as_dict(self) -> dict[str, Any]:
        """The run's usage and limits, JSON-safe (the end event of a stream carries it)."""
        total, agents = self.report()
        return {
            **total.to_dict(),
            "max_model_calls": self.max_model_calls,
            "max_total_tokens": self.max_total_tokens,
            "max_cost_usd": self.max_cost_usd,
            "sub_agents": {name: usage.to_dict() for name, usage in agents.items()},
        }


def usd(amount: float) -> str:
    """Dollars as people write them, to the cent's millionth: `$0.0123`, `$5`."""
    return "$" + f"{amount:.8f}".rstrip("0").rstrip(".")


CURRENT_BUDGET: ContextVar[RunBudget | None] = ContextVar("agentloop_budget", default=None)


class MeteredModel(WrapperModel):
    """A model whose calls are charged to the current run's budget (forwarding the rest):
    awaited ones (a controller's) and blocking ones (a plain smolagents managed agent's, in
    its worker thread). `label` names the sub-agent whose model it is (`None`: the run's
    controller), so the run's breakdown lists its calls under that name."""

    __slots__ = ("label",)

    label: str | None

    def __init__(self, wrapped: Any, label: str | None = None) -> None:
        super().__init__(wrapped)
        self.label = label

    def _reply(
        self, call: Callable[..., Any], messages: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        budget = CURRENT_BUDGET.get()
        if budget is None:
            return call(messages, *args, **kwargs)
        budget.before_call(self.label)
        start = time.perf_counter()
        try:
            reply = call(messages, *args, **kwargs)
        except Exception as exc:
            budget.call_failed(self.innermost, exc, time.perf_counter() - start)
            raise
        budget.after_call(reply, self.innermost, self.label, time.perf_counter() - start)
        return reply

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        budget = CURRENT_BUDGET.get()
        if budget is None:
            return await proceed(messages, kwargs)
        budget.before_call(self.label)
        start = time.perf_counter()
        try:
            reply = await proceed(messages, kwargs)
        except Exception as exc:
            budget.call_failed(self.innermost, exc, time.perf_counter() - start)
            raise
        model = REPLYING_MODEL.get() or self.innermost  # a fallback chain's, if it replied
        budget.after_call(reply, model, self.label, time.perf_counter() - start)
        return reply


def metered(model: Any, label: str | None = None) -> Any:
    """`model` charged to the current run's budget, its calls listed under sub-agent `label`
    (the model itself if it already is metered)."""
    return model if isinstance(model, MeteredModel) else MeteredModel(model, label)
