"""Runs in each Ray worker process (a `worker_process_setup_hook`): exports its spans to a file.

This is how a user would configure workers (with an OTLP exporter instead of a file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

SPAN_FILE_ENV = "AGENTLOOP_TEST_WORKER_SPANS"


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self._path, "a") as out:
            for span in spans:
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "trace_id": f"{span.context.trace_id:032x}",
                            "span_id": f"{span.context.span_id:016x}",
                            "parent_span_id": f"{span.parent.span_id:016x}"
                            if span.parent
                            else None,
                            "pid": os.getpid(),
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


def setup() -> None:
    path = os.environ.get(SPAN_FILE_ENV)
    if path:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
        trace.set_tracer_provider(provider)
