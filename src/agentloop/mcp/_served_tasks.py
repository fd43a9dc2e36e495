"""The MCP tasks of an agent served over MCP: runs a client started with a task-augmented call.

MCP's "tasks" utility (protocol 2025-11-25) lets a client ask for a long `tools/call` as a
task: the server answers at once with a task handle, and the client polls it (`tasks/get`),
fetches its result when it ends (`tasks/result`, which waits for the end) or cancels it
(`tasks/cancel`). Here a task is one run of the agent, owned by this store: the store's
asyncio task drives it, so the run outlives the request that started it, and closing the
store (the server's lifespan ending) cancels every run still going and waits for it.

A task belongs to whoever started it (the principal an HTTP auth hook returned; everyone is
one caller without auth, and on stdio): another caller asking for its id is told it does not
exist, as for an id that never did. Ids are random (`secrets.token_urlsafe`), so they cannot
be guessed either. Bounded: at most `max_running` runs at once (a task-augmented call beyond
is refused with an error that says so), and a task that ended is forgotten `ttl` after it was
created (the client's requested `ttl`, capped at `max_ttl`), or at once when more than
`max_kept` ended tasks are kept.

The mcp SDK (2.3.0) ships the protocol's task *types* only: no server or client dispatches
these methods. This store and `_agent_server` serve them with the SDK's low-level `Server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from .._text import describe

__all__ = ["ServedTask", "ServedTasks", "TaskNotFound", "TaskRefused"]

Status = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL: frozenset[Status] = frozenset({"completed", "failed", "cancelled"})
CANCEL_GRACE = 10.0
"""Seconds `tasks/cancel` waits for a cancelled run to end before it answers anyway."""


class TaskNotFound(LookupError):
    """No task of this caller has this id (it never existed, expired, or is another's)."""


class TaskRefused(RuntimeError):
    """A task cannot be started or cancelled now; `str()` says why."""


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(eq=False)
class ServedTask:
    """One task: its status as MCP shows it, and the run behind it."""

    task_id: str
    owner: str | None
    ttl_ms: int
    poll_interval_ms: int
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    status: Status = "working"
    status_message: str | None = None
    result: dict[str, Any] | None = None
    """The `CallToolResult` (wire form) once the run ended with an answer or a failure."""
    runner: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def wire(self) -> dict[str, Any]:
        """The protocol's `Task` object."""
        data: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "lastUpdatedAt": _iso(self.updated_at),
            "ttl": self.ttl_ms,
            "pollInterval": self.poll_interval_ms,
        }
        if self.status_message is not None:
            data["statusMessage"] = self.status_message
        return data

    def note(self, message: str) -> None:
        """Show how far the run got (`statusMessage`), while it works."""
        if self.status not in TERMINAL:
            self.status_message = message
            self.updated_at = time.time()

    def expired(self, now: float) -> bool:
        return self.status in TERMINAL and now >= self.created_at + self.ttl_ms / 1000


class ServedTasks:
    """The tasks of one served agent, shared by every connection to its server."""

    def __init__(
        self,
        *,
        max_running: int = 32,
        max_kept: int = 1000,
        default_ttl: float = 3600.0,
        max_ttl: float = 24 * 3600.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.max_running = max_running
        self.max_kept = max_kept
        self.default_ttl_ms = int(default_ttl * 1000)
        self.max_ttl_ms = int(max_ttl * 1000)
        self.poll_interval_ms = max(int(poll_interval * 1000), 1)
        self._tasks: OrderedDict[str, ServedTask] = OrderedDict()
        self._closed = False

    def start(
        self,
        owner: str | None,
        ttl_ms: int | None,
        work: Callable[[ServedTask], Coroutine[Any, Any, dict[str, Any]]],
    ) -> ServedTask:
        """Start `work(task)` (a run, answering a `CallToolResult`) as a new task of `owner`."""
        self._forget_expired()
        running = sum(1 for task in self._tasks.values() if task.status not in TERMINAL)
        if self._closed or running >= self.max_running:
            why = (
                "the server is closing"
                if self._closed
                else (
                    f"{running} tasks are running, the most this server runs at once "
                    f"(its max_running_tasks); wait for one to end, or cancel one"
                )
            )
            raise TaskRefused(f"cannot start a task: {why}.")
        ttl = self.default_ttl_ms if ttl_ms is None else min(max(int(ttl_ms), 0), self.max_ttl_ms)
        task = ServedTask(
            task_id=secrets.token_urlsafe(16),
            owner=owner,
            ttl_ms=ttl,
            poll_interval_ms=self.poll_interval_ms,
        )
        self._tasks[task.task_id] = task
        task.runner = asyncio.get_running_loop().create_task(
            self._drive(task, work(task)), name=f"agentloop-mcp-task-{task.task_id[:8]}"
        )
        return task

    async def _drive(self, task: ServedTask, work: Coroutine[Any, Any, dict[str, Any]]) -> None:
        try:
            result = await work
        except asyncio.CancelledError:
            self._end(task, "cancelled", "The task was cancelled.", None)
            raise
        except Exception as exc:  # the run's own failures are results already: this is a bug
            text = f"the run could not be served: {describe(exc)}"
            self._end(
                task, "failed", text, {"content": [{"type": "text", "text": text}], "isError": True}
            )
        else:
            failed = bool(result.get("isError"))
            self._end(task, "failed" if failed else "completed", None, result)

    def _end(
        self, task: ServedTask, status: Status, message: str | None, result: dict[str, Any] | None
    ) -> None:
        task.status, task.status_message, task.result = status, message, result
        task.updated_at = time.time()
        task.ended.set()

    def get(self, owner: str | None, task_id: str) -> ServedTask:
        """The caller's task `task_id`; `TaskNotFound` for any other id."""
        self._forget_expired()
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.owner != owner:
            raise TaskNotFound(f"no task `{task_id}` (it never existed, or it expired).")
        return task

    def listed(self, owner: str | None) -> list[ServedTask]:
        """The caller's tasks, oldest first."""
        self._forget_expired()
        return [task for task in self._tasks.values() if task.owner == owner]

    async def result(self, owner: str | None, task_id: str) -> ServedTask:
        """The caller's task once it has ended (waits for it, as `tasks/result` does)."""
        task = self.get(owner, task_id)
        await task.ended.wait()
        return task

    async def cancel(self, owner: str | None, task_id: str) -> ServedTask:
        """Cancel the caller's task and wait (bounded) for its run to end."""
        task = self.get(owner, task_id)
        if task.status in TERMINAL:
            raise TaskRefused(f"cannot cancel task `{task_id}`: it is already {task.status}.")
        if task.runner is not None:
            task.runner.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task.ended.wait(), CANCEL_GRACE)
        return task

    async def aclose(self) -> None:
        """Cancel every run still going and wait until each has ended."""
        self._closed = True
        runners = [t.runner for t in self._tasks.values() if t.runner and not t.runner.done()]
        for runner in runners:
            runner.cancel()
        if runners:
            await asyncio.gather(*runners, return_exceptions=True)

    def _forget_expired(self) -> None:
        now = time.time()
        for task_id in [i for i, t in self._tasks.items() if t.expired(now)]:
            del self._tasks[task_id]
        ended = [i for i, t in self._tasks.items() if t.status in TERMINAL]
        for task_id in ended[: max(len(ended) - self.max_kept, 0)]:
            del self._tasks[task_id]
