"""`RunResult`: what `arun(..., return_full_result=True)` returns.

Its own module because both the agent and a durable run make one, and neither should import
the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RunResult"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """What `arun(..., return_full_result=True)` returns: the answer, and how the run went."""

    output: Any
    run_id: str
    resumed: bool = False
    """Whether an earlier attempt of this run id had recorded steps (or finished it)."""
    replayed_steps: int = 0
    """Model replies taken from the journal instead of calling the model."""
    replayed_tasks: int = 0
    """Tasks whose outcome came from the journal (they did not run again)."""
    rerun_tasks: int = 0
    """Tasks in flight at the crash that ran again (their target is idempotent, or its
    reconcile hook found the effect had not happened)."""
    unknown_tasks: int = 0
    """Tasks in flight at the crash reported to the model as of unknown outcome."""
    reconciled_tasks: int = 0
    """Tasks in flight at the crash that completed with their reconcile hook's result (their
    effect had happened)."""
