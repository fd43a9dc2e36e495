"""agentloop's own spans, through the OpenTelemetry API only.

Nothing is installed behind the user's back: spans go to the tracer provider passed in, or to
the global one. While no SDK provider is configured (the API's proxy is still in place), no span
is even started, so tracing costs nothing until someone listens.

Span names and attributes follow the OpenTelemetry GenAI conventions where they apply
(`execute_tool {name}`, `invoke_agent {name}`, `gen_ai.*`), alongside `agentloop.*` names.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from .tasks import TaskStatus, TaskType

if TYPE_CHECKING:
    from ._record import TaskRecord

__all__ = ["Tracing"]

_TRACER_NAME = "agentloop"
GLOBAL_PROVIDER_RECHECK_S = 0.5


class Tracing:
    """Creates agentloop's spans with one tracer, or none while tracing is not configured."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._global_set = False
        self._next_check = 0.0

    @property
    def enabled(self) -> bool:
        """True when spans would be recorded somewhere. Checked per task, so it is cheap:
        asking the API for the global provider costs about a microsecond (it reads the
        environment), so while none is set the answer is re-checked at most twice a second;
        once one is set it stays set (the API allows setting it only once)."""
        if self._provider is not None or self._global_set:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + GLOBAL_PROVIDER_RECHECK_S
        self._global_set = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        return self._global_set

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            from ._version import __version__

            provider = self._provider or trace.get_tracer_provider()
            self._tracer = provider.get_tracer(_TRACER_NAME, __version__)
        return self._tracer

    # -- tasks --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def task_span(self, record: TaskRecord, upstream: Sequence[TaskRecord]) -> Iterator[Span]:
        """The span of one task, current while it runs; a child of the submitter's span."""
        target = record.target
        is_agent = target.task_type is TaskType.MANAGED_AGENT
        operation = "invoke_agent" if is_agent else "execute_tool"
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": operation,
            "agentloop.task.id": record.task_id,
            "agentloop.task.type": target.task_type.value,
            "agentloop.task.target": target.name,
            "agentloop.run.id": record.scope_id,
        }
        if is_agent:
            attributes["gen_ai.agent.name"] = target.name
        else:
            attributes["gen_ai.tool.name"] = target.name
            attributes["gen_ai.tool.call.id"] = record.task_id
            attributes["gen_ai.tool.type"] = "function"
        links = [
            Link(up.span_context, {"agentloop.link": "depends_on"})
            for up in upstream
            if up.span_context is not None
        ]
        with self.tracer.start_as_current_span(
            f"{operation} {target.name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            record.span = span
            record.span_context = span.get_span_context()
            try:
                yield span
            finally:
                record.span = None
                _set_outcome(span, record)

    @staticmethod
    def started(record: TaskRecord) -> None:
        span = record.span
        if span is not None:
            queued = (record.started_at or record.created_at) - record.created_at
            span.set_attribute("agentloop.task.queued_ms", round(queued * 1000, 3))

    @staticmethod
    def retried(record: TaskRecord, error: str, exception: BaseException | None) -> None:
        span = record.span
        if span is not None:
            span.add_event(
                "retry", {"agentloop.task.attempt": record.attempts, "agentloop.error": error}
            )
            if exception is not None:
                span.record_exception(exception, {"agentloop.task.attempt": record.attempts})

    @staticmethod
    def failed(record: TaskRecord, exception: BaseException | None) -> None:
        span = record.span
        if span is not None and exception is not None:
            span.record_exception(exception, {"agentloop.task.attempt": record.attempts})

    @staticmethod
    def timed_out(record: TaskRecord) -> None:
        span = record.span
        if span is not None:
            span.add_event(
                "timeout",
                {
                    "agentloop.task.attempt": record.attempts,
                    "agentloop.timeout_s": record.timeout or 0,
                },
            )

    # -- waits and runs -----------------------------------------------------------------------

    @contextlib.contextmanager
    def wait_span(self, records: Sequence[TaskRecord], return_when: str) -> Iterator[Span | None]:
        """A span over a wait, linked to the task spans it waits for (launch, overlap, join)."""
        if not self.enabled:
            yield None
            return
        links = [Link(r.span_context) for r in records if r.span_context is not None]
        with self.tracer.start_as_current_span(
            "agentloop.wait",
            attributes={
                "agentloop.wait.tasks": len(records),
                "agentloop.wait.return_when": return_when,
            },
            links=links,
        ) as span:
            yield span

    @contextlib.contextmanager
    def run_span(self, agent_name: str, run_id: str) -> Iterator[Span | None]:
        """The span of one agent run (`arun`, `run`, or one turn of a session)."""
        if not self.enabled:
            yield None
            return
        with self.tracer.start_as_current_span(
            f"invoke_agent {agent_name}",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent_name,
                "agentloop.run.id": run_id,
            },
        ) as span:
            yield span


def _set_outcome(span: Span, record: TaskRecord) -> None:
    outcome: dict[str, str | int | float] = {
        "agentloop.task.status": record.status.value,
        "agentloop.task.attempts": record.attempts,
    }
    if record.started_at is not None:
        end = record.completed_at or time.time()
        outcome["agentloop.task.run_ms"] = round((end - record.started_at) * 1000, 3)
    span.set_attributes(outcome)
    if record.status is not TaskStatus.COMPLETED:
        span.set_status(Status(StatusCode.ERROR, f"{record.status.value}: {record.error}"))
