"""How a task waits for its approval: the policy (which tasks, who decides, how long), one
pending request answered at most once, and the context that says who asked and which stream
shows a nested run's requests.

`ASKING_PATH` holds the names of the agents whose runs enclose the submitting code (set by the
agent layer), so a request says who asked.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentloopError, InvalidArgumentsError
from .approvals import (
    DEFAULT_APPROVAL_TIMEOUT,
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    NeedsApproval,
)

__all__ = ["APPROVAL_RELAY", "ASKING_PATH", "ApprovalPolicy", "PendingApproval"]

logger = logging.getLogger("agentloop")

ASKING_PATH: ContextVar[tuple[str, ...]] = ContextVar("agentloop_asking_path", default=())

APPROVAL_RELAY: ContextVar[Callable[[PendingApproval], None] | None] = ContextVar(
    "agentloop_approval_relay", default=None
)
"""Set by a streamed run: requests of runs nested in it (managed `AsyncAgent`s with their own
`needs_approval`) that have no approver of their own are shown on that stream and decided
there."""


@dataclass(kw_only=True)
class ApprovalPolicy:
    """Which tasks need approval, who decides, and how long a request may wait."""

    needs: NeedsApproval
    approver: Approver | None = None
    timeout: float = DEFAULT_APPROVAL_TIMEOUT
    _names: frozenset[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise InvalidArgumentsError(
                f"`approval_timeout` must be positive, received {self.timeout!r}."
            )
        if self.needs is None or callable(self.needs):
            return
        if isinstance(self.needs, str):
            raise InvalidArgumentsError(
                "`needs_approval` must be a set of target names or a callable, received the "
                f"string {self.needs!r}; write {{{self.needs!r}}} for one name."
            )
        self._names = frozenset(self.needs)
        if not all(isinstance(name, str) for name in self._names):
            raise InvalidArgumentsError("`needs_approval` names must be strings.")

    async def required(self, target: str, arguments: dict[str, Any]) -> bool:
        if self._names is not None:
            return target in self._names
        if self.needs is None:
            return False
        verdict = self.needs(target, arguments)  # type: ignore[operator]
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)


class PendingApproval:
    """One request waiting for its decision; answered at most once."""

    def __init__(self, request: ApprovalRequest) -> None:
        self.request = request
        self.decision: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
        self._withdrawn: str | None = None

    def withdraw(self, why: str) -> None:
        """Take no answer from now on (the run parks: its decision goes through the journal);
        an answer is refused with `why`."""
        self._withdrawn = why

    def answer(self, decision: ApprovalDecision) -> None:
        if self._withdrawn is not None:
            raise AgentloopError(self._withdrawn)
        if self.decision.cancelled():
            raise AgentloopError(
                f"task `{self.request.task_id}` no longer awaits approval: it was cancelled."
            )
        if self.decision.done():
            raise AgentloopError(
                f"task `{self.request.task_id}` was already decided; an approval is answered once."
            )
        self.decision.set_result(decision)

    async def decided(self, policy: ApprovalPolicy) -> ApprovalDecision:
        """Wait for the decision (asking the approver, if any), within the policy's timeout."""
        asking: asyncio.Task[Any] | None = None
        if policy.approver is not None:
            asking = asyncio.ensure_future(self._ask(policy.approver))
        try:
            done, _ = await asyncio.wait({self.decision}, timeout=policy.timeout)
            if not done and self._withdrawn is not None:  # parked: the closing scope ends it
                done, _ = await asyncio.wait({self.decision})
        except asyncio.CancelledError:
            self.decision.cancel()  # the task is gone: a later answer is refused, not lost
            raise
        finally:
            if asking is not None and not asking.done():
                asking.cancel()
        if not done:  # decided by the clock: a later answer is "already decided"
            self.decision.set_result(
                ApprovalDecision.reject(f"no answer within {policy.timeout:g}s")
            )
        return self.decision.result()

    async def _ask(self, approver: Approver) -> None:
        try:
            answer = await approver(self.request)
        except Exception as exc:
            logger.exception("the approver failed for task %s", self.request.task_id)
            answer = ApprovalDecision.reject(f"the approver failed: {type(exc).__name__}")
        if isinstance(answer, bool):
            answer = ApprovalDecision(approved=answer, reason="" if answer else "rejected")
        if not self.decision.done() and self._withdrawn is None:
            self.decision.set_result(answer)
