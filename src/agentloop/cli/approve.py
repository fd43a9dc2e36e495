"""Who decides approvals in the CLI: the demo's scripted reviewer, a terminal prompt, or no one.

All three see requests through the run's event stream (the `approval_requested` event is a
sink's input, like the view's) and tell the view how they decided (`RunView.note_decision`),
since the stream carries no event for a decision.

- `ScriptedReviewer` (the demo) is an `approver=` coroutine: it waits until the request has
  been shown (its sink sets a gate per task; sinks run in order, the view first), then "reviews"
  for a simulated moment, like the demo's tools simulate work, and approves.
- `TerminalApprovals` (`agentloop run --approve`) asks one question at a time on the terminal
  and answers through `stream.approve` / `stream.reject`. Lines are read by a daemon thread,
  never on the loop; not `asyncio.to_thread`, whose worker `asyncio.run` waits for at exit, so
  Ctrl-C during a question would hang until Enter. End of input rejects.
- `reject_unasked` (`agentloop run --needs-approval` without `--approve`) rejects at once, with a
  reason that tells the model (and the person reading the view) why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import IO, Any

from ..agent.stream import RunEvent, RunEventKind, RunStream
from ..core.approvals import ApprovalDecision, ApprovalRequest
from ..errors import AgentloopError
from .view import RunView, argument_text

__all__ = [
    "APPROVED_ON_TERMINAL",
    "NOT_ASKED",
    "REJECTED_ON_TERMINAL",
    "ScriptedReviewer",
    "TerminalApprovals",
    "reject_unasked",
]

logger = logging.getLogger("agentloop")

APPROVED_ON_TERMINAL = "approved on the terminal"
REJECTED_ON_TERMINAL = "rejected on the terminal"
NOT_ASKED = "needs a person's approval, and no one was asked (run with --approve to be asked)"
SHOWN_WITHIN = 5.0
"""How long the scripted reviewer waits for its request to be shown before deciding anyway
(an event the view fell behind on is dropped, not delayed)."""


class ScriptedReviewer:
    """The demo's approver: approves each request `review_seconds` after it was shown."""

    def __init__(self, view: RunView | None, review_seconds: float) -> None:
        self.view = view
        self.review_seconds = review_seconds
        self.decided: list[str] = []
        self._shown: dict[str, asyncio.Event] = {}

    def on_event(self, event: RunEvent) -> None:
        """A sink, after the view's: the request is on screen now."""
        if event.kind is RunEventKind.APPROVAL_REQUESTED and event.task_event is not None:
            self._gate(event.task_event.task_id).set()

    async def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHOWN_WITHIN):
                await self._gate(request.task_id).wait()
        await asyncio.sleep(self.review_seconds)  # simulated reading time, not synchronisation
        reason = "auto-approved by the demo"
        if self.view is not None:
            self.view.note_decision(request.task_id, approved=True, reason=reason)
        self.decided.append(request.task_id)
        return ApprovalDecision.approve(reason)

    def _gate(self, task_id: str) -> asyncio.Event:
        return self._shown.setdefault(task_id, asyncio.Event())


def reject_unasked(view: RunView | None) -> Any:
    """An approver that rejects every request at once (no `--approve`)."""

    async def reject(request: ApprovalRequest) -> ApprovalDecision:
        if view is not None:
            view.note_decision(request.task_id, approved=False, reason=NOT_ASKED)
        return ApprovalDecision.reject(NOT_ASKED)

    return reject


class TerminalApprovals:
    """Asks on the terminal for each approval request of a stream, one at a time."""

    def __init__(
        self, stream: RunStream, view: RunView | None, prompt_out: IO[str], answers: IO[str]
    ) -> None:
        self.stream = stream
        self.view = view
        self.prompt_out = prompt_out
        self.answers = answers
        self._turn = asyncio.Lock()
        self._asking: set[asyncio.Task[None]] = set()

    def on_event(self, event: RunEvent) -> None:
        """A sink: an `approval_requested` event starts a question (asked in turn)."""
        if event.kind is RunEventKind.APPROVAL_REQUESTED and event.task_event is not None:
            task = asyncio.create_task(self._ask(event))
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)

    async def aclose(self) -> None:
        """Withdraw the questions not answered yet (the run is over)."""
        for task in list(self._asking):
            task.cancel()
        await asyncio.gather(*self._asking, return_exceptions=True)

    async def _ask(self, event: RunEvent) -> None:
        assert event.task_event is not None
        info = event.task_event
        approval_id = str(event.extra.get("approval_id", info.task_id))
        arguments = dict(event.extra.get("arguments") or {})
        asked_by = list(event.extra.get("asked_by") or [])
        who = f", asked by {' > '.join(asked_by)}" if len(asked_by) > 1 else ""
        shown = ", ".join(f"{name}={argument_text(value)}" for name, value in arguments.items())
        question = (
            f"approve `{info.target}` (task {approval_id}{who}) "
            f"with {shown or 'no arguments'}? [y/N] "
        )
        async with self._turn:
            if self.view is not None:
                async with self.view.paused():
                    line = await self._read(question)
            else:
                line = await self._read(question)
        approved = line.strip().lower() in ("y", "yes")
        reason = APPROVED_ON_TERMINAL if approved else REJECTED_ON_TERMINAL
        if line == "":
            reason = f"{REJECTED_ON_TERMINAL} (no answer: end of input)"
        try:
            if approved:
                self.stream.approve(approval_id, reason)
            else:
                self.stream.reject(approval_id, reason)
        except AgentloopError as exc:  # decided meanwhile (timed out, or the run ended)
            self._say(f"answer for {approval_id} not taken: {exc}\n")
            return
        if self.view is not None:
            self.view.note_decision(info.task_id, approved=approved, reason=reason)

    async def _read(self, question: str) -> str:
        """One line of the answers, read off the loop ("" at end of input)."""
        self._say(question)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()

        def deliver(line: str) -> None:
            if not answer.done():
                answer.set_result(line)

        def read() -> None:
            try:
                line = self.answers.readline()
            except (OSError, ValueError):  # closed
                line = ""
            with contextlib.suppress(RuntimeError):  # the loop has ended meanwhile
                loop.call_soon_threadsafe(deliver, line)

        threading.Thread(target=read, name="agentloop-approval-prompt", daemon=True).start()
        try:
            return await answer
        except asyncio.CancelledError:  # the run ended (or Ctrl-C) before an answer came
            self._say("(question withdrawn)\n")
            raise

    def _say(self, text: str) -> None:
        self.prompt_out.write(text)
        self.prompt_out.flush()
