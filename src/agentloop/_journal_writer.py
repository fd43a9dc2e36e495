"""Writes one run's journal entries in order, off the event loop, and says when they are durable.

Entries come from the loop and from the run's controller thread; each gets the next sequence
number under a lock, so the order in the journal is the order things happened. A writer task
owned by the run takes whatever has accumulated and writes it in one transaction, in a worker
thread (`anyio.to_thread`), so a burst of thirty submissions costs one commit, not thirty, and
the loop never waits for the disk. While nothing happens it renews the run's lease every third
of its length.

Code that must not act before the journal knows about it (a task's code starting: the journal
is write-ahead for side effects; the run returning its answer) awaits `durable(seq)`. If a
write fails, the writer stops, every waiter and every later entry gets the `JournalError`, and
`on_failure` stops the run: records are never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from .errors import JournalError
from .journal import EntryKind, Journal, JournalEntry, LeaseHolder

__all__ = ["JournalWriter"]

logger = logging.getLogger("agentloop")


class JournalWriter:
    """The ordered, batched writes of one run attempt (create on the run's loop)."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        holder: LeaseHolder,
        *,
        lease_seconds: float,
        last_seq: int,
        on_failure: Callable[[JournalError], None],
    ) -> None:
        self._journal = journal
        self.run_id = run_id
        self.holder = holder
        self._lease_seconds = lease_seconds
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._pending: list[JournalEntry] = []
        self._seq = last_seq
        self._committed = last_seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._wake_queued = False
        self._stopping = False
        self.failure: JournalError | None = None

    # -- adding entries (any thread) ------------------------------------------------------------

    def add(self, kind: EntryKind, data: Mapping[str, Any]) -> int:
        """Queue an entry; return its sequence number. Raises the writer's failure, if any."""
        with self._lock:
            if self.failure is not None:
                raise self.failure
            self._seq += 1
            seq = self._seq
            self._pending.append(JournalEntry(seq=seq, kind=kind, data=data))
            wake = not self._wake_queued
            self._wake_queued = True
        if wake:
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            else:
                with contextlib.suppress(RuntimeError):  # the loop closed: the run is gone too
                    self._loop.call_soon_threadsafe(self._wake.set)
        return seq

    @property
    def last_seq(self) -> int:
        return self._seq

    # -- durability (on the loop) ---------------------------------------------------------------

    async def durable(self, seq: int) -> None:
        """Return once entry `seq` (and every entry before it) is committed."""
        if seq <= self._committed:
            return
        if self.failure is not None:
            raise self.failure
        waiter = self._loop.create_future()
        self._waiters.append((seq, waiter))
        await waiter

    async def flushed(self) -> None:
        """Return once everything added so far is committed."""
        await self.durable(self._seq)

    # -- the writer task ------------------------------------------------------------------------

    async def run(self) -> None:
        """The writer: owned by the run, ended by `stop()` (after writing what is left)."""
        heartbeat = self._lease_seconds / 3
        while True:
            if not self._wake.is_set() and not self._stopping:
                # after `heartbeat` seconds with nothing to write, the write below renews the lease
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), heartbeat)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                self._wake_queued = False
            if not batch and self._stopping:
                return
            try:
                await anyio.to_thread.run_sync(
                    self._journal.append, self.run_id, self.holder, batch, self._lease_seconds
                )
            except JournalError as exc:
                self._fail(exc)
                return
            except Exception as exc:  # a journal implementation broke its contract
                logger.exception("journal %r failed writing run %s", self._journal, self.run_id)
                self._fail(JournalError(f"the journal failed writing run `{self.run_id}`: {exc!r}"))
                return
            if batch:
                self._committed = batch[-1].seq
                self._release_waiters()

    async def stop(self) -> None:
        """Ask the writer to write what is queued and end (await its task afterwards)."""
        self._stopping = True
        self._wake.set()

    def _release_waiters(self) -> None:
        committed, still = self._committed, []
        for seq, waiter in self._waiters:
            if seq <= committed:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((seq, waiter))
        self._waiters = still

    def _fail(self, failure: JournalError) -> None:
        with self._lock:
            self.failure = failure
            self._pending.clear()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(failure)
        self._waiters = []
        self._on_failure(failure)
