"""Typed values that describe tasks: their lifecycle, snapshots, failures, waits and events."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FINAL_STATUSES",
    "ReturnWhen",
    "TaskEvent",
    "TaskEventKind",
    "TaskFailure",
    "TaskInfo",
    "TaskProgress",
    "TaskStatus",
    "TaskType",
    "WaitOutcome",
]

ReturnWhen = Literal["all", "any"]


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. The last four are final: a final task never changes again."""

    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT}
)


class TaskType(enum.StrEnum):
    """What a task runs: a registered tool (or callable), or a managed agent."""

    TOOL = "tool"
    MANAGED_AGENT = "managed_agent"


class TaskEventKind(enum.StrEnum):
    """The transitions the event stream reports."""

    SUBMITTED = "submitted"
    APPROVAL_REQUESTED = "approval_requested"
    STARTED = "started"
    RETRIED = "retried"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    PROGRESS = "progress"
    """The running task reported how far it got (an MCP server's progress notification)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskProgress:
    """How far a running task says it got: `progress` out of `total` (when known), and a
    message. Reported by the task's own code (an MCP server's progress notifications)."""

    progress: float
    total: float | None = None
    message: str | None = None

    def __str__(self) -> str:
        if not self.progress and not self.total and self.message:
            return self.message  # a status with no count (a remote MCP task's)
        done = f"{self.progress:g}" + (f"/{self.total:g}" if self.total else "")
        if self.total:
            done += f" ({100 * self.progress / self.total:.0f}%)"
        return done + (f": {self.message}" if self.message else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskInfo:
    """A snapshot of one task, taken when it was asked for; it does not change afterwards."""

    task_id: str
    task_type: TaskType
    target_name: str
    arguments: dict[str, Any]
    status: TaskStatus
    created_at: float
    started_at: float | None
    completed_at: float | None
    result: Any
    error: str | None
    attempts: int = 0
    depends_on: tuple[str, ...] = ()
    progress: TaskProgress | None = None
    """The last progress the running task reported, if it reports any."""

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or `None` while it has not both started and ended."""
        if self.started_at is None or self.completed_at is None:
            return None
        return self.completed_at - self.started_at


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskFailure:
    """Stands in for the result of a task that has none: it failed, was cancelled, timed out,
    or has not finished yet.

    It is falsy and prints as an unmistakable failure, so model code that does
    `results[task_id]` can never mistake it for a real value (and never sees a bare `None`).
    """

    task_id: str
    status: TaskStatus
    error: str

    def __bool__(self) -> bool:
        return False

    @property
    def finished(self) -> bool:
        return self.status.is_final

    def __str__(self) -> str:
        return f"TaskFailure(task `{self.task_id}` {self.status.value.upper()}: {self.error})"

    __repr__ = __str__


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitOutcome:
    """What a wait found: which tasks completed, which ended without a result, which are pending."""

    completed: tuple[str, ...]
    failed: tuple[str, ...]
    pending: tuple[str, ...]
    timed_out: bool
    waited_seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def all_done(self) -> bool:
        """True when no awaited task is still pending or running."""
        return not self.pending

    @property
    def all_completed(self) -> bool:
        """True when every awaited task completed successfully."""
        return not self.pending and not self.failed

    def __str__(self) -> str:
        parts = [f"{len(self.completed)} completed"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(self.failed)})")
        if self.pending:
            parts.append(f"{len(self.pending)} still pending ({', '.join(self.pending)})")
        head = "wait timed out" if self.timed_out else "wait finished"
        text = f"{head} after {self.waited_seconds:.2f}s: " + ", ".join(parts) + "."
        for task_id, error in self.errors.items():
            text += f"\n  - `{task_id}`: {error}"
        if self.note:
            text += f"\n  note: {self.note}"
        return text

    def with_note(self, note: str) -> WaitOutcome:
        """A copy that carries a remark for the reader (e.g. that a limit applied)."""
        return dataclasses.replace(self, note=note)

    __repr__ = __str__


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskEvent:
    """One transition of one task, as delivered by the registry's event stream."""

    kind: TaskEventKind
    task_id: str
    target_name: str
    scope_id: str
    status: TaskStatus
    at: float
    attempt: int = 0
    error: str | None = None
    progress: TaskProgress | None = None
    """What a `progress` event reports."""
