"""The journal both SQL stores are: one connection behind a lock, read and written with `_sql`'s
statements; each store adds only what its database does its own way.

`SQLStore` holds what does not depend on the database: the lock every call takes (one
connection serves all threads; each call is one short transaction), the closed and read-only
refusals, turning a driver's error into a `JournalError` (the store says what it means),
reading runs and entries back into `RunSummary` and `JournalEntry` values, and what a claim
decides about a run it finds (a run id is an idempotency key: another task or another agent is
refused, a completed run included; an unfinished run is resumed unless another holder's lease
is live). A store supplies the rest: its transactions, how a claim inserts or locks a run
(select-then-insert under SQLite's file lock, insert-or-lock on PostgreSQL), whose clock stamps
a lease, how a group of runs is written (savepoints, or one pipelined batch), and what its
driver's errors mean.
"""

from __future__ import annotations

import abc
import json
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar

from ..errors import JournalError, JournalMismatchError, RunLeasedError
from ._sql import META, Statement, Statements, claim_params, summary_from_row
from .base import (
    Claim,
    EntryKind,
    Journal,
    JournalEntry,
    LeaseHolder,
    RunEnd,
    RunStatus,
    RunSummary,
    RunWrite,
    holder_is_gone,
    is_abandoned,
)

__all__ = ["Connection", "Cursor", "SQLStore", "execute", "lease_lost"]


class Cursor(Protocol):
    """What a store reads of a DB-API cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What `SQLStore` asks of a connection: sqlite3's and psycopg's both fit."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)


class SQLStore(Journal, Generic[C]):
    """A journal on one connection (`_db`) of an SQL database, read with `_sql`'s statements."""

    _db: C
    _sql: Statements

    def __init__(self, *, name: str, read_only: bool, driver_error: type[Exception]) -> None:
        self._name = name
        """How messages name the journal ("journal `runs.sqlite`")."""
        self.read_only = read_only
        self._driver_error = driver_error
        self._lock = threading.Lock()
        self._closed = False

    # -- what each store does its own way -------------------------------------------------------

    def _connection(self) -> C:
        """The connection of the next call (a store may replace a broken one)."""
        return self._db

    @abc.abstractmethod
    def _explain(self, what: str, exc: Exception) -> str:
        """A message saying why the journal could not be `what` (`exc`: the driver's error)."""

    @abc.abstractmethod
    def _transaction(self, db: C) -> AbstractContextManager[object]:
        """One transaction on `db`, committed when the block ends without an error."""

    def _clocked(self, values: dict[str, Any]) -> dict[str, Any]:
        """A call's values, with the time if the store's clock is the process's (`:now`)."""
        return values

    @abc.abstractmethod
    def _insert_or_lock(self, db: C, values: Mapping[str, Any]) -> Sequence[Any] | None:
        """Create a claim's run (`None`), or return the run's row, locked until the
        transaction ends: one claimant at a time decides about a run."""

    @abc.abstractmethod
    def _now(self, db: C, values: Mapping[str, Any]) -> float:
        """The time by the clock of the leases, when a claim has locked the run's row."""

    @abc.abstractmethod
    def _write_one(self, write: RunWrite, lease_seconds: float) -> None:
        """Write one run's part in one transaction; raise `RunLeasedError` if this holder no
        longer holds its lease."""

    # -- the interface --------------------------------------------------------------------------

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
        values = claim_params(
            run_id, task=task, fingerprint=fingerprint, holder=holder, lease_seconds=lease_seconds
        )
        values = self._clocked(values)
        with self._session(f"read for run `{run_id}`", write=True) as db, self._transaction(db):
            row = self._insert_or_lock(db, values)
            if row is None:
                return Claim(previous=None)
            previous = summary_from_row(row)
            if previous.status is RunStatus.COMPLETED:
                # final: the same work gets its answer (forced or not), other work is refused
                check_same_work(previous, task=task, fingerprint=fingerprint, force=force)
                return Claim(previous=previous)
            now = self._now(db, values)
            check_lease(previous, now=now)
            check_same_work(previous, task=task, fingerprint=fingerprint, force=force)
            execute(db, self._sql.resume, values)
            return Claim(previous=previous, entries=self._entries(db, run_id))

    def append(
        self,
        run_id: str,
        holder: LeaseHolder,
        entries: Sequence[JournalEntry],
        lease_seconds: float,
    ) -> None:
        self._write_one(RunWrite(run_id=run_id, holder=holder, entries=entries), lease_seconds)

    def finish(
        self,
        run_id: str,
        holder: LeaseHolder,
        status: RunStatus,
        *,
        answer: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        end = RunEnd(status=RunStatus(status), answer=answer, error=error)
        self._write_one(RunWrite(run_id=run_id, holder=holder, end=end), 0.0)

    def runs(self, limit: int = 100) -> list[RunSummary]:
        with self._session("read") as db:
            rows = execute(db, self._sql.select_runs, {"limit": limit}).fetchall()
        return [summary_from_row(row) for row in rows]

    def run(self, run_id: str) -> RunSummary | None:
        with self._session("read") as db:
            row = execute(db, self._sql.select_run, {"run_id": run_id}).fetchone()
        return None if row is None else summary_from_row(row)

    def entries(self, run_id: str) -> list[JournalEntry]:
        with self._session("read") as db:
            return self._entries(db, run_id)

    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        """One query on the entries' primary key (run, seq)."""
        values = {"run_id": run_id, "after": after, "limit": limit}
        with self._session("read") as db:
            rows = execute(db, self._sql.select_events, values).fetchall()
        return [_entry(self._name, run_id, seq, kind, data) for seq, kind, data in rows]

    def recoverable(self, limit: int = 100) -> list[RunSummary]:
        """One query: running runs handed back, expired by the store's clock (the server's, on
        PostgreSQL), or held on this host; of the last, those whose process is gone."""
        values = self._clocked({"limit": limit, "host": socket.gethostname()})
        with self._session("read") as db:
            rows = execute(db, self._sql.select_recoverable, values).fetchall()
        found = ((summary_from_row(row), float(row[-1])) for row in rows)
        return [summary for summary, now in found if is_abandoned(summary, now)]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- for the stores -------------------------------------------------------------------------

    @contextmanager
    def _session(self, what: str, *, write: bool = False) -> Iterator[C]:
        """Hold the connection's lock; turn the driver's errors into `JournalError`s that say
        which journal and what happened."""
        with self._lock:
            if self._closed:
                raise JournalError(f"{self._name} is closed.")
            if write and self.read_only:
                raise JournalError(f"{self._name} was opened read-only; it takes no writes.")
            db = self._connection()
            try:
                yield db
            except self._driver_error as exc:
                raise JournalError(self._explain(what, exc)) from None

    def _create_tables(self, db: C) -> None:
        # one statement at a time: a script (sqlite3's `executescript`) would commit first
        for statement in self._sql.schema:
            db.execute(statement)
        for key, value in META:
            execute(db, self._sql.insert_meta, {"key": key, "value": value})

    def _entries(self, db: C, run_id: str) -> list[JournalEntry]:
        rows = execute(db, self._sql.select_entries, {"run_id": run_id}).fetchall()
        return [_entry(self._name, run_id, seq, kind, data) for seq, kind, data in rows]


def _entry(journal: str, run_id: str, seq: Any, kind: Any, data: Any) -> JournalEntry:
    """One entry row, or a `JournalError` naming the run, the entry and the column."""
    column, expected = "seq", "an integer"
    try:
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(seq)
        column, expected = "kind", f"one of {', '.join(k.value for k in EntryKind)}"
        entry_kind = EntryKind(kind)
        column, expected = "data", "a JSON object"
        loaded = json.loads(data) if isinstance(data, str) else data
        if not isinstance(loaded, Mapping):
            raise ValueError(data)
    except ValueError:
        raise JournalError(
            f"{journal} has an unreadable entry {seq!r:.20} of run `{run_id}`: its `{column}` "
            f"column is not {expected}. It was left untouched."
        ) from None
    return JournalEntry(seq=seq, kind=entry_kind, data=loaded)


def execute(db: Connection, statement: Statement, values: Mapping[str, Any]) -> Cursor:
    """Run `statement` with its values taken from `values`."""
    return db.execute(statement.text, statement.bind(values))


def lease_lost(run_id: str, holder: LeaseHolder) -> RunLeasedError:
    return RunLeasedError(
        f"run `{run_id}` is no longer leased to this process (pid {holder.pid}): its "
        "lease expired and another process took the run over. This attempt stops "
        "writing; the other one carries on."
    )


def check_lease(previous: RunSummary, *, now: float) -> None:
    """Raise unless an unfinished run may be taken over by a new holder now."""
    holder, expires = previous.holder, previous.lease_expires
    if holder is not None and expires is not None and expires > now and not holder_is_gone(holder):
        left = expires - now
        raise RunLeasedError(
            f"run `{previous.run_id}` is being run by pid {holder.pid} on `{holder.host}` "
            f"(its lease ends in {left:.0f}s unless renewed); exactly one process runs a run. "
            "Resume it after that process has stopped."
        )


def check_same_work(previous: RunSummary, *, task: str, fingerprint: str, force: bool) -> None:
    """A run id is an idempotency key: raise unless `task` and `fingerprint` are the run's,
    whatever its status (a completed run answers only the task it was started with). `force`
    waives the comparison."""
    if force:
        return
    done = previous.status is RunStatus.COMPLETED
    if previous.task != task:
        doing = (
            "it completed, and answers only that task"
            if done
            else "a resumed run must do the same work"
        )
        forced = "" if done else ", or pass `force=True` to resume it with this task"
        raise JournalMismatchError(
            f"run `{previous.run_id}` was started with another task "
            f"({_quoted(previous.task)}, now {_quoted(task)}); {doing}. Use a new run id"
            f"{forced}."
        )
    if previous.fingerprint != fingerprint:
        doing = (
            "its recorded answer may not be this agent's"
            if done
            else "its recorded steps may not fit this agent"
        )
        forced = "to get its recorded answer anyway" if done else "to replay it anyway"
        raise JournalMismatchError(
            f"run `{previous.run_id}` was recorded by an agent configured differently (its "
            "model, tools, managed agents or instructions changed, or the call's `output_type` "
            f"or `images`), so {doing}. Use a new run id, or pass `force=True` {forced}."
        )


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
