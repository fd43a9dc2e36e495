"""What the service's JSON says about a run, folded from its events.

A run's tasks, its pending approvals, its steps and usage are read from its events, which are
the same wherever they are read (this process's memory or the journal): so any replica gives
the same answer about any run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunFacts", "fold"]

_ENDED_TASK = {"task_completed", "task_failed", "task_cancelled", "task_timed_out"}


@dataclass
class RunFacts:
    """What a run's events say so far."""

    labels: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pending ones, by approval id."""
    steps: int = 0
    usage: Any = None
    answer: Any = None
    error: str | None = None
    ended: str | None = None
    """The kind of the end event (`final_answer`, `run_failed`), or `run_parked`."""

    def add(self, data: Mapping[str, Any]) -> None:
        kind = data.get("kind")
        at = data.get("at")
        if kind == "run_started":
            labels = data.get("labels")
            if isinstance(labels, Mapping):
                self.labels = {str(k): str(v) for k, v in labels.items()}
        elif kind == "run_resumed":
            self.ended = None
        elif kind == "step":
            self.steps += 1
        elif kind in ("final_answer", "run_failed"):
            self.ended = str(kind)
            self.usage = data.get("usage")
            self.answer = data.get("answer")
            self.error = data.get("error")
            self._close_tasks(at)
            self.approvals.clear()
        elif kind == "run_parked":
            self.ended = "run_parked"
        task_event = data.get("task_event")
        if isinstance(task_event, Mapping):
            self._task(str(kind), task_event, data, at)

    def _task(self, kind: str, event: Mapping[str, Any], data: Mapping[str, Any], at: Any) -> None:
        task_id = str(event.get("task_id"))
        if kind == "approval_requested":
            approval_id = str(data.get("approval_id") or task_id)
            self.approvals[approval_id] = {
                "approval_id": approval_id,
                "task_id": task_id,
                "target": event.get("target"),
                "arguments": data.get("arguments", {}),
                "asked_by": data.get("asked_by", []),
                "requested_at": at,
            }
            if approval_id != task_id:  # a nested run's task: not one of this run's
                return
        else:
            self.approvals.pop(task_id, None)
        task = self.tasks.setdefault(
            task_id,
            {"task_id": task_id, "target": event.get("target"), "submitted_at": at,
             "started_at": None, "ended_at": None, "error": None, "preview": None},
        )  # fmt: skip
        task["status"] = event.get("status")
        task["attempt"] = event.get("attempt")
        if kind == "task_started" and task["started_at"] is None:
            task["started_at"] = at
        if kind in _ENDED_TASK:
            task["ended_at"] = at
            task["error"] = event.get("error")
            task["preview"] = event.get("preview")

    def _close_tasks(self, at: Any) -> None:
        """A run that ended leaves no task going (a stopped run's tasks were cancelled)."""
        for task in self.tasks.values():
            if task.get("ended_at") is None:
                task["status"] = "cancelled"
                task["ended_at"] = at


def fold(events: Iterable[Mapping[str, Any]]) -> RunFacts:
    facts = RunFacts()
    for data in events:
        facts.add(data)
    return facts
