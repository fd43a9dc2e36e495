"""When each model call may start, so that a provider's per-minute limits are never passed.

Providers count requests and tokens per minute, and several enforce it over shorter spans too
(OpenAI: "60,000 requests per minute may be enforced as 1,000 per second"). A client that
bursts a minute's allowance at once, then waits, is refused for the burst. So calls are
*spaced*: with `requests_per_minute=r`, call starts are at least `60/r` s apart (2% more:
`HEADROOM`), and a call estimated at `t` tokens keeps the next start `t * 60/tokens_per_minute`
s after its own (the generic cell-rate algorithm with no burst allowance). Any window then sees
at most the limit, plus one call's tokens. Each caller reserves its start time when it
arrives and waits for it, so starts are granted in arrival order, and the wait is an
`asyncio.sleep` (no thread) or, for a blocking caller, a wait in its own worker thread.

A token estimate is corrected once the reply reports its usage: the schedule moves by the
difference, never before a start already granted (that keeps the order).

A provider's `Retry-After` is its word on when it has room again: `hold_off` moves the whole
schedule there, so the calls queued behind a refused one do not hit the same wall. Spacing
alone cannot promise a provider never refuses: its window counts arrivals, and a request
delayed on its way (a busy loop, the network) lands in the window of one sent after it. The
hold-off realigns the schedule with the provider's window when that happens.

Thread-safe (one lock, held for a few arithmetic steps); loop-agnostic (`time.monotonic`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["HEADROOM", "Pace", "Reservation"]

HEADROOM = 1.02
"""Starts are spaced this much wider than the limit (2%), so a request delayed on its way (a
busy loop, the network) does not land in the provider's window with one sent after it.
Measured against the stub's sliding window (tests/reliability/test_provider_limits.py): with
exact spacing, 1-2 of 24 calls at 20 a second were refused (jitter of a millisecond is
enough), at 2% none; at 40 a second for 500 runs, 18 refusals against 10, at the same
throughput (97% of the limit)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A start time granted to one call, and the schedule as it was before (to give it back)."""

    start: float
    previous: tuple[float, float]
    after: tuple[float, float]


class Pace:
    """The schedule of call starts for one `ModelLimits`."""

    __slots__ = (
        "_held_until",
        "_last_start",
        "_lock",
        "_next_request",
        "_next_tokens",
        "request_gap",
        "token_gap",
    )

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: int | None) -> None:
        spacing = 60.0 * HEADROOM
        self.request_gap = spacing / requests_per_minute if requests_per_minute else 0.0
        self.token_gap = spacing / tokens_per_minute if tokens_per_minute else 0.0
        self._next_request = 0.0
        self._next_tokens = 0.0
        self._last_start = 0.0
        self._held_until = 0.0
        self._lock = threading.Lock()

    @property
    def paced(self) -> bool:
        """Whether a call may have to wait for its start (else `reserve` is not needed)."""
        return bool(self.request_gap or self.token_gap) or self._held_until > time.monotonic()

    def reserve(self, tokens: int) -> Reservation:
        """The earliest start for a call of `tokens` after every call reserved before it."""
        with self._lock:
            now = time.monotonic()
            previous = (self._next_request, self._next_tokens)
            start = max(now, self._next_request, self._next_tokens, self._held_until)
            if self.request_gap:
                self._next_request = start + self.request_gap
            if self.token_gap:
                self._next_tokens = start + tokens * self.token_gap
            self._last_start = max(self._last_start, start)
            after = (self._next_request, self._next_tokens)
            return Reservation(start, previous, after)

    def give_back(self, reservation: Reservation) -> None:
        """A call that will not start (cancelled while waiting) returns its time, if no call
        reserved after it (otherwise its time stays spent: the order is kept)."""
        with self._lock:
            if (self._next_request, self._next_tokens) == reservation.after:
                self._next_request, self._next_tokens = reservation.previous

    def hold_off(self, seconds: float) -> None:
        """The provider asked to wait `seconds`: no call starts before then."""
        with self._lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def correct(self, estimated: int, used: int) -> None:
        """The call used `used` tokens, not `estimated`: move the token schedule by the
        difference (not before the latest granted start)."""
        if not self.token_gap or used == estimated:
            return
        with self._lock:
            moved = self._next_tokens + (used - estimated) * self.token_gap
            self._next_tokens = max(moved, self._last_start)
