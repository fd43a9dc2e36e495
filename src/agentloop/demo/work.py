"""Simulated work with realistic, uneven durations; a transient failure where a retry helps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["Flaky", "cpu_wait", "io_wait", "jitter"]


def jitter(key: str, spread: float = 0.1) -> float:
    """A deterministic pseudo-random offset in [0, spread) derived from `key`."""
    return (sum(ord(c) * (i + 1) for i, c in enumerate(key)) % 97) / 97 * spread


async def io_wait(seconds: float) -> None:
    """An I/O-bound wait (network, database): an async tool awaits it on the loop."""
    await asyncio.sleep(seconds)


def cpu_wait(seconds: float) -> None:
    """A blocking wait standing in for CPU work or a sync client: runs in a worker thread."""
    time.sleep(seconds)


class Flaky:
    """Fails the first call for each key, then succeeds: a transient error a retry fixes."""

    def __init__(self, error: Callable[[str], Exception]) -> None:
        self._error = error
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
        if first:
            raise self._error(key)
