"""Targets for the Ray tests, importable by the workers (PYTHONPATH is the repo root)."""

from __future__ import annotations

import asyncio
import os
import time

from opentelemetry import trace


def where(n: int) -> dict[str, int]:
    """Which process ran this, and with a span of its own under the task's span."""
    with trace.get_tracer("worker").start_as_current_span("inside worker"):
        return {"n": n, "pid": os.getpid()}


async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def nap_announced(seconds: float, started: str) -> float:
    """`nap`, after writing a byte to the FIFO `started`: a gate the test process, which
    reads it, passes once the nap runs in the worker."""
    await asyncio.to_thread(_announce, started)
    await asyncio.sleep(seconds)
    return seconds


def _announce(fifo: str) -> None:
    with open(fifo, "wb") as gate:  # blocks until the test opens it for reading
        gate.write(b"x")


def spin(seconds: float) -> int:
    """Pure-Python work for `seconds` (holds the GIL locally, not on Ray)."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1
    return count


def broken() -> None:
    raise ValueError("bad row 7")


def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
