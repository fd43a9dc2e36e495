"""What agentloop needs to know about openinference's smolagents instrumentation, if it is on.

Three things, all read from the instrumentor only when its module is already imported (nothing
here imports openinference or smolagents, so this costs nothing for users without them):

- **Its tracer provider.** The usual Phoenix snippet (docs/tracing.md) calls
  `register(..., auto_instrument=True, set_global_tracer_provider=False)`, so the provider that
  `register()` built reaches openinference's `SmolagentsInstrumentor` (through the
  `openinference_instrumentor` entry points) and nobody else: agentloop, given no
  `tracer_provider=`, would see only the API's global proxy and emit nothing. Neither
  openinference (0.1.43, and its main branch as of 2026-08) nor the OpenTelemetry SDK offers a
  public way to ask an instrumentor or a tracer for its provider: `BaseInstrumentor.instrument`
  keeps no arguments, and an SDK `Tracer` holds its provider's pipeline (`span_processor`,
  `sampler`, `resource`, `id_generator`) but not the provider. So agentloop reads the tracer the
  instrumentor made (`SmolagentsInstrumentor()._tracer`, an `OITracer` proxy around an SDK
  `Tracer`) and builds a `TracerProvider` on the *same* span processor object through the SDK's
  public constructor (`active_span_processor=`): its spans go wherever openinference's go,
  including processors added to the `register()`ed provider later. If that attribute ever
  changes shape, `provider()` returns None and `Tracing` logs how to pass `tracer_provider=`.
- **Whether `Tool.__call__` is wrapped** by openinference (a wrapt wrapper from its module).
- **Whether a model's `generate` is wrapped** (so agentloop's own `chat` span would duplicate
  openinference's LLM span).

For async tools, `call_async_tool` replaces openinference's synchronous TOOL span (which would
end before the coroutine even starts, with `'<coroutine ...>'` as its output) with one that
covers the awaited work, made by openinference's own tracer, with its attribute names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ._values import span_value

__all__ = ["call_async_tool", "generate_is_instrumented", "instrumentor_tracer", "provider"]

_MODULE = "openinference.instrumentation.smolagents"


def _instrumentor() -> Any | None:
    """The instrumentor singleton when it has been instrumented, else None (never creates it)."""
    module = sys.modules.get(_MODULE)
    if module is None:
        return None
    instance = getattr(getattr(module, "SmolagentsInstrumentor", None), "_instance", None)
    if instance is None or not getattr(instance, "is_instrumented_by_opentelemetry", False):
        return None
    return instance


def instrumentor_tracer() -> trace.Tracer | None:
    """The tracer openinference's smolagents spans come from, when it is instrumenting."""
    instance = _instrumentor()
    tracer = getattr(instance, "_tracer", None) if instance is not None else None
    return tracer if isinstance(tracer, trace.Tracer) else None


def provider() -> trace.TracerProvider | None:
    """A provider that exports where openinference's smolagents spans go, or None.

    None when openinference is not instrumenting, or was instrumented without an SDK provider
    (its tracer is then the API's proxy: the global provider decides, and agentloop asks that).
    """
    tracer = instrumentor_tracer()
    sdk_tracer = getattr(tracer, "__wrapped__", tracer)
    processor = getattr(sdk_tracer, "span_processor", None)
    if processor is None or not callable(getattr(processor, "on_start", None)):
        return None
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(
        sampler=getattr(sdk_tracer, "sampler", None),
        resource=getattr(sdk_tracer, "resource", None),
        shutdown_on_exit=False,  # the pipeline is the user's provider's: it shuts it down
        active_span_processor=processor,
        id_generator=getattr(sdk_tracer, "id_generator", None),
        span_limits=getattr(sdk_tracer, "_span_limits", None),
    )


def _openinference_wrapper(owner: type, name: str) -> Any | None:
    """The wrapt wrapper openinference put on `owner.name` (found along the MRO), or None."""
    for klass in owner.__mro__:
        attribute = klass.__dict__.get(name)
        if attribute is not None:
            wrapper = getattr(attribute, "_self_wrapper", None)
            module = type(wrapper).__module__ if wrapper is not None else ""
            return attribute if module.startswith("openinference.") else None
    return None


def generate_is_instrumented(model: Any) -> bool:
    """Whether openinference makes an LLM span for `model.generate` (then agentloop does not)."""
    return _instrumentor() is not None and (
        _openinference_wrapper(type(model), "generate") is not None
    )


async def call_async_tool(tool: Any, arguments: dict[str, Any]) -> Any:
    """Call a smolagents `Tool` whose `forward` is async, under a TOOL span that covers it."""
    instance = _instrumentor()
    wrapped_call = _openinference_wrapper(type(tool), "__call__") if instance else None
    tracer = instrumentor_tracer()
    if wrapped_call is None or tracer is None:
        return await tool(**arguments)
    original: Callable[..., Any] = wrapped_call.__wrapped__
    text, mime = span_value(
        {"args": [], "sanitize_inputs_outputs": False, "kwargs": arguments}, limit=2000
    )
    attributes: dict[str, Any] = {
        "openinference.span.kind": "TOOL",
        "input.value": text,
        "input.mime_type": mime,
        "tool.name": str(getattr(tool, "name", "")),
        "tool.description": str(getattr(tool, "description", ""))[:2000],
        "tool.parameters": span_value(getattr(tool, "inputs", {}), limit=2000)[0],
        **_context_attributes(),
    }
    with tracer.start_as_current_span(type(tool).__name__, attributes=attributes) as span:
        output = await original(tool, **arguments)
        span.set_status(Status(StatusCode.OK))
        text, mime = span_value(output)
        span.set_attributes({"output.value": text, "output.mime_type": mime})
    return output


def _context_attributes() -> Mapping[str, Any]:
    """openinference's `using_session` / `using_metadata` attributes, as its spans get them."""
    module = sys.modules.get("openinference.instrumentation")
    read = getattr(module, "get_attributes_from_context", None)
    return dict(read()) if callable(read) else {}
