"""What a person watching a run sees: a live table of tasks and the controller's steps.

Task rows come from the registry's event stream; controller steps from a smolagents step
callback (called in the controller thread, handed to the loop thread-safely). On a terminal the
view is a rich `Live` refreshed by an asyncio task the view owns (no refresh thread); elsewhere
(pipes, CI, `--no-live`) it prints one plain line per event instead.

Step lines are cut at a word boundary and end with `…` when cut, so a clipped line never reads
like finished code. A step that ends while the run is being cancelled (Ctrl-C) is shown as
`interrupted`: its error is the shutdown's own doing (a closed registry, an interrupted
executor), internal text the person who pressed Ctrl-C has no use for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..events import Subscription
from ..registry import TaskRegistry
from ..tasks import TaskEvent, TaskEventKind, TaskStatus

__all__ = ["RunView", "StepLine", "shorten"]

_STATUS_STYLE = {
    TaskStatus.PENDING: "dim",
    TaskStatus.RUNNING: "yellow",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "magenta",
    TaskStatus.TIMED_OUT: "red",
}
REFRESH_SECONDS = 0.1
SUMMARY_WIDTH = 90
ERROR_WIDTH = 120
CUT_MARK = "…"
_NO_OUTPUT = "(no model output: the model call failed)"


def shorten(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else cut at a word boundary and marked `…`.

    A single word longer than half the width is cut inside it (still marked)."""
    if len(text) <= width:
        return text
    limit = max(width - len(CUT_MARK), 1)
    cut = text.rfind(" ", 0, limit + 1)
    if cut < limit // 2:
        cut = limit
    return text[:cut].rstrip() + CUT_MARK


@dataclass(slots=True)
class _Row:
    task_id: str
    target: str
    status: TaskStatus
    attempt: int
    submitted: float
    started: float | None = None
    ended: float | None = None
    error: str | None = None

    def elapsed(self, now: float) -> str:
        if self.started is None:
            return "-"
        return f"{(self.ended or now) - self.started:5.2f}s"


@dataclass(frozen=True, slots=True)
class StepLine:
    """One finished controller step, as shown."""

    number: int
    seconds: float
    summary: str
    error: str | None
    interrupted: bool = False
    """The step ended while the run was being cancelled; its error (if any) is not shown."""

    @property
    def mark(self) -> str:
        """What follows the summary: the error, `interrupted`, or nothing."""
        if self.interrupted:
            return "  interrupted"
        return f"  error: {self.error}" if self.error else ""


class RunView:
    """Shows one or more runs as they happen. Use `async with view.showing(registry):`."""

    def __init__(self, console: Console, *, live: bool, title: str = "agentloop") -> None:
        self.console = console
        self.live = live
        self.title = title
        self.rows: dict[str, _Row] = {}
        self.steps: list[StepLine] = []
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._live: Live | None = None

    # -- inputs -------------------------------------------------------------------------------

    def on_step(self, step: Any) -> None:
        """A smolagents step callback (runs in the controller thread)."""
        if not hasattr(step, "step_number"):
            return
        code = (getattr(step, "code_action", None) or "").strip().splitlines()
        error = getattr(step, "error", None)
        if code:
            more = f"  (+{len(code) - 1} lines)" if len(code) > 1 else ""
            summary = shorten(code[0], SUMMARY_WIDTH - len(more)) + more
        elif getattr(step, "model_output", None) is None and error is None:
            # smolagents runs step callbacks before the model call's error propagates (it
            # never sets `step.error` for it): the run's own error follows this line.
            summary = _NO_OUTPUT
        else:
            summary = "(no code)"
        timing = getattr(step, "timing", None)
        seconds = float(getattr(timing, "duration", None) or 0.0)
        line = StepLine(
            number=int(step.step_number),
            seconds=seconds,
            summary=summary,
            error=shorten((str(error).splitlines() or [""])[0], ERROR_WIDTH) if error else None,
        )
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._add_step, line)

    def _add_step(self, line: StepLine) -> None:
        if self._owner is not None and self._owner.cancelling():
            summary = "(no model output)" if line.summary == _NO_OUTPUT else line.summary
            line = dataclasses.replace(line, summary=summary, interrupted=True)
        self.steps.append(line)
        if not self.live:
            self.console.print(
                f"{self._clock()} step {line.number} ({line.seconds:.2f}s): "
                f"{line.summary}{line.mark}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    def _on_event(self, event: TaskEvent) -> None:
        now = time.monotonic()
        row = self.rows.get(event.task_id)
        if row is None:
            row = _Row(event.task_id, event.target_name, event.status, event.attempt, now)
            self.rows[event.task_id] = row
        row.status = event.status
        row.attempt = max(row.attempt, event.attempt)
        if event.kind is TaskEventKind.STARTED:
            row.started = now
        elif event.status.is_final:
            row.ended = now
            row.error = event.error
        if not self.live and event.kind is not TaskEventKind.SUBMITTED:
            detail = f" ({event.error})" if event.error else ""
            attempt = f" attempt {event.attempt}" if event.attempt > 1 else ""
            self.console.print(
                f"{self._clock()} {event.kind.value:>9} {event.task_id}{attempt}{detail}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    # -- rendering ----------------------------------------------------------------------------

    def _clock(self) -> str:
        return f"[{time.monotonic() - self._started:6.2f}s]"

    def render(self) -> Group:
        now = time.monotonic()
        table = Table(title=f"{self.title} — tasks", title_justify="left", expand=False)
        for column in ("task", "target", "status", "attempt", "elapsed"):
            table.add_column(
                column, justify="right" if column in ("attempt", "elapsed") else "left"
            )
        for row in self.rows.values():
            table.add_row(
                row.task_id,
                row.target,
                Text(row.status.value, style=_STATUS_STYLE[row.status]),
                str(row.attempt or "-"),
                row.elapsed(now),
            )
        steps = Text()
        for line in self.steps[-6:]:
            steps.append(f"step {line.number} ({line.seconds:.2f}s) ", style="bold")
            steps.append(line.summary + "\n")
            if line.mark:
                steps.append(f"{line.mark}\n", style="dim" if line.interrupted else "red")
        if not self.steps:
            steps.append("controller is working on its first step...", style="dim")
        return Group(table, Text("controller steps", style="bold underline"), steps)

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            self._live.update(self.render(), refresh=True)
            await asyncio.sleep(REFRESH_SECONDS)

    async def _consume(self, events: Subscription) -> None:
        async for event in events:
            self._on_event(event)

    @contextlib.asynccontextmanager
    async def showing(self, registry: TaskRegistry) -> AsyncIterator[RunView]:
        """Watch `registry` for the duration of the block."""
        self._loop = asyncio.get_running_loop()
        self._owner = asyncio.current_task()  # cancelled by Ctrl-C (asyncio.run's handler)
        self._started = time.monotonic()
        events = registry.events()
        consumer = asyncio.create_task(self._consume(events))
        refresher: asyncio.Task[None] | None = None
        if self.live:
            self._live = Live(
                self.render(), console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()
            refresher = asyncio.create_task(self._refresh())
        try:
            yield self
        finally:
            for task in (consumer, refresher):
                if task is not None:
                    task.cancel()
            await asyncio.gather(
                *(t for t in (consumer, refresher) if t is not None), return_exceptions=True
            )
            for event in events.drain():  # delivered but not yet consumed
                self._on_event(event)
            await events.aclose()
            if self._live is not None:
                self._live.update(self.render(), refresh=True)
                self._live.stop()
                self._live = None
