"""agentloop's own spans, through the OpenTelemetry API only.

Nothing is installed behind the user's back: spans go to the tracer provider passed in, or to
the global one. While no SDK provider is configured (the API's proxy is still in place), no span
is even started, so tracing costs nothing until someone listens.

Span names and attributes follow the OpenTelemetry GenAI conventions where they apply
(`execute_tool {name}`, `invoke_agent {name}`, `gen_ai.*`), alongside `agentloop.*` names, and
the OpenInference ones beside them (`openinference.span.kind`, `input.value`, `output.value` and
their mime types, bounded): Phoenix lists spans by those, and shows a run span without them as
input "--", output "--", status "Unset".

Where the spans go when no provider is passed and the global one is still the API's proxy: to
the provider openinference's smolagents instrumentation was given, if it was given one (the
Phoenix snippet of docs/tracing.md, `register(..., set_global_tracer_provider=False)`; see
`_openinference`), else nowhere, and agentloop says once how to pass `tracer_provider=`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ..tasks import TaskStatus, TaskType
from . import _openinference
from ._values import TEXT, span_value

__all__ = ["TracedTarget", "TracedTask", "Tracing"]


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


class TracedTarget(Protocol):
    """What a task's span says of its target."""

    @property
    def name(self) -> str: ...
    @property
    def task_type(self) -> TaskType: ...


class TracedTask(Protocol):
    """What a task's span reads of the engine's record of it, and the two fields it sets.

    A protocol, not the engine's record class: tracing sits below the engine and knows
    nothing of it."""

    span: Span | None
    span_context: SpanContext | None

    @property
    def task_id(self) -> str: ...
    @property
    def scope_id(self) -> str: ...
    @property
    def target(self) -> TracedTarget: ...
    @property
    def arguments(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> float: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def completed_at(self) -> float | None: ...
    @property
    def status(self) -> TaskStatus: ...
    @property
    def attempts(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def result(self) -> Any: ...
    @property
    def error(self) -> str | None: ...


_TRACER_NAME = "agentloop"
GLOBAL_PROVIDER_RECHECK_S = 0.5
logger = logging.getLogger("agentloop")
_OK = Status(StatusCode.OK)
T = TypeVar("T")

_NO_PROVIDER_FOUND = (
    "agentloop emits no spans: openinference's SmolagentsInstrumentor is instrumenting, but no "
    "`tracer_provider=` was given to agentloop, the global OpenTelemetry provider is not set, and "
    "the instrumentor has no SDK provider agentloop can share. Pass the provider your spans go "
    "to, e.g. `tracer_provider = register(...)` then "
    "`create_async_agent(..., tracer_provider=tracer_provider)` (or `TaskRegistry(..., "
    "tracer_provider=...)`), or call `register(..., set_global_tracer_provider=True)`."
)


class Tracing:
    """Creates agentloop's spans with one tracer, or none while tracing is not configured."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer: trace.Tracer | None = None
        self._global_set = False
        self._next_check = 0.0
        self._warned = False

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
        if self._global_set:
            return True
        shared = _openinference.provider()
        if shared is not None:
            self._provider, self._tracer = shared, None
            return True
        if not self._warned and _openinference.instrumentor_tracer() is not None:
            self._warned = True
            logger.warning(_NO_PROVIDER_FOUND)
        return False

    def add_event(self, name: str, attributes: dict[str, str | int | float | bool]) -> None:
        """An event on the current span (a model call's, when one is open): something that
        happened inside an operation, such as a retry or a move to a fallback model."""
        if self.enabled:
            trace.get_current_span().add_event(name, attributes)

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            from .._version import __version__

            provider = self._provider or trace.get_tracer_provider()
            self._tracer = provider.get_tracer(_TRACER_NAME, __version__)
        return self._tracer

    # -- tasks --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def task_span(self, record: TracedTask, upstream: Sequence[TracedTask]) -> Iterator[Span]:
        """The span of one task, current while it runs; a child of the submitter's span."""
        target = record.target
        is_agent = target.task_type is TaskType.MANAGED_AGENT
        operation = "invoke_agent" if is_agent else "execute_tool"
        # (each attribute costs the SDK ~1 us: the OpenInference names that would repeat a
        # GenAI one, or say nothing, are left out; `tests/tracing` pins what Phoenix needs)
        attributes: dict[str, str | int] = {
            "openinference.span.kind": "AGENT" if is_agent else "TOOL",
            "gen_ai.operation.name": operation,
            "agentloop.task.id": record.task_id,
            "agentloop.task.type": target.task_type.value,
            "agentloop.task.target": target.name,
            "agentloop.run.id": record.scope_id,
        }
        if record.arguments:
            attributes["input.value"], attributes["input.mime_type"] = span_value(record.arguments)
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
        span = self.tracer.start_span(
            f"{operation} {target.name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=int(record.created_at * 1e9),  # the span covers the queueing too
            record_exception=False,
            set_status_on_exception=False,
        )
        record.span = span
        record.span_context = span.get_span_context()
        # attached by hand, not `start_as_current_span`: two generator levels fewer per task
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            context.detach(token)
            record.span = None
            _set_outcome(span, record)
            span.end()

    @staticmethod
    def started(record: TracedTask) -> None:
        span = record.span
        if span is not None:
            queued = (record.started_at or record.created_at) - record.created_at
            span.set_attribute("agentloop.task.queued_ms", round(queued * 1000, 3))

    @staticmethod
    def retried(record: TracedTask, error: str, exception: BaseException | None) -> None:
        span = record.span
        if span is not None:
            span.add_event(
                "retry", {"agentloop.task.attempt": record.attempts, "agentloop.error": error}
            )
            if exception is not None:
                span.record_exception(exception, {"agentloop.task.attempt": record.attempts})

    @staticmethod
    def failed(record: TracedTask, exception: BaseException | None) -> None:
        span = record.span
        if span is not None and exception is not None:
            span.record_exception(exception, {"agentloop.task.attempt": record.attempts})

    @staticmethod
    def timed_out(record: TracedTask) -> None:
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

    def wait_span(
        self, records: Sequence[TracedTask], return_when: str
    ) -> contextlib.AbstractContextManager[Span | None]:
        """A span over a wait, linked to the task spans it waits for (launch, overlap, join).

        The awaited task ids are its input too: some viewers (Phoenix 20) drop span links.
        Without tracing, a shared no-op: a wait is on the hot path."""
        if not self.enabled:
            return _NO_SPAN
        return self._wait_span(records, return_when)

    @contextlib.contextmanager
    def _wait_span(self, records: Sequence[TracedTask], return_when: str) -> Iterator[Span]:
        links = [Link(r.span_context) for r in records if r.span_context is not None]
        span = self.tracer.start_span(
            "agentloop.wait",
            attributes={
                "openinference.span.kind": "CHAIN",
                "input.value": " ".join([r.task_id for r in records[:100]])[:4000],
                "agentloop.wait.tasks": len(records),
                "agentloop.wait.return_when": return_when,
            },
            links=links,
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, _error_text(exc)))
            raise
        else:
            span.set_status(_OK)
        finally:
            context.detach(token)
            span.end()

    async def traced_run(
        self,
        agent_name: str,
        run_id: str,
        task: str,
        run: Awaitable[T],
        attributes: Mapping[str, AttributeValue] | None = None,
        totals: Callable[[], Mapping[str, AttributeValue]] | None = None,
    ) -> T:
        """Await `run` (one agent run) inside its span: the task in, the answer out, a status
        (and `attributes`, e.g. that the run resumes a journaled one; `totals()` at the end,
        whether it answered or failed, e.g. what its models spent)."""
        with self.run_span(agent_name, run_id, task) as span:
            if span is not None and attributes:
                span.set_attributes(attributes)
            if span is None:
                return await run
            try:
                answer = await run
            except BaseException as exc:
                _set_totals(span, totals)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, _error_text(exc)))
                raise
            _set_totals(span, totals)
            text, mime = span_value(answer)
            span.set_attributes({"output.value": text, "output.mime_type": mime})
            span.set_status(Status(StatusCode.OK))
            return answer

    @contextlib.contextmanager
    def run_span(
        self, agent_name: str, run_id: str, task: str | None = None
    ) -> Iterator[Span | None]:
        """The span of one agent run (`arun`, `run`, or one turn of a session)."""
        if not self.enabled:
            yield None
            return
        attributes: dict[str, str] = {
            "openinference.span.kind": "AGENT",
            "agent.name": agent_name,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent_name,
            "agentloop.run.id": run_id,
        }
        if task is not None:
            attributes["input.value"] = span_value(task)[0]
            attributes["input.mime_type"] = TEXT
        with self.tracer.start_as_current_span(
            f"invoke_agent {agent_name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span


def _set_totals(span: Span, totals: Callable[[], Mapping[str, AttributeValue]] | None) -> None:
    if totals is None:
        return
    try:
        span.set_attributes(totals())
    except Exception:  # what the totals say is secondary: never fail the run for it
        logger.exception("could not read the run's totals for its span")


def _set_outcome(span: Span, record: TracedTask) -> None:
    outcome: dict[str, str | int | float] = {
        "agentloop.task.status": record.status.value,
        "agentloop.task.attempts": record.attempts,
    }
    if record.started_at is not None:
        end = record.completed_at or time.time()
        outcome["agentloop.task.run_ms"] = round((end - record.started_at) * 1000, 3)
    if record.status is TaskStatus.COMPLETED:
        if record.result is not None:
            text, mime = span_value(record.result)
            outcome["output.value"] = text
            if mime != TEXT:  # text/plain is what a viewer assumes without one
                outcome["output.mime_type"] = mime
        span.set_attributes(outcome)
        span.set_status(_OK)
    else:
        span.set_attributes(outcome)
        span.set_status(Status(StatusCode.ERROR, f"{record.status.value}: {record.error}"))


def _error_text(exc: BaseException) -> str:
    from .._text import describe  # bounded, and safe for a raising `__str__`

    return describe(exc)
