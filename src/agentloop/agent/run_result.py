"""`RunResult`: what `arun(..., return_full_result=True)` returns.

Its own module because both the agent and a durable run make one, and neither should import
the other for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core._usage import ModelUsage

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
    usage: ModelUsage = field(default_factory=ModelUsage)
    """What the run's models spent (calls, tokens, US dollars), its sub-agents included; a
    resumed run counts the replies it replayed, which were paid for before the crash."""
    sub_agent_usage: Mapping[str, ModelUsage] = field(default_factory=dict)
    """What each managed agent the run started spent (by name; part of `usage`, and what
    their own sub-agents spent is part of theirs). The controller's own share is the rest."""
