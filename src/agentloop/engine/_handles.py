"""Work a task started outside the process, by handle: recorded before the task waits on it,
handed back to the task when a resumed run starts it again.

Some targets start work that lives elsewhere and outlives the call that started it: an MCP
server's remote task, identified by the id the server gave it. If the process dies while the
task waits on such work, running the task again would start the work a second time (the
effect twice); what the resumed task should do is follow the work already going. So a target
that gets a handle records it (`record_handle`) before it waits, and the record is durable when
that returns; a resumed run starts every in-flight task that recorded a handle again, whatever
its target's idempotency, and the target's code takes the handle back (`take_handle`) and
re-attaches instead of starting anew.

Why this hook and not a reconcile hook keyed by the handle: a reconcile hook answers once,
"done, not done, unknown", and a remote task is usually still running at the resume; the
resumed task must go on *waiting* on it (with its progress, its cancellation, its timeout), which
is exactly what the target's code does anyway once it has a handle. So the handle is given to
the same code, and the journal stays ignorant of what a handle means (a JSON object the target
wrote). Without a journal the handle is kept on the task's record only.

The window that remains: a crash after the server created the work and before the handle is
durable leaves the task in flight with no handle, decided on by the usual rules (rerun if
idempotent, the target's reconcile hook, else "outcome unknown").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core._effects import CURRENT_TASK
from ._record import TaskRecord

__all__ = ["record_handle", "take_handle"]


def _running() -> TaskRecord | None:
    running = CURRENT_TASK.get()
    if running is None:
        return None
    record = running[0]
    return record if isinstance(record, TaskRecord) else None


async def record_handle(handle: Mapping[str, Any]) -> None:
    """Record, for the running task, the handle of the outside work it started (JSON values);
    in a journaled run it is durable when this returns. Outside a task: nothing to do."""
    record = _running()
    if record is not None and record.journal is not None:
        await record.journal.handle_recorded(record, dict(handle))


def take_handle() -> dict[str, Any] | None:
    """The handle an earlier process recorded for the running task (a resumed task), once:
    a retry after it starts afresh."""
    record = _running()
    if record is None or record.handle is None:
        return None
    handle, record.handle = record.handle, None
    return handle
