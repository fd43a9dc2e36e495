"""Checks that a test left no running tasks or threads behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["assert_no_leaks", "settled_threads"]


def settled_threads(
    before: Iterable[threading.Thread], timeout: float = 5.0
) -> list[threading.Thread]:
    """Threads alive now that were not in `before`, after giving them `timeout` to end.

    Idle worker threads are told to stop when their event loop's main task ends and exit
    moments later; joining them (not sleeping) is what makes this check deterministic."""
    known = set(before)
    deadline = time.monotonic() + timeout
    extra = [t for t in threading.enumerate() if t not in known and t.is_alive()]
    for thread in extra:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in extra if t.is_alive()]


def assert_no_leaks(*agents_or_registries: Any) -> None:
    """Fail if any given `AsyncAgent` or `TaskRegistry` still has pending or running tasks."""
    for item in agents_or_registries:
        registry = getattr(item, "task_manager", item)
        stats = registry.get_statistics()
        if stats["pending"] or stats["running"]:
            raise AssertionError(
                f"{item!r} left tasks behind: {stats['pending']} pending, "
                f"{stats['running']} running"
            )
