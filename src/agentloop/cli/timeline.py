"""A terminal timeline of a run: one row per task, its bar placed where it ran.

Built from the tasks' events (`cli.eventlog`). `·` is time between submit and start (queued,
or waiting on an upstream task), `█` is running (green: completed, red: failed or timed out,
magenta: cancelled). Overlapping bars are the parallelism.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from .eventlog import TaskInterval

__all__ = ["render_timeline"]

_STYLE = {"completed": "green", "failed": "red", "timed_out": "red", "cancelled": "magenta"}


def render_timeline(
    intervals: Sequence[TaskInterval], *, columns: int = 80, plain: bool = False
) -> Text:
    """Rows of `label |bar| seconds`, the bars scaled to fit in `columns` characters."""
    text = Text()
    if not intervals:
        return text.append("(no tasks)\n")
    start = min(i.submitted for i in intervals)
    end = max(i.ended for i in intervals)
    label_width = min(28, max(len(_label(i)) for i in intervals))
    width = max(20, columns - label_width - 14)
    scale = width / max(end - start, 1e-9)
    wait_char, run_char = (".", "#") if plain else ("·", "█")
    for interval in intervals:
        first = int((interval.submitted - start) * scale)
        began = int((interval.started - start) * scale)
        last = max(began + 1, round((interval.ended - start) * scale))
        text.append(f"{_label(interval)[:label_width]:<{label_width}} |")
        text.append(" " * first)
        text.append(wait_char * max(0, began - first), style="dim")
        text.append(run_char * (last - began), style=_STYLE.get(interval.status, "yellow"))
        text.append(" " * max(0, width - last))
        retry = f" x{interval.attempts}" if interval.attempts > 1 else ""
        text.append(f"| {interval.duration:5.2f}s{retry}\n")
    axis = f"{'':<{label_width}} 0s{'':<{max(0, width - 8)}}{end - start:5.2f}s\n"
    text.append(axis, style="dim")
    return text


def _label(interval: TaskInterval) -> str:
    return interval.task_id
