"""What a person watching a run sees: a live table of tasks and the controller's steps.

Fed by the run's event stream (`RunEvent`s from `agent.astream`, handed over by
`cli.feed.follow`): task rows from its task events, step lines from its step events, the same
events the timeline, `--trace` and `--events` read. On a terminal the view is a rich `Live`
refreshed by an asyncio task the view owns (no refresh thread); elsewhere (pipes, CI,
`--no-live`) it prints one plain line per event instead.

Step lines are cut at a word boundary and end with `…` when cut, so a clipped line never reads
like finished code. A step that ends while the run is being cancelled (Ctrl-C) is shown as
`interrupted`: its error is the shutdown's own doing (a closed registry, an interrupted
executor), internal text the person who pressed Ctrl-C has no use for.

A task waiting for a person's approval has its own row label (`awaiting approval`, bold cyan)
and a plain line; the stream has no event for the decision, so whoever decides (the demo's
approver, `agentloop run --approve`'s terminal prompt) reports it with `note_decision`. A prompt
is asked inside `paused()`, so the live table does not redraw over the question.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..agent.stream import RunEvent, RunEventKind, StepInfo, TaskEventInfo
from ..tasks import TaskStatus

__all__ = ["RunView", "StepLine", "shorten"]

_STATUS_STYLE = {
    TaskStatus.PENDING: "dim",
    TaskStatus.AWAITING_APPROVAL: "bold cyan",
    TaskStatus.RUNNING: "yellow",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "magenta",
    TaskStatus.TIMED_OUT: "red",
}
REFRESH_SECONDS = 0.1
SUMMARY_WIDTH = 90
ERROR_WIDTH = 120
WRITING_TAIL = 400
"""Characters of the model's words in progress the live view keeps (it shows a line's worth)."""
CUT_MARK = "…"
_NO_OUTPUT = "(no model output: the model call failed)"
_LABELS = {TaskStatus.AWAITING_APPROVAL: "awaiting approval"}


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
    progress: str | None = None

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
    """Shows one or more runs as they happen: `async with view.showing():`, feeding it each
    event with `view.on_event` (see `cli.feed.follow`)."""

    def __init__(self, console: Console, *, live: bool, title: str = "agentloop") -> None:
        self.console = console
        self.live = live
        self.title = title
        self.rows: dict[str, _Row] = {}
        self.steps: list[StepLine] = []
        self._started = time.time()
        self._owner: asyncio.Task[Any] | None = None
        self._live: Live | None = None
        self._paused = False
        self._writing: tuple[int, str] | None = None
        """The step the model is writing and the tail of its words so far (live view)."""

    # -- input -----------------------------------------------------------------------------

    def on_event(self, event: RunEvent) -> None:
        """Show one event of the run (a sink for `cli.feed.follow`; on the loop)."""
        if event.delta is not None:
            if self.live:  # plain output prints the step once it is done, not word by word
                step, text = event.delta.step, event.delta.text
                if self._writing is not None and self._writing[0] == step:
                    text = self._writing[1] + text
                self._writing = (step, text[-WRITING_TAIL:])
        elif event.step is not None:
            self._writing = None
            self._add_step(_step_line(event.step), event.at)
        elif event.task_event is not None:
            self._on_task_event(event.kind, event.task_event, event.at, event.extra)
        elif event.kind is RunEventKind.EVENTS_DROPPED and not self.live:
            self._print(f"{self._clock(event.at)} ({event.dropped} events not shown: view behind)")

    def _add_step(self, line: StepLine, at: float) -> None:
        if self._owner is not None and self._owner.cancelling():
            summary = "(no model output)" if line.summary == _NO_OUTPUT else line.summary
            line = dataclasses.replace(line, summary=summary, interrupted=True)
        self.steps.append(line)
        if not self.live:
            self._print(
                f"{self._clock(at)} step {line.number} ({line.seconds:.2f}s): "
                f"{line.summary}{line.mark}"
            )

    def _on_task_event(
        self, kind: RunEventKind, info: TaskEventInfo, at: float, extra: dict[str, Any]
    ) -> None:
        row = self.rows.get(info.task_id)
        if row is None:
            row = _Row(info.task_id, info.target, info.status, info.attempt, at)
            self.rows[info.task_id] = row
        row.status = info.status
        row.attempt = max(row.attempt, info.attempt)
        if kind is RunEventKind.TASK_PROGRESS:
            row.progress = None if info.progress is None else str(info.progress)[:40]
            if not self.live:
                self._print(f"{self._clock(at)}  progress {info.task_id}: {row.progress}")
            return
        if kind is RunEventKind.TASK_STARTED:
            row.started = at
        elif info.status.is_final:
            row.ended = at
            row.error = info.error
        if kind is RunEventKind.APPROVAL_REQUESTED:
            if not self.live:
                self._print(f"{self._clock(at)}  approval {info.task_id}: {_request(info, extra)}")
        elif not self.live and kind is not RunEventKind.TASK_SUBMITTED:
            detail = f" ({info.error})" if info.error else ""
            attempt = f" attempt {info.attempt}" if info.attempt > 1 else ""
            what = kind.value.removeprefix("task_")
            self._print(f"{self._clock(at)} {what:>9} {info.task_id}{attempt}{detail}")

    def note_decision(self, task_id: str, *, approved: bool, reason: str) -> None:
        """Show how a request of the run was decided (the stream has no event for it)."""
        row = self.rows.get(task_id)
        if approved and row is not None and row.status is TaskStatus.AWAITING_APPROVAL:
            row.status = TaskStatus.PENDING  # its `started` event follows
        if not self.live:
            verdict = "approved" if approved else "rejected"
            detail = f" ({reason})" if reason else ""
            self._print(f"{self._clock(time.time())}  {verdict} {task_id}{detail}")

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    # -- rendering ----------------------------------------------------------------------------

    def _clock(self, at: float) -> str:
        return f"[{at - self._started:6.2f}s]"

    def render(self) -> Group:
        now = time.time()
        table = Table(title=f"{self.title} — tasks", title_justify="left", expand=False)
        for column in ("task", "target", "status", "attempt", "elapsed"):
            table.add_column(
                column, justify="right" if column in ("attempt", "elapsed") else "left"
            )
        for row in self.rows.values():
            table.add_row(
                row.task_id,
                row.target,
                Text(
                    _LABELS.get(row.status, row.status.value)
                    + (f" {row.progress}" if row.progress and not row.status.is_final else ""),
                    style=_STATUS_STYLE[row.status],
                ),
                str(row.attempt or "-"),
                row.elapsed(now),
            )
        steps = Text()
        for line in self.steps[-6:]:
            steps.append(f"step {line.number} ({line.seconds:.2f}s) ", style="bold")
            steps.append(line.summary + "\n")
            if line.mark:
                steps.append(f"{line.mark}\n", style="dim" if line.interrupted else "red")
        if self._writing is not None:
            number, text = self._writing
            words = " ".join(text.split())[-SUMMARY_WIDTH:]
            steps.append(f"step {number} writing: ", style="bold")
            steps.append(words + "\n", style="dim")
        elif not self.steps:
            steps.append("controller is working on its first step...", style="dim")
        return Group(table, Text("controller steps", style="bold underline"), steps)

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            if not self._paused:
                self._live.update(self.render(), refresh=True)
            await asyncio.sleep(REFRESH_SECONDS)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Stop redrawing the live table for the block (to ask a question on the terminal);
        it is drawn again, up to date, afterwards. Plain output needs no pause."""
        live = self._live
        if live is None or self._paused:
            yield
            return
        self._paused = True
        live.update(self.render())  # drawn once more by `stop`, up to date
        live.stop()
        try:
            yield
        finally:
            live.update(self.render())
            live.start(refresh=True)
            self._paused = False

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[RunView]:
        """Show the view for the duration of the block; feed it with `on_event`."""
        self._owner = asyncio.current_task()  # cancelled by Ctrl-C (asyncio.run's handler)
        self._started = time.time()
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
            if refresher is not None:
                refresher.cancel()
                await asyncio.gather(refresher, return_exceptions=True)
            if self._live is not None:
                self._live.update(self.render(), refresh=True)
                self._live.stop()
                self._live = None


def argument_text(value: Any) -> str:
    """An approval request's argument as a person reads it: its JSON (`"prod"`, `[1, 2]`)."""
    return json.dumps(value, ensure_ascii=False)


def _request(info: TaskEventInfo, extra: dict[str, Any]) -> str:
    """`deploy(env='prod') awaits a decision`, plus who asked when a managed agent did."""
    arguments = ", ".join(
        f"{k}={argument_text(v)}" for k, v in dict(extra.get("arguments") or {}).items()
    )
    asked_by = list(extra.get("asked_by") or [])
    who = f" (asked by {' > '.join(asked_by)})" if len(asked_by) > 1 else ""
    return f"{info.target}({shorten(arguments, SUMMARY_WIDTH)}) awaits a decision{who}"


def _step_line(step: StepInfo) -> StepLine:
    code = (step.code or "").strip().splitlines()
    if code:
        more = f"  (+{len(code) - 1} lines)" if len(code) > 1 else ""
        summary = shorten(code[0], SUMMARY_WIDTH - len(more)) + more
    elif step.error is None and step.observation is None:
        # smolagents runs step callbacks before the model call's error propagates (it never
        # sets the step's error for it): the run's own error follows this line.
        summary = _NO_OUTPUT
    else:
        summary = "(no code)"
    error = shorten((step.error.splitlines() or [""])[0], ERROR_WIDTH) if step.error else None
    return StepLine(
        number=step.number, seconds=float(step.duration or 0.0), summary=summary, error=error
    )
