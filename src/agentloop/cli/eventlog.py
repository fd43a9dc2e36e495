"""The runs' `RunEvent`s, kept in memory for the demo's timeline and the `--trace` file.

The live view, the timeline, the Chrome trace and `--events` all read the same event stream
(`agent.astream`): there is no second bookkeeping of task times. Each task's interval comes
from its own events' `at` stamps (submitted, the last start, the end); a controller step ends
at its event's `at` and lasted its `duration`.

What the trace does not show, because no event carries it: the controller's waits
(`wait_for_tasks`), the model calls inside a step, and a managed agent's own steps and tasks
(they happen in a nested run with its own scope). An app that wants those passes a tracer
provider to `create_async_agent` and exports the OpenTelemetry spans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agent.stream import RunEvent, RunEventKind

__all__ = ["EventLog", "TaskInterval", "chrome_trace", "task_intervals"]

_Complete = Callable[[str, str, float, float, int, dict[str, Any]], None]

_US = 1_000_000
_ARG_CHARS = 2000
"""Longest code or observation text copied into a trace event's args."""


@dataclass(frozen=True, slots=True)
class TaskInterval:
    """When one task ran, read from its events (seconds, relative to the run's first event)."""

    task_id: str
    target: str
    status: str
    attempts: int
    submitted: float
    started: float
    """The start of its last attempt (its end, if it never started)."""
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started


class EventLog:
    """Every event seen, one list per run, in order; a sink for `follow`.

    Runs are told apart by their `run_started` event, not by `run_id`: an id is unique within
    one agent only, and the demo runs a fresh agent per plan (each one's first run is `run_1`).
    The CLI runs one run at a time, so each event belongs to the latest run started."""

    def __init__(self) -> None:
        self.runs: list[list[RunEvent]] = []

    def add(self, event: RunEvent) -> None:
        if event.kind is RunEventKind.MODEL_DELTA:
            return  # the step's event says what the model wrote; the trace needs no words
        if event.kind is RunEventKind.RUN_STARTED or not self.runs:
            self.runs.append([])
        self.runs[-1].append(event)

    @property
    def last_run(self) -> list[RunEvent]:
        return self.runs[-1] if self.runs else []

    def write_chrome_trace(self, path: str | Path, *, process: str = "agentloop") -> int:
        """Write the runs as Chrome trace-event JSON; return how many trace events."""
        trace = chrome_trace(self.runs, process=process)
        Path(path).write_text(json.dumps(trace, indent=1))
        return len(trace["traceEvents"])


@dataclass(slots=True)
class _Task:
    task_id: str
    target: str
    submitted: float
    status: str = "pending"
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str | None = None


def _tasks(run: Iterable[RunEvent]) -> list[_Task]:
    """Fold one run's task events into one record per task (absolute `at` times)."""
    tasks: dict[str, _Task] = {}
    run_end: float | None = None
    for event in run:
        if event.kind.is_end:
            run_end = event.at
        info = event.task_event
        if info is None:
            continue
        task = tasks.get(info.task_id)
        if task is None:
            task = tasks[info.task_id] = _Task(info.task_id, info.target, event.at)
        task.status = info.status.value
        task.attempts = max(task.attempts, info.attempt)
        if event.kind is RunEventKind.TASK_STARTED:
            task.started = event.at
        elif info.status.is_final:
            task.ended = event.at
            task.error = info.error
    for task in tasks.values():  # no end event (dropped, or the run died): end with the run
        if task.ended is None:
            task.ended = run_end if run_end is not None else (task.started or task.submitted)
    return list(tasks.values())


def task_intervals(run: Sequence[RunEvent]) -> list[TaskInterval]:
    """One interval per task of one run, ordered by start; times relative to its first event."""
    if not run:
        return []
    origin = min(e.at for e in run)
    intervals = []
    for task in _tasks(run):
        ended = task.ended if task.ended is not None else task.submitted
        started = task.started if task.started is not None else ended
        intervals.append(
            TaskInterval(
                task_id=task.task_id,
                target=task.target,
                status=task.status,
                attempts=task.attempts,
                submitted=task.submitted - origin,
                started=started - origin,
                ended=ended - origin,
            )
        )
    return sorted(intervals, key=lambda i: (i.started, i.task_id))


def _lanes(spans: list[tuple[float, float]]) -> list[int]:
    """Assign intervals (sorted by start) to lanes so overlapping ones sit on separate rows."""
    lane_ends: list[float] = []
    lanes = []
    for start, end in spans:
        for lane, lane_end in enumerate(lane_ends):
            if lane_end <= start:
                lane_ends[lane] = end
                lanes.append(lane)
                break
        else:
            lanes.append(len(lane_ends))
            lane_ends.append(end)
    return lanes


def chrome_trace(
    runs: Sequence[Sequence[RunEvent]], *, process: str = "agentloop"
) -> dict[str, Any]:
    """The Chrome trace-event format (loads in Perfetto and chrome://tracing).

    One complete ("X") event per run and per controller step on thread 1, and one per task
    (from its last start to its end; `queued_s` says how long it waited before) on threads
    2..n, one lane per concurrently running task, so overlap is visible at a glance. Every
    event's args name its `run_id` and `run` (the run's index in `runs`).
    """
    origin = min((e.at for run in runs for e in run), default=0.0)
    out: list[dict[str, Any]] = []

    def complete(
        name: str, cat: str, start: float, end: float, tid: int, args: dict[str, Any]
    ) -> None:
        out.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": round((start - origin) * _US, 3),
                "dur": round(max(end - start, 0.0) * _US, 3),
                "pid": 1,
                "tid": tid,
                "args": args,
            }
        )

    tasks: list[tuple[int, str, _Task]] = []
    for index, run in enumerate(runs):
        _run_events(run, index, complete)
        tasks += [(index, run[0].run_id, task) for task in _tasks(run)]
    tasks.sort(key=lambda t: t[2].started or t[2].ended or t[2].submitted)
    spans = [(t.started or t.ended or t.submitted, t.ended or t.submitted) for _, _, t in tasks]
    lanes = _lanes(spans)
    for (index, run_id, task), (start, end), lane in zip(tasks, spans, lanes, strict=True):
        args: dict[str, Any] = {
            "run_id": run_id,
            "run": index,
            "task_id": task.task_id,
            "target": task.target,
            "status": task.status,
            "attempts": task.attempts,
            "queued_s": round(start - task.submitted, 6),
        }
        if task.error:
            args["error"] = task.error
        complete(task.task_id, "task", start, end, lane + 2, args)
    meta: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": process}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "controller"}},
    ]
    meta += [
        {
            "name": "thread_name",
            "ph": "M",
            "pid": 1,
            "tid": lane + 2,
            "args": {"name": f"tasks {lane + 1}"},
        }
        for lane in sorted(set(lanes))
    ]
    return {"traceEvents": meta + out, "displayTimeUnit": "ms"}


def _run_events(run: Sequence[RunEvent], index: int, complete: _Complete) -> None:
    """The run's own event and its steps', on the controller's thread."""
    begin = run[0] if run and run[0].kind is RunEventKind.RUN_STARTED else None
    for event in run:
        if event.kind.is_end and begin is not None:
            args: dict[str, Any] = {
                "run_id": event.run_id,
                "run": index,
                "task": _clip(begin.task),
                "outcome": event.kind.value,
            }
            if event.error:
                args["error"] = event.error
            complete(f"run {event.run_id}", "agent", begin.at, event.at, 1, args)
        elif event.step is not None:
            step = event.step
            args = {
                "run_id": event.run_id,
                "run": index,
                "code": _clip(step.code),
                "observation": _clip(step.observation),
                "error": step.error,
                "input_tokens": step.input_tokens,
                "output_tokens": step.output_tokens,
            }
            begin_at = event.at - (step.duration or 0.0)
            complete(f"step {step.number}", "agent", begin_at, event.at, 1, args)


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= _ARG_CHARS:
        return text
    return text[: _ARG_CHARS - 3] + "..."
