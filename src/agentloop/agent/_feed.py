"""The producer side of a `RunStream`: what the run's turn writes into, and the buffer the
stream reads from.

A `RunFeed` is fed from three places without ever blocking the run: task events arrive on the
loop from the scope's event bus (a listener), the model's text as it writes it on the loop
(the model is awaited there), step events from the controller thread (handed over with one
`call_soon_threadsafe`). It holds at most `max_buffered` events: a consumer that falls further
behind loses the oldest undelivered ones (never the final one), replaced by one
`events_dropped` marker that counts them.

Model deltas are many and small (a token or a few each), so they are coalesced rather than
dropped: a delta whose step already has the newest undelivered event gets its text appended to
that event. The rate is bounded too: after a delta wakes the consumer, the next one waits
until `DELTA_INTERVAL` has passed (gathering what the model writes meanwhile), so a model that
bursts a thousand chunks in a few milliseconds costs its reader a few wake-ups, not a thousand.
A consumer that keeps up with a model writing slower than that sees each chunk as the model
sent it; one that falls behind gets fewer, larger deltas, and the buffer grows by at most one
event per step however fast the model writes. The model never waits for the consumer.

It is kept apart from the public `RunStream` so that nothing a stream's user holds can write
events or relay approvals: the stream only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .._text import bounded, describe, json_value, preview, truncate
from ..core._approving import ASKING_PATH, PendingApproval
from ..core._budgets import RunBudget
from ..core._limited_model import ModelRetry
from ..core.approvals import ApprovalDecision
from ..engine.scope import RunScope
from ..errors import AgentloopError, JournalError
from ..tasks import TaskEvent, TaskEventKind, TaskStatus
from .run_events import (
    PREVIEW_CHARS,
    TASK_KINDS,
    TEXT_CHARS,
    ModelDelta,
    RunEvent,
    RunEventKind,
    StepInfo,
    TaskEventInfo,
)

__all__ = ["DELTA_INTERVAL", "RunFeed"]

DELTA_INTERVAL = 0.01
"""Least time between two wake-ups of a stream's reader for model deltas (at most 100 a
second per stream); what the model writes meanwhile joins the waiting delta."""


class RunFeed:
    """A run's events on their way to its stream, and the run's side of its approvals."""

    def __init__(self, max_buffered: int) -> None:
        self.buffer: deque[RunEvent] = deque()
        self.wakeup = asyncio.Event()
        self.dropped = 0
        self.ended = False
        self.run_id = ""
        self._max_buffered = max_buffered
        self._seq = 0
        self._scope: RunScope | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unlisten: Any = None
        self._budget: RunBudget | None = None
        self._relayed: dict[str, PendingApproval] = {}
        self._asked_by: tuple[str, ...] = ()
        self._open_delta: ModelDelta | None = None
        """The delta of the newest buffered event while it can still grow (see `on_delta`);
        its text is the join of `_delta_chunks`, done once, when the event is read or
        another event follows it."""
        self._delta_chunks: list[str] = []
        self.labels: Mapping[str, str] | None = None
        """Shown on `run_started` (see `astream(labels=...)`)."""
        self.handing_back = False
        """Set by `RunStream.hand_back()`: the run's cancellation hands it back (journal)."""
        self.recorder: Callable[[RunEvent], None] | None = None
        """Set for a journaled run: each event is also recorded (`_event_record`)."""
        self._delta_woke = 0.0
        """When a delta last woke the reader (`time.monotonic()`)."""
        self._delta_timer: asyncio.TimerHandle | None = None
        """The wake-up of a delta that waits out `DELTA_INTERVAL`."""
        self._muted = False
        """Set when the run parks: nothing more of this attempt is shown or recorded."""

    # -- what the run's turn calls --------------------------------------------------------------

    def opened(self, scope: RunScope, task: str, budget: RunBudget | None = None) -> None:
        """On the loop: the run's scope is open; follow its task events from now on."""
        self._scope = scope
        self._loop = asyncio.get_running_loop()
        self._asked_by = ASKING_PATH.get()
        self._budget = budget
        self.run_id = scope.scope_id
        self._unlisten = scope.listen(self._on_task_event).close
        extra = {"labels": dict(self.labels)} if self.labels else {}
        self._push(self._event(RunEventKind.RUN_STARTED, task=task, extra=extra))

    def resumed(self, previous: Any, replay: Any) -> None:
        """The run resumes an earlier attempt: say how much of it is replayed."""
        extra = {
            "attempt": int(getattr(previous, "attempts", 0)) + 1,
            "recorded_steps": int(replay.model_replies),
            "recorded_tasks": len(replay.outcomes),
        }
        self._push(self._event(RunEventKind.RUN_RESUMED, extra=extra))

    def relay_approval(self, pending: PendingApproval) -> None:
        """On the loop: a run nested in this one asks for approval; show it on this stream
        under an `approval_id` that names the asking agent, its run and its task."""
        request = pending.request
        if self._scope is None or request.asked_by == self._asked_by:
            return  # this run's own task: its task event shows it already
        asker = request.asked_by[-1] if request.asked_by else "agent"
        approval_id = f"{asker}.{request.run_id}.{request.task_id}"
        self._relayed[approval_id] = pending
        info = TaskEventInfo(
            task_id=request.task_id,
            target=request.target,
            status=TaskStatus.AWAITING_APPROVAL,
            attempt=0,
        )
        arguments = list(request.arguments.items())[:20]
        extra = {
            "approval_id": approval_id,
            "arguments": _json_arguments(arguments),
            "asked_by": list(request.asked_by),
        }
        self._push(self._event(RunEventKind.APPROVAL_REQUESTED, task_event=info, extra=extra))

    def on_step(self, step: Any, **_: Any) -> None:
        """A smolagents step callback, in the controller thread: render here, push on the loop."""
        usage = getattr(step, "token_usage", None)
        timing = getattr(step, "timing", None)
        error = getattr(step, "error", None)
        info = StepInfo(
            number=int(getattr(step, "step_number", 0) or 0),
            code=_bounded_text(getattr(step, "code_action", None)),
            observation=_bounded_text(getattr(step, "observations", None)),
            error=_bounded_text(str(error)) if error is not None else None,
            duration=getattr(timing, "duration", None),
            input_tokens=getattr(usage, "input_tokens", None),
            output_tokens=getattr(usage, "output_tokens", None),
        )
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._push_step, info)

    def on_delta(self, step: int, text: str) -> None:
        """On the loop: the model wrote `text` in step `step` (see the module's coalescing)."""
        if not text or self.ended:
            return
        open_delta = self._open_delta
        if open_delta is not None and open_delta.step == step:  # not read yet: grow it
            self._delta_chunks.append(text)
            return
        event = self._event(RunEventKind.MODEL_DELTA, delta=ModelDelta(step=step, text=text))
        now = time.monotonic()
        wait = self._delta_woke + DELTA_INTERVAL - now
        if wait <= 0:
            self._delta_woke = now
            self._push(event)
        else:  # woken for a delta a moment ago: this one gathers text until the interval ends
            self._push(event, wake=False)
            if self._delta_timer is None and self._loop is not None:
                self._delta_timer = self._loop.call_later(wait, self._wake_for_deltas)
        self._open_delta = self.buffer[-1].delta
        self._delta_chunks = [text]

    def _wake_for_deltas(self) -> None:
        self._delta_timer = None
        self._delta_woke = time.monotonic()
        self.wakeup.set()

    def on_fallback(self, step: int, model: str, next_model: str, error: Exception) -> None:
        """On the loop: step `step`'s model call failed on `model` and goes to `next_model`;
        the words streamed for the step so far are void (the next model starts again)."""
        extra = {
            "step": step,
            "model": model,
            "next_model": next_model,
            "error": truncate(describe(error), PREVIEW_CHARS),
        }
        self._push(self._event(RunEventKind.MODEL_FALLBACK, extra=extra))

    def model_retried(self, retry: ModelRetry) -> None:
        """A model call of the run (or of a sub-agent of it) failed and will be retried: on
        the loop for an awaited call, from its worker thread for a blocking one."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._push_retry(retry)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._push_retry, retry)

    def _push_retry(self, retry: ModelRetry) -> None:
        self._push(self._event(RunEventKind.MODEL_RETRIED, extra=retry.as_dict()))

    def mute(self) -> None:
        """The run parks: show and record nothing more of this attempt (its interrupted step);
        its last event is `run_parked` (`end`)."""
        self._muted = True
        self.recorder = None

    # -- what the stream calls ------------------------------------------------------------------

    def answer(self, task_id: str, decision: ApprovalDecision) -> None:
        """Decide a task of this run (or a nested run's, relayed here) that awaits approval."""
        if self._scope is None:
            raise AgentloopError("the run has not started yet; it has no task to decide.")
        relayed = self._relayed.pop(task_id, None)
        if relayed is not None:  # a nested run's request, shown here (see `relay_approval`)
            relayed.answer(decision)
            return
        self._scope.answer_approval(task_id, decision)

    def end(self, kind: RunEventKind, **fields: Any) -> None:
        """The last event (never dropped); later ones are ignored."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.ended:
            return
        if self._budget is not None:
            fields["extra"] = {**fields.get("extra", {}), "usage": self._budget.as_dict()}
        self._close_delta()
        if self._delta_timer is not None:  # the reader is woken now, for everything
            self._delta_timer.cancel()
            self._delta_timer = None
        self.buffer.append(self._event(kind, **fields))
        self.ended = True
        self.wakeup.set()

    # -- the buffer -----------------------------------------------------------------------------

    def take(self) -> RunEvent:
        """The oldest buffered event (the stream's read; the buffer is not empty)."""
        if len(self.buffer) == 1:
            self._close_delta()
        return self.buffer.popleft()

    def _close_delta(self) -> None:
        """The newest event stops growing: its delta gets the text of all its chunks."""
        delta, chunks = self._open_delta, self._delta_chunks
        if delta is None:
            return
        self._open_delta = None
        self._delta_chunks = []
        if len(chunks) > 1:
            last = self.buffer[-1]
            self.buffer[-1] = dataclasses.replace(
                last, delta=ModelDelta(step=delta.step, text="".join(chunks))
            )

    def _push(self, event: RunEvent, *, wake: bool = True) -> None:
        """On the loop: buffer one event, dropping the oldest if the consumer is behind, and
        wake the consumer (unless a delta's timer will)."""
        if self.ended or self._muted:
            return
        if self.recorder is not None:
            try:
                self.recorder(event)
            except JournalError:  # the run's log failed: the run stops through `on_failure`
                self.recorder = None
        self._close_delta()
        if len(self.buffer) >= self._max_buffered:
            self._drop_oldest()
        self.buffer.append(event)
        if wake:
            self.wakeup.set()

    def _drop_oldest(self) -> None:
        """Drop the oldest undelivered event; one `events_dropped` marker at the head of the
        buffer (in the dropped event's place, with its seq) carries the running count."""
        buffer = self.buffer
        head = buffer[0]
        if head.kind is RunEventKind.EVENTS_DROPPED:
            if len(buffer) > 1:
                del buffer[1]
                self.dropped += 1
            buffer[0] = dataclasses.replace(head, dropped=self.dropped)
            return
        buffer.popleft()
        self.dropped += 1
        marker = RunEvent(
            kind=RunEventKind.EVENTS_DROPPED,
            run_id=self.run_id,
            seq=head.seq,
            at=time.time(),
            dropped=self.dropped,
        )
        if buffer:  # the marker takes the next event's place too, so the bound holds
            buffer.popleft()
            self.dropped += 1
            marker = dataclasses.replace(marker, dropped=self.dropped)
        buffer.appendleft(marker)

    def _event(self, kind: RunEventKind, **fields: Any) -> RunEvent:
        self._seq += 1
        return RunEvent(kind=kind, run_id=self.run_id, seq=self._seq, at=time.time(), **fields)

    def _on_task_event(self, event: TaskEvent) -> None:
        info = TaskEventInfo(
            task_id=event.task_id,
            target=event.target_name,
            status=event.status,
            attempt=event.attempt,
            error=truncate(event.error, PREVIEW_CHARS) if event.error else None,
            preview=self._result_preview(event),
            progress=event.progress,
        )
        extra: dict[str, Any] = {}
        if event.kind is TaskEventKind.APPROVAL_REQUESTED:
            extra = self._approval_details(event.task_id)
        elif event.kind is TaskEventKind.SUBMITTED:  # what a UI shows as the call's arguments
            extra = self._submitted_arguments(event.task_id)
        self._push(self._event(TASK_KINDS[event.kind], task_event=info, extra=extra))

    def _approval_details(self, task_id: str) -> dict[str, Any]:
        """What the person deciding sees: the arguments (bounded) and who asked."""
        request = self._scope.approval_request(task_id) if self._scope is not None else None
        if request is None:
            return {}
        arguments = list(request.arguments.items())[:20]
        return {
            "approval_id": task_id,
            "arguments": _json_arguments(arguments),
            "asked_by": list(request.asked_by),
        }

    def _submitted_arguments(self, task_id: str) -> dict[str, Any]:
        """A submitted task's arguments (bounded JSON values, as an approval shows them)."""
        if self._scope is None:
            return {}
        try:
            arguments = self._scope.peek(task_id).arguments or {}
        except Exception:  # evicted already: no arguments to show
            return {}
        return {"arguments": _json_arguments(list(arguments.items())[:20])}

    def _result_preview(self, event: TaskEvent) -> str | None:
        if event.kind is not TaskEventKind.COMPLETED or self._scope is None:
            return None
        try:
            return preview(self._scope.peek(event.task_id).result, PREVIEW_CHARS)
        except Exception:  # evicted already: no preview
            return None

    def _push_step(self, info: StepInfo) -> None:
        self._push(self._event(RunEventKind.STEP, step=info))


def _json_arguments(arguments: list[tuple[str, Any]]) -> dict[str, Any]:
    """A request's arguments as the JSON values a UI can use (bounded: long strings cut,
    big containers shortened); only what JSON cannot hold becomes a string."""
    return {
        name: json_value(value, text_limit=PREVIEW_CHARS, items=20, depth=4)
        for name, value in arguments
    }


def _bounded_text(value: Any) -> str | None:
    return None if value is None else bounded(str(value), TEXT_CHARS)
