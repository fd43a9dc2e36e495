"""Human approval of tasks, without stopping the run.

A task whose target needs approval waits in status `awaiting_approval` before its first attempt
(it holds no slot meanwhile), while the run's other work goes on. It is decided once: by the
`approver` coroutine if there is one, or by the application through the run's stream
(`stream.approve(task_id)` / `stream.reject(task_id, reason)`), whichever answers first; with no
answer within the timeout it is rejected. A rejected task fails with the reason, which the
model reads.

This module holds the public values (a request, a decision, the types of the settings); the
machinery that waits for a decision is in `_approving`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "NeedsApproval",
]

DEFAULT_APPROVAL_TIMEOUT = 300.0


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
