"""Sliding-window admission for the LLM stub: the rate limit a real provider enforces.

A provider counts requests (and tokens) in a rolling window and answers 429 past its limit,
saying in `Retry-After` when enough frees. The stub does the same with a deque of admissions, so
a client's limiter is measured against a server that really refuses, not against a sleep.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Admission", "SlidingWindow"]


@dataclass(slots=True, eq=False)
class Admission:
    """One admitted request: when, and how many units it counts for (tokens may grow later)."""

    at: float
    units: int


class SlidingWindow:
    """At most `limit` units within any `seconds`-long window (not thread-safe: the stub locks).

    A request larger than the whole limit is admitted when the window is empty, as providers
    do for a single large prompt; otherwise it would wait forever.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError(f"a window needs limit >= 1 and seconds > 0, got {limit}, {seconds}")
        self.limit = limit
        self.seconds = seconds
        self._admitted: deque[Admission] = deque()
        self._used = 0

    def wait(self, now: float, units: int) -> float:
        """Seconds until `units` more fit (0.0 if they fit now). Drops expired admissions."""
        while self._admitted and self._admitted[0].at + self.seconds <= now:
            self._used -= self._admitted.popleft().units
        if self._used + units <= self.limit or not self._admitted:
            return 0.0
        freed = self._used
        for admission in self._admitted:
            freed -= admission.units
            if freed + units <= self.limit:
                return admission.at + self.seconds - now
        return self._admitted[-1].at + self.seconds - now

    def admit(self, now: float, units: int) -> Admission:
        """Count `units` at `now`; the caller checked `wait(now, units) == 0.0` first."""
        admission = Admission(now, units)
        self._admitted.append(admission)
        self._used += units
        return admission

    def charge(self, admission: Admission, units: int) -> None:
        """Add `units` to an admission still in the window (a reply's tokens, known later)."""
        if admission in self._admitted:
            admission.units += units
            self._used += units
