"""`AgentSession`: a conversation with one controller, whose memory, variables and tasks carry
over between turns (from `AsyncAgent.session()`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._util import reset_context_var
from ..core._budgets import CURRENT_BUDGET
from ..engine.scope import RunScope
from ..errors import BudgetExceededError
from ._guidance import TASK_HINT
from ._run import ControllerRun, entered_run
from .stream import RunStream

if TYPE_CHECKING:
    from .async_agent import AsyncAgent

__all__ = ["AgentSession"]


class AgentSession:
    """A conversation with one controller: memory, variables and tasks carry over between
    `arun` calls; the tasks are cancelled when the session closes."""

    def __init__(self, run: ControllerRun, agent: AsyncAgent) -> None:
        self._run = run
        self._agent = agent
        self._turns = 0

    @property
    def scope(self) -> RunScope:
        """The session's task scope (for inspection from Python)."""
        return self._run.scope

    async def arun(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
    ) -> Any:
        """Continue the conversation with `task`; calls are served one at a time. Each turn
        has the run's task quota (`max_tasks_per_scope`) of its own."""
        return await self._turn(task, additional_args, max_steps, guidance, None)

    def astream(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
    ) -> RunStream:
        """One turn as a `RunStream` (see `AsyncAgent.astream`); closing it cancels the turn
        (the session's tasks from earlier turns stay the session's)."""

        async def start(stream: RunStream) -> Any:
            return await self._turn(task, additional_args, max_steps, guidance, stream)

        return RunStream(start)

    async def _turn(
        self,
        task: str,
        additional_args: Mapping[str, Any] | None,
        max_steps: int | None,
        guidance: bool,
        stream: RunStream | None,
    ) -> Any:
        agent = self._agent
        reset = self._turns == 0
        self._turns += 1
        with entered_run(id(agent), agent.name, agent.task_manager.limits.max_run_depth):
            run = self._run
            run.scope.begin_turn()
            budget = agent._new_budget(run.scope.scope_id)
            if stream is not None:
                stream.opened(run.scope, task, budget)
                run.on_step = stream.on_step
            token = CURRENT_BUDGET.set(budget)
            try:
                return await run.step(
                    task + (TASK_HINT if guidance else ""),
                    reset=reset,
                    additional_args=additional_args,
                    max_steps=max_steps,
                )
            except Exception as exc:
                if budget.exceeded is not None:
                    raise BudgetExceededError(budget.exceeded) from exc
                raise
            finally:
                reset_context_var(CURRENT_BUDGET, token)
                run.on_step = None
