"""Streaming a run: `RunStream`, an async iterator of typed `RunEvent`s.

A stream is the run seen from outside while it happens: the run's start, each model step (the
code the model wrote and what it observed), every task event of the run, and its end (the
final answer or the failure). It is fed from two places without ever blocking the run: task
events arrive on the loop from the engine's event bus (a listener, called as each event is
published), step events from the controller thread (handed over with one
`call_soon_threadsafe`). Nobody listening costs `arun` nothing: the bus builds no event while
it has no listener.

Buffering policy: a stream holds at most `max_buffered` events. A consumer that falls further
behind loses the *oldest* undelivered events (never the final one); the next event it reads is
then an `events_dropped` event that says how many were lost, so it knows its view has a gap.
The run itself never waits for the consumer.

Structured concurrency: the run belongs to the stream. Closing the stream (leaving its
`async with` block, `aclose()`, or `cancel()`) cancels the run and all its tasks, as cancelling
`arun` does; so does cancelling the task that consumes it inside `async with`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Final

from .._text import describe, preview, truncate
from ..core._approving import ASKING_PATH, PendingApproval
from ..core._budgets import RunBudget
from ..core.approvals import ApprovalDecision
from ..engine.scope import RunScope
from ..errors import AgentloopError
from ..tasks import TaskEvent, TaskEventKind, TaskStatus

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "RunEvent",
    "RunEventKind",
    "RunStream",
    "StepInfo",
    "TaskEventInfo",
]

EVENT_SCHEMA_VERSION: Final = 1
PREVIEW_CHARS = 300
"""Longest result or error preview an event carries."""
TEXT_CHARS = 4000
"""Longest code or observation text a step event carries."""


class RunEventKind(enum.StrEnum):
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    STEP = "step"
    TASK_SUBMITTED = "task_submitted"
    TASK_STARTED = "task_started"
    TASK_RETRIED = "task_retried"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    TASK_TIMED_OUT = "task_timed_out"
    APPROVAL_REQUESTED = "approval_requested"
    EVENTS_DROPPED = "events_dropped"
    FINAL_ANSWER = "final_answer"
    RUN_FAILED = "run_failed"

    @property
    def is_end(self) -> bool:
        return self in (RunEventKind.FINAL_ANSWER, RunEventKind.RUN_FAILED)


_TASK_KINDS = {
    TaskEventKind.SUBMITTED: RunEventKind.TASK_SUBMITTED,
    TaskEventKind.APPROVAL_REQUESTED: RunEventKind.APPROVAL_REQUESTED,
    TaskEventKind.STARTED: RunEventKind.TASK_STARTED,
    TaskEventKind.RETRIED: RunEventKind.TASK_RETRIED,
    TaskEventKind.COMPLETED: RunEventKind.TASK_COMPLETED,
    TaskEventKind.FAILED: RunEventKind.TASK_FAILED,
    TaskEventKind.CANCELLED: RunEventKind.TASK_CANCELLED,
    TaskEventKind.TIMED_OUT: RunEventKind.TASK_TIMED_OUT,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class StepInfo:
    """One model step of the controller."""

    number: int
    code: str | None
    observation: str | None
    error: str | None
    duration: float | None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskEventInfo:
    """One transition of one of the run's tasks."""

    task_id: str
    target: str
    status: TaskStatus
    attempt: int
    error: str | None = None
    preview: str | None = None
    """A bounded rendering of the result (completed tasks, plain data only)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunEvent:
    """One event of a run; `to_dict()` is its JSON-safe, versioned form."""

    kind: RunEventKind
    run_id: str
    seq: int
    at: float
    task: str | None = None
    """The run's task text (`run_started`)."""
    step: StepInfo | None = None
    task_event: TaskEventInfo | None = None
    answer: Any = None
    error: str | None = None
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """`{"version": 1, "kind": ..., "run_id": ..., "seq": ..., "at": ..., ...}`: only the
        fields the kind uses; the answer is JSON when it is JSON-able, else its bounded repr."""
        data: dict[str, Any] = {
            "version": EVENT_SCHEMA_VERSION,
            "kind": self.kind.value,
            "run_id": self.run_id,
            "seq": self.seq,
            "at": self.at,
        }
        if self.task is not None:
            data["task"] = self.task
        if self.step is not None:
            data["step"] = asdict(self.step)
        if self.task_event is not None:
            data["task_event"] = {**asdict(self.task_event), "status": self.task_event.status.value}
        if self.kind is RunEventKind.FINAL_ANSWER:
            data["answer"] = _json_safe(self.answer)
        if self.error is not None:
            data["error"] = self.error
        if self.kind is RunEventKind.EVENTS_DROPPED:
            data["dropped"] = self.dropped
        if self.extra:
            data.update(self.extra)
        return data


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return preview(value, TEXT_CHARS)
    return value


class RunStream:
    """An async iterator of a run's `RunEvent`s, and an async context manager that owns the
    run. Get one from `agent.astream(task)` or `session.astream(task)`; the run starts when
    the stream is entered or first iterated."""

    def __init__(
        self,
        start: Callable[[RunStream], Awaitable[Any]],
        *,
        max_buffered: int = 10_000,
    ) -> None:
        self._start_run = start
        self._buffer: deque[RunEvent] = deque()
        self._max_buffered = max_buffered
        self._wakeup = asyncio.Event()
        self._dropped = 0
        self._seq = 0
        self._run_id = ""
        self._scope: RunScope | None = None
        self._driver: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self._unlisten: Callable[[], None] | None = None
        self._budget: RunBudget | None = None
        self._relayed: dict[str, PendingApproval] = {}
        self._asked_by: tuple[str, ...] = ()

    # -- the run ------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id, once it has started."""
        return self._run_id

    @property
    def dropped(self) -> int:
        """Events lost because the consumer fell more than `max_buffered` behind."""
        return self._dropped

    def _ensure_started(self) -> asyncio.Task[Any]:
        if self._driver is None:
            self._loop = asyncio.get_running_loop()
            self._driver = self._loop.create_task(self._drive(), name="agentloop-stream")
            # Cancelled before its first step, the driver never reaches its own handlers:
            # end the stream here too, so a reader is never left waiting.
            self._driver.add_done_callback(self._driver_done)
        return self._driver

    def _driver_done(self, driver: asyncio.Task[Any]) -> None:
        if not self._ended:
            self._end(RunEventKind.RUN_FAILED, error="CancelledError: the run was cancelled")

    async def _drive(self) -> Any:
        try:
            answer = await self._start_run(self)
        except asyncio.CancelledError:
            self._end(RunEventKind.RUN_FAILED, error="CancelledError: the run was cancelled")
            raise
        except BaseException as exc:
            self._end(RunEventKind.RUN_FAILED, error=describe(exc))
            raise
        self._end(RunEventKind.FINAL_ANSWER, answer=answer)
        return answer

    async def result(self) -> Any:
        """The final answer (starting the run if needed); raises the run's error."""
        return await asyncio.shield(self._ensure_started())

    def approve(self, task_id: str, reason: str = "") -> None:
        """Approve a task of this run that awaits approval (once)."""
        self._answer(task_id, ApprovalDecision.approve(reason))

    def reject(self, task_id: str, reason: str) -> None:
        """Reject a task of this run that awaits approval; it fails with `reason`."""
        self._answer(task_id, ApprovalDecision.reject(reason))

    def _answer(self, task_id: str, decision: ApprovalDecision) -> None:
        if self._scope is None:
            raise AgentloopError("the run has not started yet; it has no task to decide.")
        relayed = self._relayed.pop(task_id, None)
        if relayed is not None:  # a nested run's request, shown here (see `relay_approval`)
            relayed.answer(decision)
            return
        self._scope.answer_approval(task_id, decision)

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
        extra = {
            "approval_id": approval_id,
            "arguments": {
                k: preview(v, PREVIEW_CHARS) for k, v in list(request.arguments.items())[:20]
            },
            "asked_by": list(request.asked_by),
        }
        self._push(self._event(RunEventKind.APPROVAL_REQUESTED, task_event=info, extra=extra))

    def cancel(self) -> None:
        """Cancel the run and all its tasks."""
        if self._driver is not None:
            self._driver.cancel()

    async def aclose(self) -> None:
        """Cancel the run if it is still going, and wait until it has ended."""
        driver = self._driver
        if driver is None:
            self._ended = True
            return
        if not driver.done():
            driver.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(asyncio.wait({driver}))
        if not driver.cancelled():
            driver.exception()  # retrieved: the consumer chose not to ask

    async def __aenter__(self) -> RunStream:
        self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- events -------------------------------------------------------------------------------

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        self._ensure_started()
        while not self._buffer:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._buffer.popleft()

    def _push(self, event: RunEvent) -> None:
        """On the loop: buffer one event, dropping the oldest if the consumer is behind."""
        if self._ended:
            return
        buffer = self._buffer
        if len(buffer) >= self._max_buffered:
            self._drop_oldest()
        buffer.append(event)
        self._wakeup.set()

    def _drop_oldest(self) -> None:
        """Drop the oldest undelivered event; one `events_dropped` marker at the head of the
        buffer (in the dropped event's place, with its seq) carries the running count."""
        buffer = self._buffer
        head = buffer[0]
        if head.kind is RunEventKind.EVENTS_DROPPED:
            if len(buffer) > 1:
                del buffer[1]
                self._dropped += 1
            buffer[0] = dataclasses.replace(head, dropped=self._dropped)
            return
        buffer.popleft()
        self._dropped += 1
        marker = RunEvent(
            kind=RunEventKind.EVENTS_DROPPED,
            run_id=self._run_id,
            seq=head.seq,
            at=time.time(),
            dropped=self._dropped,
        )
        if buffer:  # the marker takes the next event's place too, so the bound holds
            buffer.popleft()
            self._dropped += 1
            marker = dataclasses.replace(marker, dropped=self._dropped)
        buffer.appendleft(marker)

    def _event(self, kind: RunEventKind, **fields: Any) -> RunEvent:
        self._seq += 1
        return RunEvent(kind=kind, run_id=self._run_id, seq=self._seq, at=time.time(), **fields)

    def _end(self, kind: RunEventKind, **fields: Any) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._ended:
            return
        if self._budget is not None:
            fields["extra"] = {"usage": self._budget.as_dict()}
        self._buffer.append(self._event(kind, **fields))  # never dropped
        self._ended = True
        self._wakeup.set()

    # -- what the agent calls -----------------------------------------------------------------

    def opened(self, scope: RunScope, task: str, budget: RunBudget | None = None) -> None:
        """The run's scope is open: follow its task events from now on."""
        self._scope = scope
        self._asked_by = ASKING_PATH.get()
        self._budget = budget
        self._run_id = scope.scope_id
        self._unlisten = scope.listen(self._on_task_event).close
        self._push(self._event(RunEventKind.RUN_STARTED, task=task))

    def resumed(self, previous: Any, replay: Any) -> None:
        """The run resumes an earlier attempt: say how much of it is replayed."""
        self._push(
            self._event(
                RunEventKind.RUN_RESUMED,
                extra={
                    "attempt": int(getattr(previous, "attempts", 0)) + 1,
                    "recorded_steps": int(replay.model_replies),
                    "recorded_tasks": len(replay.outcomes),
                },
            )
        )

    def _on_task_event(self, event: TaskEvent) -> None:
        info = TaskEventInfo(
            task_id=event.task_id,
            target=event.target_name,
            status=event.status,
            attempt=event.attempt,
            error=truncate(event.error, PREVIEW_CHARS) if event.error else None,
            preview=self._result_preview(event),
        )
        extra: dict[str, Any] = {}
        if event.kind is TaskEventKind.APPROVAL_REQUESTED:
            extra = self._approval_details(event.task_id)
        self._push(self._event(_TASK_KINDS[event.kind], task_event=info, extra=extra))

    def _approval_details(self, task_id: str) -> dict[str, Any]:
        """What the person deciding sees: the arguments (bounded) and who asked."""
        request = self._scope.approval_request(task_id) if self._scope is not None else None
        if request is None:
            return {}
        arguments = list(request.arguments.items())[:20]
        return {
            "approval_id": task_id,
            "arguments": {name: preview(value, PREVIEW_CHARS) for name, value in arguments},
            "asked_by": list(request.asked_by),
        }

    def _result_preview(self, event: TaskEvent) -> str | None:
        if event.kind is not TaskEventKind.COMPLETED or self._scope is None:
            return None
        try:
            return preview(self._scope.get(event.task_id).result, PREVIEW_CHARS)
        except Exception:  # evicted already: no preview
            return None

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

    def _push_step(self, info: StepInfo) -> None:
        self._push(self._event(RunEventKind.STEP, step=info))


def _bounded_text(value: Any) -> str | None:
    if value is None:
        return None
    return truncate(str(value), TEXT_CHARS, say_how_much=True)
