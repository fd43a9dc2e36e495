"""Short, bounded text renderings of tasks for the model to read in observations.

These render user objects (results, arguments) with `_text.shown`, never `repr`: a result may be
huge or have a `__repr__` that raises. That `__repr__` is still user code, so callers run these
in the controller's thread, never on the event loop."""

from __future__ import annotations

import time

from .._text import bounded, shown
from ..tasks import TaskInfo, TaskStatus

__all__ = ["task_detail", "task_line"]


def _elapsed(info: TaskInfo) -> str:
    if info.started_at is None:
        return "not started"
    end = info.completed_at if info.completed_at is not None else time.time()
    return f"{end - info.started_at:.2f}s"


def task_line(info: TaskInfo, limit: int = 160) -> str:
    """One line: id, target, status, attempts, time, and the error or a result preview."""
    line = f"{info.task_id}: {info.target_name} {info.status.value} ({_elapsed(info)}"
    line += f", attempt {info.attempts})" if info.attempts > 1 else ")"
    if info.status is TaskStatus.COMPLETED:
        line += f" -> {shown(info.result, limit)}"
    elif info.progress is not None and not info.status.is_final:
        line += f" [{bounded(str(info.progress), limit)}]"
    elif info.error:
        line += f" -> {bounded(info.error, limit)}"
    return line


def task_detail(info: TaskInfo, limit: int) -> str:
    """Several lines with arguments, dependencies and the full (bounded) result or error."""
    lines = [
        f"task {info.task_id}",
        f"  target: {info.task_type.value} `{info.target_name}`",
        f"  status: {info.status.value}, attempts: {info.attempts}, time: {_elapsed(info)}",
        f"  arguments: {shown(info.arguments, limit // 4)}",
    ]
    if info.depends_on:
        lines.append(f"  depends on: {', '.join(info.depends_on)}")
    if info.progress is not None:
        lines.append(f"  progress: {bounded(str(info.progress), limit)}")
    if info.status is TaskStatus.COMPLETED:
        lines.append(f"  result: {shown(info.result, limit)}")
    elif info.error:
        lines.append(f"  error: {bounded(info.error, limit)}")
    return "\n".join(lines)
