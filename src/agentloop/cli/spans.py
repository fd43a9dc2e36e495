"""The run's OpenTelemetry spans, kept in memory for the timeline and the `--trace` file.

The CLI is an application, so it owns an SDK tracer provider (the library never installs one).
Both the terminal timeline and the Chrome trace are built from these spans: there is no
parallel bookkeeping of task times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["SpanRecorder", "TaskInterval", "chrome_trace", "task_intervals"]

_NS_PER_US = 1000


@dataclass(frozen=True, slots=True)
class TaskInterval:
    """When one task ran, read from its span (seconds, relative to the earliest span)."""

    task_id: str
    target: str
    status: str
    attempts: int
    submitted: float
    started: float
    ended: float

    @property
    def duration(self) -> float:
        return self.ended - self.started


class SpanRecorder:
    """An SDK tracer provider whose finished spans stay in memory."""

    def __init__(self) -> None:
        self._exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self._exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def clear(self) -> None:
        self._exporter.clear()

    def shutdown(self) -> None:
        self.provider.shutdown()

    def write_chrome_trace(self, path: str | Path) -> int:
        """Write the spans as Chrome trace-event JSON; return how many events were written."""
        trace = chrome_trace(self.spans())
        Path(path).write_text(json.dumps(trace, indent=1))
        return len(trace["traceEvents"])


def _is_task(span: ReadableSpan) -> bool:
    return bool(span.attributes and "agentloop.task.id" in span.attributes)


def task_intervals(spans: Iterable[ReadableSpan]) -> list[TaskInterval]:
    """One interval per task span, ordered by start; times relative to the first span."""
    spans = list(spans)
    if not spans:
        return []
    origin = min(s.start_time or 0 for s in spans)
    intervals = []
    for span in spans:
        if not _is_task(span) or span.start_time is None or span.end_time is None:
            continue
        attrs = span.attributes or {}
        start = (span.start_time - origin) / 1e9
        end = (span.end_time - origin) / 1e9
        run_ms = _number(attrs.get("agentloop.task.run_ms"))
        began = max(start, end - run_ms / 1000) if run_ms else end
        intervals.append(
            TaskInterval(
                task_id=str(attrs["agentloop.task.id"]),
                target=str(attrs.get("agentloop.task.target", "")),
                status=str(attrs.get("agentloop.task.status", "")),
                attempts=int(_number(attrs.get("agentloop.task.attempts"))),
                submitted=start,
                started=began,
                ended=end,
            )
        )
    return sorted(intervals, key=lambda i: (i.started, i.task_id))


def _lanes(spans: list[ReadableSpan]) -> dict[int, int]:
    """Assign task spans to lanes (Chrome 'threads') so overlapping tasks sit on separate rows."""
    lane_ends: list[int] = []
    lanes: dict[int, int] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        start, end = span.start_time or 0, span.end_time or 0
        for lane, lane_end in enumerate(lane_ends):
            if lane_end <= start:
                lane_ends[lane] = end
                lanes[span.context.span_id] = lane
                break
        else:
            lanes[span.context.span_id] = len(lane_ends)
            lane_ends.append(end)
    return lanes


def chrome_trace(spans: Iterable[ReadableSpan]) -> dict[str, Any]:
    """The Chrome trace-event format (loads in Perfetto and chrome://tracing).

    Each span is one complete ("X") event. Controller spans (runs, waits, instrumented agent
    steps) sit on thread 1; task spans on threads 2..n, one lane per concurrently running task,
    so overlap is visible at a glance.
    """
    spans = [s for s in spans if s.start_time is not None and s.end_time is not None]
    origin = min((s.start_time or 0 for s in spans), default=0)
    tasks = [s for s in spans if _is_task(s)]
    lanes = _lanes(tasks)
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "agentloop run"}},
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "controller"}},
    ]
    for lane in sorted(set(lanes.values())):
        events.append(
            {
                "name": "thread_name",
                "ph": "M",
                "pid": 1,
                "tid": lane + 2,
                "args": {"name": f"tasks {lane + 1}"},
            }
        )
    for span in spans:
        start = span.start_time or 0
        attrs = {k: _jsonable(v) for k, v in (span.attributes or {}).items()}
        attrs["trace_id"] = f"{span.context.trace_id:032x}"
        attrs["span_id"] = f"{span.context.span_id:016x}"
        if span.parent is not None:
            attrs["parent_span_id"] = f"{span.parent.span_id:016x}"
        attrs["status"] = span.status.status_code.name
        events.append(
            {
                "name": span.name,
                "cat": "task" if _is_task(span) else "agent",
                "ph": "X",
                "ts": (start - origin) / _NS_PER_US,
                "dur": ((span.end_time or start) - start) / _NS_PER_US,
                "pid": 1,
                "tid": lanes[span.context.span_id] + 2 if _is_task(span) else 1,
                "args": attrs,
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return list(value) if isinstance(value, tuple) else str(value)
