"""The journal's record of a remote task, from inside the local task that started it.

A remote A2A task is work another process does: if this process dies while it runs, sending
the message again would make the remote agent do the work twice. So the local task records
the remote task's id in its run's journal (`EntryKind.REMOTE`, durable before the task goes
on), and its target says it `reattaches`: a resumed run reruns the task, and the rerun finds
the recorded id here and follows the remote task instead of sending the message again.
A run without a journal records nothing (it has no resume).
"""

from __future__ import annotations

from typing import Any

from ...core._effects import CURRENT_TASK, current_task

__all__ = ["message_key", "record_remote", "recorded_remote"]


def recorded_remote() -> Any:
    """The handle an earlier attempt of the running task recorded, or None."""
    running = CURRENT_TASK.get()
    journal = getattr(running[0], "journal", None) if running is not None else None
    return None if journal is None else journal.recorded_remote(running[0].task_id)  # type: ignore[index]


async def record_remote(handle: Any) -> None:
    """Record `handle` for the running task (durable when this returns); a no-op without a
    journal or outside a task."""
    running = CURRENT_TASK.get()
    journal = getattr(running[0], "journal", None) if running is not None else None
    if journal is not None:
        await journal.remote_started(running[0], handle)  # type: ignore[index]


def message_key() -> str | None:
    """The running task's idempotency key (the same for every attempt, across resumes), used
    as the A2A message id: a server that deduplicates on it (ours does) runs a message sent
    twice once. None outside a task."""
    try:
        return current_task().idempotency_key
    except Exception:
        return None
