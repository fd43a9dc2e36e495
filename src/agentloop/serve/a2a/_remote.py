"""The journal's record of a remote task, from inside the local task that started it.

A remote A2A task is work another process does: if this process dies while it runs, sending
the message again would make the remote agent do the work twice. So the local task records
the remote task's id as the task's handle (`agentloop.engine._handles`, the same record an MCP
server's remote task uses: durable before the task goes on), and its target says it
`reattaches`: a resumed run reruns the task, and the rerun takes the recorded id back and
follows the remote task instead of sending the message again. A run without a journal records
nothing (it has no resume).
"""

from __future__ import annotations

from ...core._effects import current_task
from ...engine._handles import record_handle, take_handle

__all__ = ["message_key", "record_remote", "recorded_remote"]

_KEY = "a2a_task_id"


def recorded_remote() -> str | None:
    """The remote task id an earlier attempt of the running task recorded, or None."""
    handle = take_handle()
    found = handle.get(_KEY) if handle is not None else None
    return str(found) if found is not None else None


async def record_remote(remote_id: str) -> None:
    """Record `remote_id` for the running task (durable when this returns); a no-op without
    a journal or outside a task."""
    await record_handle({_KEY: remote_id})


def message_key() -> str | None:
    """The running task's idempotency key (the same for every attempt, across resumes), used
    as the A2A message id: a server that deduplicates on it (ours does) runs a message sent
    twice once. None outside a task."""
    try:
        return current_task().idempotency_key
    except Exception:
        return None
