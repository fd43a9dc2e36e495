"""One turn of a run: what `arun`, `astream` and every turn of a session do around the
controller's step, written once so that they cannot drift apart.

A turn enters the run (its place on the run stack, bounded by `Limits.max_run_depth`), gives it
a budget (charged to the enclosing run's too), connects the stream if there is one (its start,
what a resumed run replays, each step, and the approval requests of runs nested in this one),
and says what an error means: a run stopped by the agent's shutdown is a
`RegistryClosedError`, a run that spent its budget a `BudgetExceededError`.

`Turns` is built once per agent and holds no reference to the agent, so a session keeps its run
and the agent's `Turns`, and nothing that leads back to the agent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._util import reset_context_var
from ..core._approving import APPROVAL_RELAY
from ..core._budgets import CURRENT_BUDGET, RunBudget, Usage
from ..core._usage import ModelAccounting
from ..errors import BudgetExceededError, RegistryClosedError
from ..journal._replay import Replay
from ..limits import Limits
from ._feed import RunFeed
from ._guidance import TASK_HINT
from ._run import ControllerRun, entered_run

__all__ = ["TurnRequest", "Turns"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnRequest:
    """What one `arun` / `astream` call asked for."""

    task: str
    additional_args: Mapping[str, Any] | None = None
    max_steps: int | None = None
    guidance: bool = False
    run_id: str | None = None
    force: bool = False


class Turns:
    """The turns of one agent's runs and sessions."""

    def __init__(
        self,
        *,
        agent_key: int,
        agent_name: str,
        limits: Limits,
        usage: Usage,
        accounting: ModelAccounting | None = None,
    ) -> None:
        self._agent_key = agent_key
        self._agent_name = agent_name
        self._limits = limits
        self._usage = usage
        self._accounting = accounting
        self.closed = False
        """Set when the agent shuts down: no new turn starts, and one in progress that fails
        because of it says so."""

    def check_open(self) -> None:
        if self.closed:
            raise RegistryClosedError(
                f"agent `{self._agent_name}` was shut down; create a new one to run more tasks."
            )

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The block runs inside a run of this agent (bounded nesting; see `entered_run`)."""
        self.check_open()
        with entered_run(self._agent_key, self._agent_name, self._limits.max_run_depth):
            yield

    def budget(self, run_id: str) -> RunBudget:
        """A turn's budget; a run nested in another charges the enclosing run's too."""
        return RunBudget(
            run_id=run_id,
            max_model_calls=self._limits.max_model_calls,
            max_total_tokens=self._limits.max_total_tokens,
            max_cost_usd=self._limits.max_cost_usd,
            parent=CURRENT_BUDGET.get(),
            totals=self._usage,
            agent_name=self._agent_name,
            accounting=self._accounting,
        )

    async def take(
        self,
        run: ControllerRun,
        request: TurnRequest,
        *,
        reset: bool,
        feed: RunFeed | None,
        resumed: tuple[Any, Replay] | None = None,
    ) -> Any:
        """Run the controller on `request` (inside `entered()`); `reset` starts from fresh
        memory; `resumed` is the earlier attempt and what of it replays."""
        scope = run.scope
        budget = run.budget = self.budget(scope.scope_id)
        if feed is not None:
            feed.opened(scope, request.task, budget)
            if resumed is not None:
                feed.resumed(*resumed)
            run.on_step = feed.on_step
        token = CURRENT_BUDGET.set(budget)  # the controller thread gets a copy
        # A streamed run shows its nested runs' approval requests; others pass theirs on.
        relay = APPROVAL_RELAY.set(feed.relay_approval) if feed is not None else None
        try:
            return await run.step(
                request.task + (TASK_HINT if request.guidance else ""),
                reset=reset,
                additional_args=request.additional_args,
                max_steps=request.max_steps,
            )
        except Exception as exc:
            if self.closed:  # stopped by `aclose()`/`shutdown()`: say so, not "interrupted"
                raise RegistryClosedError(
                    f"agent `{self._agent_name}` was shut down while this run was in progress."
                ) from exc
            if budget.exceeded is not None:
                raise BudgetExceededError(budget.exceeded) from exc
            raise
        finally:
            if relay is not None:
                reset_context_var(APPROVAL_RELAY, relay)
            reset_context_var(CURRENT_BUDGET, token)
            run.on_step = None
