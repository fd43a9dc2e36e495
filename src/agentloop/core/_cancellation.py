"""Telling code that runs in a thread that its task was cancelled or timed out.

A thread cannot be killed, but code that polls a flag can stop early: a smolagents agent checks
its `interrupt_switch` before every step. The runner gives each attempt of an *interruptible*
target a `CancelSignal` in the `CURRENT_CANCEL` contextvar (worker threads run in a copy of the
task's context, so the target sees it), and fires it when the attempt is cancelled, times out
or is abandoned. The target registers what to do with `on_cancel`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["CURRENT_CANCEL", "CancelSignal", "on_cancel"]

logger = logging.getLogger("agentloop")


class CancelSignal:
    """Fired at most once, from the loop; callbacks run then (or at once if registered later).

    Thread-safe: targets register from their worker thread while the loop may fire."""

    __slots__ = ("_callbacks", "_fired", "_lock")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self._fired = False
        self._lock = threading.Lock()

    @property
    def fired(self) -> bool:
        return self._fired

    def add(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._fired:
                self._callbacks.append(callback)
                return
        _call(callback)

    def fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _call(callback)


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # an interrupt that fails must not break the cancellation around it
        logger.exception("a cancellation callback raised")


CURRENT_CANCEL: ContextVar[CancelSignal | None] = ContextVar("agentloop_cancel", default=None)


def on_cancel(callback: Callable[[], None]) -> None:
    """Run `callback` when the current task attempt is cancelled (no-op outside a task)."""
    signal = CURRENT_CANCEL.get()
    if signal is not None:
        signal.add(callback)
