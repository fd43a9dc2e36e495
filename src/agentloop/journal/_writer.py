"""Writes the journal entries of every run on one event loop, in order, off the loop, in groups.

Each run has a `RunLog`: its entries get their sequence numbers under one lock, from the loop or
from the run's controller thread, so the order in the journal is the order things happened.
The agent's `JournalWriter` takes whatever every run has accumulated and writes it in one
`Journal.write` call (one transaction for SQLite) in a worker thread (`anyio.to_thread`): two
hundred runs starting at once cost a handful of commits, not a thousand, and the loop never
waits for the disk. The flush is a task the writer starts when there is something to write and
that ends when there is nothing left; `aclose()` waits for it.

Code that must not act before the journal knows about it (a task's code starting: the journal
is write-ahead for side effects; a result shown to the model's code; a run returning its
answer) awaits `RunLog.durable(version)` or calls `RunLog.hurry()`: then the flush starts at
once. An entry nobody waits for yet (a model reply, an outcome no code has read, a heartbeat)
lingers up to `LINGER_SECONDS` for company first: a run's next waited-for entry usually follows
within a millisecond, and one commit for both costs half of two. Measured on the durable
benchmark (model, three tools, model; runs in turn): 5 commits per run became 3, all waited
for (docs/performance.md).
If a run's write fails, its log fails: every waiter and every later entry of that run gets the
`JournalError`, and `on_failure` stops the run. Records are never silently lost.

Between commits, at most once every `CHECKPOINT_SECONDS`, the writer starts the journal's
housekeeping (`Journal.checkpoint`: SQLite copies its log into the database file there rather
than inside a commit) in a worker thread (anyio's) and does not wait for it: the next flush
commits meanwhile. One runs at a time; `aclose()` waits for it; a failed one is logged, and
fails nothing (what it would have copied is committed in the log already).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from ..errors import JournalError
from .base import (
    EntryKind,
    Journal,
    JournalEntry,
    LeaseHolder,
    NewRun,
    RunEnd,
    RunStatus,
    RunWrite,
)

__all__ = ["CHECKPOINT_SECONDS", "LINGER_SECONDS", "JournalWriter", "RunLog"]

logger = logging.getLogger("agentloop")

LINGER_SECONDS = 0.005
"""How long an entry nobody waits for may wait for others before it is written: at most this
much of a run's unwaited record is lost with its process, which a resume makes up for (a lost
model reply is asked again; a lost outcome no code read counts as in flight)."""

CHECKPOINT_SECONDS = 1.0
"""How often, at most, a writer that commits starts `Journal.checkpoint`. What SQLite's log
holds and its database file does not is then about a second of commits (~700 pages at ~330
commits/s of small events), which a checkpoint copies in tens of milliseconds in its own
thread. More often would sync the database file more for little gain; much less often leaves
more for the commit that reaches the log's safety net (`_wal.AUTOCHECKPOINT_PAGES`) to copy.
A checkpoint syncs the log first, so under `synchronous=NORMAL` it also bounds what an OS
crash can lose of a busy writer's commits to about the last second."""


class JournalWriter:
    """Group commits of one journal's runs on one event loop (create it on that loop)."""

    def __init__(
        self,
        journal: Journal,
        *,
        lease_seconds: float,
        linger: float = LINGER_SECONDS,
        checkpoint_every: float = CHECKPOINT_SECONDS,
    ) -> None:
        self.journal = journal
        self.lease_seconds = lease_seconds
        self._linger = linger
        self._checkpoint_every = checkpoint_every
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._dirty: dict[RunLog, None] = {}
        """Logs with something to write, in the order they first had it."""
        self._wake_queued = False
        self._flushing: asyncio.Task[None] | None = None
        self._lingering: asyncio.TimerHandle | None = None
        """The flush waiting out `linger` (on the loop)."""
        self._hurried = False
        """Someone waits for a write: the next flush starts at once (on the loop)."""
        self._listeners: list[Callable[[RunWrite], None]] = []
        self._checkpointing: asyncio.Task[None] | None = None
        self._checkpoint_started = self._loop.time()
        """When the last checkpoint started (the writer's creation, before the first): a
        short-lived writer never checkpoints."""

    def listen(self, listener: Callable[[RunWrite], None]) -> Callable[[], None]:
        """Call `listener` on the loop with each run's write once it is committed (a run
        service shows clients committed events only); returns the call that stops it. A
        listener must be quick and must not raise."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def open_log(
        self,
        run_id: str,
        holder: LeaseHolder,
        *,
        last_seq: int,
        new: NewRun | None,
        on_failure: Callable[[JournalError], None],
    ) -> RunLog:
        """The log of one run attempt; `new` creates the run with its first write."""
        log = RunLog(self, run_id, holder, last_seq, on_failure)
        if new is not None:
            log._new = new
            self._mark(log)
        return log

    async def aclose(self) -> None:
        """Write what is queued now, and wait for the flush (and whatever it still has to
        write) and for a running checkpoint."""
        self._hurry()
        while True:
            running = [t for t in (self._flushing, self._checkpointing) if t and not t.done()]
            if not running:
                return
            await asyncio.shield(running[0])

    # -- under `_lock` or from it --------------------------------------------------------------

    def _mark(self, log: RunLog) -> None:
        """`log` has something to write: make sure a flush will take it (any thread)."""
        with self._lock:
            self._dirty[log] = None
            if self._wake_queued:
                return
            self._wake_queued = True
        if threading.get_ident() == self._loop_thread:
            self._wake_soon()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: its runs are gone too
                self._loop.call_soon_threadsafe(self._wake_soon)

    # -- on the loop -----------------------------------------------------------------------------

    def _wake_soon(self) -> None:
        """Flush now if someone waits or a flush runs (its next round takes it), else once
        `linger` has passed."""
        if self._hurried or self._linger <= 0 or self._is_flushing():
            self._wake()
        elif self._lingering is None:
            self._lingering = self._loop.call_later(self._linger, self._wake)

    def _hurry(self) -> None:
        """Someone waits for what is queued: write it now."""
        self._hurried = True
        if self._lingering is not None:
            self._wake()

    def _is_flushing(self) -> bool:
        return self._flushing is not None and not self._flushing.done()

    def _wake(self) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        if not self._is_flushing():
            self._flushing = self._loop.create_task(self._flush(), name="agentloop-journal")

    async def _flush(self) -> None:
        """Write until nothing is left; each round is one `Journal.write` of every dirty log."""
        while True:
            with self._lock:
                logs = [log for log in self._dirty if log.failure is None]  # a failed log stops
                self._dirty.clear()
                self._wake_queued = False
                self._hurried = False
                writes = [log._take() for log in logs]
            if not logs:
                return
            try:
                errors = await anyio.to_thread.run_sync(
                    self.journal.write, [w for w, _ in writes], self.lease_seconds
                )
            except JournalError as exc:
                for log in logs:
                    log._fail(exc)
                continue
            except Exception as exc:  # a journal implementation broke its contract
                logger.exception("journal %r failed a write", self.journal)
                failure = JournalError(f"the journal failed a write: {exc!r}")
                for log in logs:
                    log._fail(failure)
                continue
            for log, (write, version) in zip(logs, writes, strict=True):
                error = errors.get(write.run_id)
                if error is not None:
                    log._fail(error)
                else:
                    log._commit_done(version)
                    for listener in self._listeners:
                        listener(write)
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Start a checkpoint unless one runs or the last started under `checkpoint_every`
        ago; the flush goes on without waiting for it."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        now = self._loop.time()
        if now - self._checkpoint_started < self._checkpoint_every:
            return
        self._checkpoint_started = now
        self._checkpointing = self._loop.create_task(
            self._checkpoint(), name="agentloop-journal-checkpoint"
        )

    async def _checkpoint(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.journal.checkpoint)
        except Exception as exc:  # nothing is lost: the commits are in the journal already
            logger.warning("journal %r: a checkpoint failed, runs go on: %r", self.journal, exc)


class RunLog:
    """The entries of one run attempt, and when they are durable."""

    def __init__(
        self,
        writer: JournalWriter,
        run_id: str,
        holder: LeaseHolder,
        last_seq: int,
        on_failure: Callable[[JournalError], None],
    ) -> None:
        self._writer = writer
        self.run_id = run_id
        self.holder = holder
        self._on_failure = on_failure
        self._seq = last_seq
        self._version = 0
        """Bumped by every entry, heartbeat and end: what `durable` waits for."""
        self._committed = 0
        self._pending: list[JournalEntry] = []
        self._new: NewRun | None = None
        self._end: RunEnd | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.failure: JournalError | None = None
        self.on_commit: Callable[[], None] | None = None
        """Called on the loop after each commit, before waiters wake (the scope starts the
        tasks it held back)."""

    # -- any thread ------------------------------------------------------------------------------

    def add(self, kind: EntryKind, data: Mapping[str, Any]) -> int:
        """Queue an entry; return the version that is durable once it is. Raises the log's
        failure, if any."""
        writer = self._writer
        with writer._lock:
            if self.failure is not None:
                raise self.failure
            self._seq += 1
            self._version += 1
            self._pending.append(JournalEntry(seq=self._seq, kind=kind, data=data))
            version = self._version
            queued = self in writer._dirty
        if not queued:
            writer._mark(self)
        return version

    def touch(self) -> None:
        """Renew the lease (a run with nothing to write for a while)."""
        with self._writer._lock:
            self._version += 1
        self._writer._mark(self)

    # -- on the loop -----------------------------------------------------------------------------

    def is_durable(self, version: int) -> bool:
        return version <= self._committed

    def hurry(self) -> None:
        """Something waits for this log's queued entries (a task held until its submission
        is committed): write them now rather than after the linger."""
        self._writer._hurry()

    async def durable(self, version: int) -> None:
        """Return once everything up to `version` is committed (written now: see `hurry`)."""
        if version <= self._committed:
            return
        if self.failure is not None:
            raise self.failure
        self._writer._hurry()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((version, waiter))
        await waiter

    async def end(
        self, status: RunStatus, *, answer: Mapping[str, Any] | None, error: str | None
    ) -> None:
        """Write how the run ended, after everything queued before, and wait for it."""
        writer = self._writer
        with writer._lock:
            if self.failure is not None:
                raise self.failure
            self._end = RunEnd(status=status, answer=answer, error=error)
            self._version += 1
            version = self._version
        writer._mark(self)
        await self.durable(version)

    def release(self) -> None:
        """The run's end is written (or can never be): let go of the callbacks into the run,
        which point back at this log, so that reference counting frees the run (see
        `ControllerRun.release`)."""
        self._on_failure = _ignore_failure
        self.on_commit = None

    # -- the writer's side -------------------------------------------------------------------------

    def _take(self) -> tuple[RunWrite, int]:
        """Under the writer's lock: what to write now, and the version it makes durable."""
        write = RunWrite(
            run_id=self.run_id,
            holder=self.holder,
            entries=self._pending,
            new=self._new,
            end=self._end,
        )
        self._pending, self._new, self._end = [], None, None
        return write, self._version

    def _commit_done(self, version: int) -> None:
        if self.failure is not None:  # failed meanwhile: nothing more counts as durable
            return
        self._committed = version
        if self.on_commit is not None:
            self.on_commit()
        still: list[tuple[int, asyncio.Future[None]]] = []
        for waited, waiter in self._waiters:
            if waited > version:
                still.append((waited, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = still

    def _fail(self, failure: JournalError) -> None:
        with self._writer._lock:
            if self.failure is not None:
                return
            self.failure = failure
            self._pending.clear()
            self._writer._dirty.pop(self, None)
        waiters, self._waiters = self._waiters, []
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_exception(failure)
        self._on_failure(failure)


def _ignore_failure(failure: JournalError) -> None:
    """A released log's failure: its run has ended, nobody is left to stop."""
