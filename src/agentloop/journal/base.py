"""The journal of durable runs: what a run records, and the interface a store implements.

A run with a journal writes an ordered list of entries (model replies, task submissions and
outcomes, what each wait and read of model code found, the final answer) under its run id. A
second `arun` with that id replays them: the model is not called again for recorded steps and
finished tasks do not run again (see `docs/durability.md`).

A `Journal` is a plain, synchronous, thread-safe store: agentloop calls it from worker threads,
never from the event loop, so any blocking database driver fits (`SQLiteJournal` by default,
`PostgresJournal` for many machines). A run holds a *lease* on its id while it runs, so exactly
one process resumes it: the lease expires unless renewed, and on one host a lease whose
process is gone is taken over at once.
"""

from __future__ import annotations

import abc
import enum
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import JournalError, RunLeasedError
from ._types import BUILTIN_TYPES, JournalTypes

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Claim",
    "EntryKind",
    "Journal",
    "JournalEntry",
    "LeaseHolder",
    "NewRun",
    "RunEnd",
    "RunStatus",
    "RunSummary",
    "RunWrite",
]

DEFAULT_LEASE_SECONDS = 30.0
"""How long a run's lease lasts without renewal (a live run renews it well before then)."""


class RunStatus(enum.StrEnum):
    """Where a journaled run is. Only a completed run is final: the others resume."""

    RUNNING = "running"
    """In progress, or its process died (its lease tells which)."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARKED = "parked"
    """Waiting for a decision: nothing was left but tasks awaiting approval, so the attempt
    stopped and released its lease (`park_after=`). Any process resumes it once a decision is
    recorded (`agent.decide`); recovery leaves it alone until then."""


class EntryKind(enum.StrEnum):
    """What one journal entry records."""

    MODEL_REPLY = "model_reply"
    """`content`, `input_tokens`, `output_tokens` of one controller model call."""
    SUBMITTED = "submitted"
    """`task_id`, `target`: a task the run's code submitted (written before the task runs)."""
    APPROVAL = "approval"
    """`task_id`, `approved`, `reason`: a decision on a task that needed approval."""
    OUTCOME = "outcome"
    """`task_id`, `status`, `error`, `result` (encoded): a task reached a final state."""
    WAITED = "waited"
    """`completed`, `failed`: which of the awaited tasks had finished when a wait returned."""
    SLEPT = "slept"
    """`seconds`: a `sleep` of the run's code."""
    LOOKED = "looked"
    """`call`: the run's code read task state (results, a check, a list, a cancel); replay
    shows it exactly the outcomes recorded before this point."""
    TURN_STARTED = "turn_started"
    """`turn`, `task`, `guidance`, `max_steps`, `additional_args` (encoded): a turn of a
    journaled session began (the session is one run; its turns are bracketed in it)."""
    TURN_ENDED = "turn_ended"
    """`turn`, `status`, `error`: that turn ended (`completed`, `failed` or `cancelled`)."""
    ATTEMPT = "attempt"
    """`task_id`, `attempt`: a task starts again (a retry, or a rerun after a resume), so its
    attempt number goes on counting in a later process. Journals written before it have none
    (their tasks' reruns count from 1)."""
    PARKED = "parked"
    """`approvals`: the run parked; each task it waits on (`task_id`, `target`, `arguments`
    as bounded JSON values, `asked_by`). None of them had started: a resume starts them
    afresh (asking for approval, or taking the decision recorded since)."""
    HANDLE = "handle"
    """`task_id`, `handle`: a task started work outside the process that it can re-attach
    to (an MCP server's remote task: `{"mcp_server": ..., "task_id": ...}`), written and made
    durable before the task waits on it. A resume hands the handle back to the task, which
    follows that work instead of starting it again."""
    EVENT = "event"
    """One event of a streamed run, as `RunEvent.to_dict()` shows it less `version`, `run_id`
    and `seq` (the entry's own seq is the event's id): what a run service replays to a client
    that reconnects, from any process. A replay skips them: they record what was seen, not
    what the run did."""


class JournalEntry(NamedTuple):
    """One record of a run: its position, its kind and JSON-ready data. (A named tuple: one is
    made per task submission and outcome, and it is half the cost of a frozen dataclass.)"""

    seq: int
    kind: EntryKind
    data: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaseHolder:
    """Who runs a run now: a token unique to this attempt, and where it runs."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSummary:
    """One run as `agent.runs()` and `agentloop runs` list it."""

    run_id: str
    status: RunStatus
    task: str
    started_at: float
    updated_at: float
    steps: int
    """Model replies recorded (the controller's steps)."""
    tasks: int
    """Tasks submitted."""
    attempts: int
    """How many times the run was started or resumed."""
    stored_answer: Mapping[str, Any] | None = None
    """The final answer as the journal stores it (see `answer`), when completed."""
    error: str | None = None
    """Why it failed or was cancelled, when it did."""
    fingerprint: str = ""
    holder: LeaseHolder | None = None
    """The lease holder while it is running (maybe a process that died)."""
    lease_expires: float | None = None

    journal_types: JournalTypes = field(default=BUILTIN_TYPES, repr=False, compare=False)
    """The types `answer` may build: agentloop's own, plus the agent's `journal_types` when
    the summary comes from `agent.runs()`."""

    @property
    def answer(self) -> Any:
        """The final answer, decoded when asked for (with `journal_types`); `None` if the run
        has none. `JournalError` if it holds a type not registered here, or was pickled by
        agentloop 0.1 (never unpickled: see docs/durability.md)."""
        return self.decoded_answer()

    def decoded_answer(self, journal_types: Iterable[type] = ()) -> Any:
        """The final answer, built with the summary's types plus `journal_types` (the
        classes the agent that wrote it registered), for a summary read from a `Journal`
        directly."""
        if self.stored_answer is None:
            return None
        from ._codec import decode

        types = (
            self.journal_types.with_types(journal_types) if journal_types else self.journal_types
        )
        return decode(self.stored_answer, f"the answer of run `{self.run_id}`", types)


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """What `Journal.claim` found: the run's summary before this attempt, and its entries.

    `previous is None` for a new run; a completed run's claim takes no lease."""

    previous: RunSummary | None
    entries: Sequence[JournalEntry] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class NewRun:
    """A run created by its first write (a generated run id: nothing to look up first)."""

    task: str
    fingerprint: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunEnd:
    """How a run ended, written with (after) its last entries."""

    status: RunStatus
    answer: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunWrite:
    """What one run writes in one group commit: maybe its creation, entries, maybe its end.
    No entries and no end is a heartbeat: it only renews the lease."""

    run_id: str
    holder: LeaseHolder
    entries: Sequence[JournalEntry] = ()
    new: NewRun | None = None
    end: RunEnd | None = None


class Journal(abc.ABC):
    """A store of durable runs. Methods block, are called from worker threads and must be
    thread-safe; each raises `JournalError` when the store cannot do what it is asked, never
    a driver's own error, and never pretends a write succeeded.
    """

    @abc.abstractmethod
    def claim(
        self,
        run_id: str,
        *,
        task: str,
        fingerprint: str,
        holder: LeaseHolder,
        lease_seconds: float,
        force: bool,
    ) -> Claim:
        """In one transaction: create the run (status running, leased to `holder`), or take
        the lease of an unfinished one and return its entries, or return a completed one's
        summary. Raise `RunLeasedError` while another holder's lease is live (expired, or held
        by a dead process on this host, it is taken over), and `JournalMismatchError` when
        `task` or `fingerprint` differ from the recorded ones unless `force`."""

    @abc.abstractmethod
    def append(
        self,
        run_id: str,
        holder: LeaseHolder,
        entries: Sequence[JournalEntry],
        lease_seconds: float,
    ) -> None:
        """Write `entries` (maybe none: a heartbeat) in one transaction and renew the lease;
        raise `RunLeasedError` if `holder` no longer holds it."""

    @abc.abstractmethod
    def finish(
        self,
        run_id: str,
        holder: LeaseHolder,
        status: RunStatus,
        *,
        answer: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record how the run ended (`answer` encoded, see `agentloop.journal._codec`) and
        release the lease. `RunStatus.RUNNING` hands the run back instead: it stays
        unfinished, with no holder and no lease, so that any process may resume it at once
        (an agent shutting down while the run was in flight)."""

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, JournalError]:
        """Write several runs' entries (a group commit) and return the errors of runs that
        could not write (a lost lease, a taken run id); raise `JournalError` if nothing could
        be written. A store that can do it in one transaction should override this: the
        default writes run by run (`claim` for a new run, `append`, `finish`)."""
        errors: dict[str, JournalError] = {}
        for write in writes:
            try:
                if write.new is not None:
                    claim = self.claim(
                        write.run_id,
                        task=write.new.task,
                        fingerprint=write.new.fingerprint,
                        holder=write.holder,
                        lease_seconds=lease_seconds,
                        force=False,
                    )
                    if claim.previous is not None:
                        raise RunLeasedError(f"run id `{write.run_id}` is already taken.")
                self.append(write.run_id, write.holder, write.entries, lease_seconds)
                if write.end is not None:
                    end = write.end
                    self.finish(
                        write.run_id, write.holder, end.status, answer=end.answer, error=end.error
                    )
            except RunLeasedError as exc:
                errors[write.run_id] = exc
        return errors

    @abc.abstractmethod
    def runs(self, limit: int = 100) -> list[RunSummary]:
        """The most recently updated runs, newest first."""

    @abc.abstractmethod
    def run(self, run_id: str) -> RunSummary | None:
        """One run's summary, or `None` if the journal has no such run."""

    def recoverable(self, limit: int = 100) -> list[RunSummary]:
        """Unfinished runs nobody runs any more (see `is_abandoned`), least recently updated
        first, at most `limit` of them: the candidates of `agent.recover()`. A store should
        override this with one query on its own clock; the default reads `runs()`."""
        now = time.time()
        running = [s for s in self.runs(limit=max(limit, 1000)) if s.status is RunStatus.RUNNING]
        found = [s for s in running if is_abandoned(s, now)]
        return sorted(found, key=lambda s: s.updated_at)[:limit]

    @abc.abstractmethod
    def entries(self, run_id: str) -> list[JournalEntry]:
        """One run's entries in order (empty for an unknown run)."""

    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        """One run's `EVENT` entries with a seq above `after`, in order, at most `limit`: what
        a run service sends a client that reconnects. A store should override this with one
        query; the default reads `entries()`."""
        found = [e for e in self.entries(run_id) if e.kind is EntryKind.EVENT and e.seq > after]
        return found[:limit]

    def checkpoint(self) -> None:  # noqa: B027 (optional: most stores have nothing to do)
        """Housekeeping a store can do off its write path (SQLite copies its write-ahead log
        into the database file here, rather than inside a commit); the default does nothing.

        The agent's writer calls it in a worker thread between group commits, about once a
        second while runs write (`_writer.CHECKPOINT_SECONDS`), never two at once, and does
        not wait for it: a `write` may run meanwhile, from another thread, and must not wait
        for it either. Nothing depends on it for correctness: what `write` returned is
        committed whether or not a checkpoint follows. A closed store does nothing; an error
        is a `JournalError`, which the writer logs."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's connections. Idempotent."""

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_abandoned(summary: RunSummary, now: float) -> bool:
    """Whether a `running` run is left for another process to resume: it was handed back (no
    holder), its lease expired by `now` (the journal's clock), or its holder's process died on
    this host. A claim decides again under its lock; this only picks candidates."""
    if summary.status is not RunStatus.RUNNING:
        return False
    holder, expires = summary.holder, summary.lease_expires
    if holder is None or expires is None or expires <= now:
        return True
    return holder_is_gone(holder)


def holder_is_gone(holder: LeaseHolder) -> bool:
    """Whether `holder` ran on this host in a process that no longer exists (so its lease may
    be taken over without waiting for it to expire)."""
    if holder.host != socket.gethostname():
        return False
    if holder.pid == os.getpid():
        return False  # this process: an earlier attempt here may still be running
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by someone else
        return False
    return _is_zombie(holder.pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still has a pid; on Linux its state says it is dead."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False
