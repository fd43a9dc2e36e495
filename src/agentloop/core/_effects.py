"""What a task knows about its own effects: who it is, its idempotency key, and how a
reconcile hook answers whether an interrupted attempt's effect happened.

A tool with an effect outside the process (a charge, an email, a row in someone else's
database) cannot be made exactly-once by agentloop alone: a crash between the effect and the
journal's record of it leaves the outcome unknown. Two things make that unknown rare and
resolvable. The task's *idempotency key* is the same for every attempt of the task, across
retries and resumes, so a service that deduplicates on it performs the effect once however
often the tool runs. A *reconcile hook* asks that service, after a crash, whether the
interrupted attempt's effect happened: the task then completes with its result, runs again, or
is reported unknown.

The runner sets `CURRENT_TASK` around each attempt (in the attempt's context, which async
targets share and worker threads get a copy of). It holds the runner's record and the attempt
number, not a finished `TaskContext`: building one (and hashing its key) costs a few
microseconds, which the per-task hot path does not pay unless the tool asks.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from ..errors import AgentloopError
from ._targets import Target

__all__ = [
    "CURRENT_TASK",
    "KEY_PREFIX",
    "ReconcileHook",
    "ReconcileState",
    "Reconciliation",
    "RunningTask",
    "TaskContext",
    "current_task",
    "idempotency_key",
]

KEY_PREFIX = "al1-"
"""The idempotency key's prefix: names its format (version 1), so a later format cannot
collide with keys already handed to services."""


def idempotency_key(run_key: str, task_id: str) -> str:
    """`al1-` and the first 32 hex digits of SHA-256 over `run_key`, a NUL byte and `task_id`
    (UTF-8): 36 characters of `[a-z0-9-]`, which any service's key field accepts."""
    digest = hashlib.sha256(f"{run_key}\0{task_id}".encode()).hexdigest()
    return KEY_PREFIX + digest[:32]


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskContext:
    """The running task, as `agentloop.current_task()` returns it inside a tool.

    `idempotency_key` is the same for every attempt of this task: across its retries, and,
    in a journaled run, across resumes in any process (it depends only on the run id and the
    task id). Send it to services that deduplicate on a key.
    """

    run_id: str
    """The run (scope) the task belongs to."""
    task_id: str
    target: str
    """The tool or managed agent the task runs."""
    attempt: int
    """1 for the first start; one more for each retry and each rerun after a resume."""
    idempotency_key: str
    """Stable across attempts (see `idempotency_key()` for the format)."""


class RunningTask(Protocol):
    """What `current_task()` reads of the runner's record (the engine's `TaskRecord`)."""

    @property
    def scope_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def run_key(self) -> str: ...

    @property
    def target(self) -> Target: ...


CURRENT_TASK: ContextVar[tuple[RunningTask, int] | None] = ContextVar(
    "agentloop_current_task", default=None
)
"""The task whose attempt the current code runs, and the attempt's number."""


def task_context(running: RunningTask, attempt: int) -> TaskContext:
    return TaskContext(
        run_id=running.scope_id,
        task_id=running.task_id,
        target=running.target.name,
        attempt=attempt,
        idempotency_key=idempotency_key(running.run_key, running.task_id),
    )


def current_task() -> TaskContext:
    """The task whose code is running here: its run, id, target, attempt and idempotency key.

    Works in async tools (on the loop) and in sync tools (in agentloop's worker threads,
    which get a copy of the task's context), and in a reconcile hook. Not in code agentloop
    does not run as a task, and not on a remote backend (Ray), which runs the code in
    another process.

    Raises:
        AgentloopError: called outside a task.
    """
    running = CURRENT_TASK.get()
    if running is None:
        raise AgentloopError(
            "`agentloop.current_task()` was called outside a task: call it from a tool (or a "
            "reconcile hook) that agentloop runs as a task, from the tool's own thread or "
            "task. A thread the tool starts itself needs `contextvars.copy_context()` to see "
            "it; a remote backend (Ray) runs the tool in another process, where there is none."
        )
    return task_context(*running)


class ReconcileState(enum.Enum):
    """What a reconcile hook found about the attempt a crash interrupted."""

    DONE = "done"
    """Its effect happened: the task completes with the hook's result."""
    NOT_DONE = "not_done"
    """Its effect did not happen: the task runs again (same key, next attempt)."""
    UNKNOWN = "unknown"
    """The hook cannot tell: the task fails as "outcome unknown", with the hook's reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reconciliation:
    """A reconcile hook's answer. Build it with `done(result)`, `not_done()` or
    `unknown(reason)`."""

    state: ReconcileState
    result: Any = None
    """The task's result, when `state` is `DONE`."""
    reason: str = ""
    """Why: shown in the task's error when `state` is `UNKNOWN`."""

    @classmethod
    def done(cls, result: Any = None) -> Reconciliation:
        """The effect happened; `result` becomes the task's result (stored in the journal)."""
        return cls(state=ReconcileState.DONE, result=result)

    @classmethod
    def not_done(cls, reason: str = "") -> Reconciliation:
        """The effect did not happen: run the task again."""
        return cls(state=ReconcileState.NOT_DONE, reason=reason)

    @classmethod
    def unknown(cls, reason: str) -> Reconciliation:
        """The hook cannot tell; `reason` says why (the model reads it)."""
        return cls(state=ReconcileState.UNKNOWN, reason=reason)


ReconcileHook: TypeAlias = Callable[
    [TaskContext, Mapping[str, Any]], "Reconciliation | Awaitable[Reconciliation]"
]
"""`hook(task, arguments)`, sync (run in a worker thread) or async: whether the attempt of
`task` that a crash interrupted had its effect."""
