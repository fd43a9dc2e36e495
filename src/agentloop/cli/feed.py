"""Drive one run through its `RunStream` and hand every event to the CLI's sinks.

The CLI has one source of truth for what a run did: the run's event stream. The live view,
the event log behind the timeline and `--trace`, and `--events` are all sinks of it, called
in order for each event, on the loop.

Ctrl-C cancels the task iterating the stream. Leaving the stream's `async with` then cancels
the run and waits for it to end; the events it produced meanwhile (the interrupted step,
the cancelled tasks, `run_failed`) are already buffered, and are handed to the sinks too, so
the view and the trace show how the run ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..agent.stream import RunEvent, RunStream

__all__ = ["Sink", "follow", "json_lines"]

Sink = Callable[[RunEvent], None]

DRAIN_GRACE = 1.0
"""Bound on reading the buffered tail after a cancelled run. Every event is buffered by then
(`aclose` waits for the run's end), so the drain never suspends; the bound only keeps a
stream that failed to end its iteration from hanging Ctrl-C."""

logger = logging.getLogger("agentloop")


async def follow(stream: RunStream, sinks: Sequence[Sink]) -> Any:
    """Run `stream` to its end, handing each event to every sink; return the final answer
    (raise the run's error)."""
    try:
        async with stream:
            async for event in stream:
                _hand(event, sinks)
            return await stream.result()
    except asyncio.CancelledError:
        await _drain(stream, sinks)
        raise


async def _drain(stream: RunStream, sinks: Sequence[Sink]) -> None:
    try:
        async with asyncio.timeout(DRAIN_GRACE):
            async for event in stream:
                _hand(event, sinks)
    except TimeoutError:
        logger.debug("the cancelled run's stream did not end; its last events are not shown")


def _hand(event: RunEvent, sinks: Sequence[Sink]) -> None:
    for sink in sinks:
        sink(event)


def json_lines(out: IO[str]) -> Sink:
    """A sink that writes each event as one JSON line (`event.to_dict()`) and flushes, so a
    script reading the pipe sees each event as it happens."""

    def write(event: RunEvent) -> None:
        out.write(json.dumps(event.to_dict(), allow_nan=False) + "\n")
        out.flush()

    return write
