"""One turn of a run: what `arun`, `astream` and every turn of a session do around the
controller's step, written once so that they cannot drift apart.

A turn enters the run (its place on the run stack, bounded by `Limits.max_run_depth`), gives it
a budget (charged to the enclosing run's too), connects the stream if there is one (its start,
what a resumed run replays, each step, and the approval requests of runs nested in this one),
and says what an error means: a run stopped by the agent's shutdown is a
`RegistryClosedError`, a run that spent its budget a `BudgetExceededError`. A typed call's
answer is checked by its `AnswerCheck` (`_answer_check`), which the turn makes current for the
controller and asks for the validated value once the controller has ended.

`Turns` is built once per agent and holds no reference to the agent, so a session keeps its run
and the agent's `Turns`, and nothing that leads back to the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._util import reset_context_var
from ..core._approving import APPROVAL_RELAY
from ..core._budgets import CURRENT_BUDGET, RunBudget, Usage
from ..core._limited_model import MODEL_RETRY_LISTENER
from ..core._limits_by_model import CURRENT_MODEL_LIMITS
from ..core._model_limits import ModelLimits
from ..core._usage import ModelAccounting
from ..errors import BudgetExceededError, RegistryClosedError
from ..journal._replay import Replay
from ..limits import Limits
from ._answer_check import ANSWER_CHECK, AnswerCheck, AnswerTypes
from ._feed import RunFeed
from ._guidance import TASK_HINT
from ._images import TurnImages, turn_images
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
    answer: AnswerCheck | None = None
    """A typed call's check of its answer (`output_type=`; one per call: it keeps the value
    it accepted)."""
    images: TurnImages | None = None

    @property
    def identity(self) -> str:
        """What a journal checks besides the task when the call resumes a run: its output
        type and images (`""` when it has neither, as before either existed)."""
        parts = []
        if self.answer is not None:
            parts.append(f"output_type={self.answer.identity}")
        if self.images is not None:
            parts.append(f"images={self.images.identity}")
        return ";".join(parts)


class Turns:
    """The turns of one agent's runs and sessions."""

    def __init__(
        self,
        *,
        agent_key: int,
        agent_name: str,
        limits: Limits,
        usage: Usage,
        model: Any = None,
        model_limits: Mapping[str, ModelLimits] | None = None,
        accounting: ModelAccounting | None = None,
    ) -> None:
        self._agent_key = agent_key
        self._agent_name = agent_name
        self._limits = limits
        self._usage = usage
        self._model = model
        """The agent's model, asked whether it takes images (the model, not the agent)."""
        self._answer_types = AnswerTypes()
        self._model_limits = model_limits or None
        """The agent's provider budgets by model id, for its managed agents' models."""
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

    def answer_check(self, output_type: Any, output_retries: int) -> AnswerCheck | None:
        """A call's check of its answer (`None`: untyped); each type is described once."""
        return self._answer_types.check(output_type, output_retries)

    async def with_images(self, request: TurnRequest, images: Sequence[Any] | None) -> TurnRequest:
        """`request` with `images` checked against the model and converted (off the loop)."""
        if images is None:
            return request
        return dataclasses.replace(request, images=await turn_images(images, self._model))

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
            run.on_delta = feed.on_delta
            run.on_fallback = feed.on_fallback
        token = CURRENT_BUDGET.set(budget)  # the controller thread gets a copy
        check = request.answer
        checking = ANSWER_CHECK.set(check)  # so does the check of its final answer
        # A streamed run shows its nested runs' approval requests; others pass theirs on.
        relay = APPROVAL_RELAY.set(feed.relay_approval) if feed is not None else None
        by_id = CURRENT_MODEL_LIMITS.set(self._model_limits)
        retries = MODEL_RETRY_LISTENER.set(feed.model_retried) if feed is not None else None
        try:
            output = await run.step(
                request.task
                + (TASK_HINT if request.guidance else "")
                + (check.hint if check is not None else ""),
                reset=reset,
                additional_args=request.additional_args,
                max_steps=request.max_steps,
                images=request.images.images if request.images is not None else None,
            )
            return output if check is None else await check.outcome(output)
        except Exception as exc:
            if self.closed:  # stopped by `aclose()`/`shutdown()`: say so, not "interrupted"
                raise RegistryClosedError(
                    f"agent `{self._agent_name}` was shut down while this run was in progress."
                ) from exc
            if budget.exceeded is not None:
                raise BudgetExceededError(budget.exceeded) from exc
            raise
        finally:
            if retries is not None:
                reset_context_var(MODEL_RETRY_LISTENER, retries)
            reset_context_var(CURRENT_MODEL_LIMITS, by_id)
            if relay is not None:
                reset_context_var(APPROVAL_RELAY, relay)
            reset_context_var(ANSWER_CHECK, checking)
            reset_context_var(CURRENT_BUDGET, token)
            run.on_step = None
            run.on_delta = None
            run.on_fallback = None
