"""Slots (capacity-limiter tokens) held by one piece of work, and lending them while it waits.

A *lease* is the borrower the limiters see: one attempt of one task, or one controller run. It
lives in the `CURRENT_LEASE` contextvar of the code it covers, so a wait made from that code
(on the loop, or from its thread through the bridge) can lend the lease's slots to the work it
waits for. That is what makes nested work deadlock-free: a task (or a controller) holding the
only slot can still submit and wait on further work at a limit of one.

A lease *ends* when the work it covers has really ended (a thread's call returned). After
that it holds nothing, and a lend that was still taking slots back gives them up at once: a
slot can never stay with a lease that nobody will release.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar

import anyio

__all__ = ["CURRENT_LEASE", "Lease", "lend_current_lease"]


class Lease:
    """The slots one piece of work holds."""

    __slots__ = ("ended", "held")

    def __init__(self) -> None:
        self.held: tuple[anyio.CapacityLimiter, ...] = ()
        self.ended = False

    def acquire_nowait(self, limiters: Sequence[anyio.CapacityLimiter]) -> bool:
        """Take the free slots among `limiters`, in order, up to the first full one; True if
        all were free (the common case costs no event-loop turn and no coroutine)."""
        for limiter in limiters[len(self.held) :]:
            try:
                limiter.acquire_on_behalf_of_nowait(self)
            except anyio.WouldBlock:
                return False
            self.held += (limiter,)
        return True

    async def acquire(self, limiters: Sequence[anyio.CapacityLimiter]) -> None:
        """Take every slot of `limiters`, queueing fairly for the full ones."""
        while not self.acquire_nowait(limiters):
            limiter = limiters[len(self.held)]
            await limiter.acquire_on_behalf_of(self)
            self.held += (limiter,)

    def release(self) -> None:
        held, self.held = self.held, ()
        for limiter in held:
            limiter.release_on_behalf_of(self)

    def end(self) -> None:
        """The work is over: release everything, and refuse to hold anything again."""
        self.ended = True
        self.release()


CURRENT_LEASE: ContextVar[Lease | None] = ContextVar("agentloop_current_lease", default=None)


_NOTHING_TO_LEND = contextlib.nullcontext()


def lend_current_lease() -> contextlib.AbstractAsyncContextManager[None]:
    """While the current work waits, let the work it waits for use its slots; take them back
    afterwards, unless the work ended meanwhile (then nothing is kept). Use it at once, as
    `async with lend_current_lease():` (it reads the current lease when called).

    Work that holds no slots (the common case for a caller on the loop) lends nothing, and
    gets a shared no-op context: no async generator per wait on the hot path."""
    lease = CURRENT_LEASE.get()
    if lease is None or not lease.held or lease.ended:
        return _NOTHING_TO_LEND
    return _lending(lease)


@contextlib.asynccontextmanager
async def _lending(lease: Lease) -> AsyncIterator[None]:
    lent = lease.held
    lease.release()
    try:
        yield
    finally:
        if not lease.ended:
            try:
                await lease.acquire(lent)
            finally:
                if lease.ended:  # ended while we queued: keep nothing for nobody
                    lease.release()
