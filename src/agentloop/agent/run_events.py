"""What a stream of a run carries: `RunEvent`s of a `RunEventKind`, with the step or task
details they describe. Plain values, JSON-safe through `RunEvent.to_dict()` (versioned by
`EVENT_SCHEMA_VERSION`); the stream that hands them out is `agentloop.agent.stream`."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from .._text import json_value
from ..tasks import TaskEventKind, TaskProgress, TaskStatus

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "PREVIEW_CHARS",
    "TASK_KINDS",
    "TEXT_CHARS",
    "ModelDelta",
    "RunEvent",
    "RunEventKind",
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
    MODEL_DELTA = "model_delta"
    MODEL_FALLBACK = "model_fallback"
    TASK_SUBMITTED = "task_submitted"
    TASK_STARTED = "task_started"
    TASK_RETRIED = "task_retried"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    TASK_TIMED_OUT = "task_timed_out"
    TASK_PROGRESS = "task_progress"
    APPROVAL_REQUESTED = "approval_requested"
    EVENTS_DROPPED = "events_dropped"
    FINAL_ANSWER = "final_answer"
    MODEL_RETRIED = "model_retried"
    RUN_FAILED = "run_failed"
    RUN_PARKED = "run_parked"
    """The run parked (`park_after=`): this stream ends, the run does not. `approval_ids`
    are the tasks it waits on; a decision resumes it (`agent.decide`, `agent.resume`)."""

    @property
    def is_end(self) -> bool:
        return self in (RunEventKind.FINAL_ANSWER, RunEventKind.RUN_FAILED)


TASK_KINDS = {
    TaskEventKind.SUBMITTED: RunEventKind.TASK_SUBMITTED,
    TaskEventKind.APPROVAL_REQUESTED: RunEventKind.APPROVAL_REQUESTED,
    TaskEventKind.STARTED: RunEventKind.TASK_STARTED,
    TaskEventKind.RETRIED: RunEventKind.TASK_RETRIED,
    TaskEventKind.COMPLETED: RunEventKind.TASK_COMPLETED,
    TaskEventKind.FAILED: RunEventKind.TASK_FAILED,
    TaskEventKind.CANCELLED: RunEventKind.TASK_CANCELLED,
    TaskEventKind.TIMED_OUT: RunEventKind.TASK_TIMED_OUT,
    TaskEventKind.PROGRESS: RunEventKind.TASK_PROGRESS,
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

    def as_dict(self) -> dict[str, Any]:
        """Its fields by name (written out: `dataclasses.asdict` costs ~10x as much, and
        every streamed event pays it)."""
        return {
            "number": self.number,
            "code": self.code,
            "observation": self.observation,
            "error": self.error,
            "duration": self.duration,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelDelta:
    """Text the model has written so far in a step, as it writes it: the `step` it belongs
    to (the number its `step` event will have) and the new `text`. Deltas a slow consumer
    has not read yet are merged into one, so `text` may hold several chunks."""

    step: int
    text: str


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
    progress: TaskProgress | None = None
    """How far the task got (`task_progress` events)."""

    def as_dict(self) -> dict[str, Any]:
        """Its fields by name, the status as its value, the progress only when there is one
        (only `task_progress` events carry one)."""
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "target": self.target,
            "status": self.status.value,
            "attempt": self.attempt,
            "error": self.error,
            "preview": self.preview,
        }
        if self.progress is not None:
            data["progress"] = asdict(self.progress)
        return data


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
    delta: ModelDelta | None = None
    task_event: TaskEventInfo | None = None
    answer: Any = None
    error: str | None = None
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """`{"version": 1, "kind": ..., "run_id": ..., "seq": ..., "at": ..., ...}`: only the
        fields the kind uses; strict JSON (`json.dumps(..., allow_nan=False)` accepts it): the
        answer keeps its shape, with what JSON cannot hold (NaN, objects) as strings."""
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
            data["step"] = self.step.as_dict()
        if self.delta is not None:  # `model_delta`: {"step": 3, "text": "..."}
            data["step"] = self.delta.step
            data["text"] = self.delta.text
        if self.task_event is not None:
            data["task_event"] = self.task_event.as_dict()
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
    """The answer as strict JSON: plain data as it is, what JSON cannot hold (NaN, objects) as
    a bounded string in its place; no user code runs (see `json_value`)."""
    return json_value(value)
