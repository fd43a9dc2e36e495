"""Human approval of tasks, without stopping the run.

A task whose target needs approval waits in status `awaiting_approval` before its first attempt
(it holds no slot meanwhile), while the run's other work goes on. It is decided once: by the
`approver` coroutine if there is one, or by the application through the run's stream
(`stream.approve(task_id)` / `stream.reject(task_id, reason)`), whichever answers first; with no
answer within the timeout it is rejected. A rejected task fails with the reason, which the
model reads.

`ASKING_PATH` holds the names of the agents whose runs enclose the submitting code (set by the
agent layer), so a request says who asked.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import AgentloopError, InvalidArgumentsError

__all__ = [
    "APPROVAL_RELAY",
    "ASKING_PATH",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "Approver",
    "NeedsApproval",
]

logger = logging.getLogger("agentloop")

DEFAULT_APPROVAL_TIMEOUT = 300.0

ASKING_PATH: ContextVar[tuple[str, ...]] = ContextVar("agentloop_asking_path", default=())

APPROVAL_RELAY: ContextVar[Callable[[PendingApproval], None] | None] = ContextVar(
    "agentloop_approval_relay", default=None
)
"""Set by a streamed run: requests of runs nested in it (managed `AsyncAgent`s with their own
`needs_approval`) that have no approver of their own are shown on that stream and decided
there."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRequest:
    """What an approver is asked: which task of which run wants to run what, and who asked."""

    run_id: str
    task_id: str
    target: str
    arguments: dict[str, Any]
    asked_by: tuple[str, ...] = ()
    """The agents whose runs enclose the request, outermost first (the controller: one name)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalDecision:
    approved: bool
    reason: str = ""

    @classmethod
    def approve(cls, reason: str = "") -> ApprovalDecision:
        return cls(approved=True, reason=reason)

    @classmethod
    def reject(cls, reason: str) -> ApprovalDecision:
        return cls(approved=False, reason=reason)


NeedsApproval = Collection[str] | Callable[[str, dict[str, Any]], bool | Awaitable[bool]] | None
Approver = Callable[[ApprovalRequest], Awaitable["ApprovalDecision | bool"]]


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

    def answer(self, decision: ApprovalDecision) -> None:
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
        finally:
            if asking is not None and not asking.done():
                asking.cancel()
        if not done:
            return ApprovalDecision.reject(f"no answer within {policy.timeout:g}s")
        return self.decision.result()

    async def _ask(self, approver: Approver) -> None:
        try:
            answer = await approver(self.request)
        except Exception as exc:
            logger.exception("the approver failed for task %s", self.request.task_id)
            answer = ApprovalDecision.reject(f"the approver failed: {type(exc).__name__}")
        if isinstance(answer, bool):
            answer = ApprovalDecision(approved=answer, reason="" if answer else "rejected")
        if not self.decision.done():
            self.decision.set_result(answer)
