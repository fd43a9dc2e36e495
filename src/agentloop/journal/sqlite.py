"""The default journal: one SQLite file (stdlib `sqlite3`), shared by the processes of one host.

Durability: WAL mode with `synchronous=NORMAL` by default. Each write is a committed
transaction, so a process killed at any point (`SIGKILL`, OOM) loses nothing it committed; an
OS crash or power cut may lose the last few commits before a checkpoint. `synchronous="FULL"`
syncs every commit to disk as well, at a cost of a disk flush per write.

The file is never rewritten or "repaired": a file that is not SQLite, an SQLite database of some
other application, or a journal of a newer schema is refused with a `JournalError`, and so is
a path agentloop cannot write. Writes that fail (disk full, the database locked by another
process for longer than `busy_timeout`) raise `JournalError` and the run fails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..errors import JournalError, RunLeasedError
from ._sql import check_claim, summary_from_row
from .base import (
    Claim,
    EntryKind,
    Journal,
    JournalEntry,
    LeaseHolder,
    RunStatus,
    RunSummary,
    RunWrite,
)

__all__ = ["SCHEMA_VERSION", "SQLiteJournal"]

SCHEMA_VERSION = 1
FORMAT = "agentloop-journal"

_SCHEMA = """
CREATE TABLE agentloop_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE agentloop_runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    task TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    tasks INTEGER NOT NULL DEFAULT 0,
    answer TEXT,
    error TEXT,
    holder_token TEXT,
    holder_host TEXT,
    holder_pid INTEGER,
    lease_expires REAL
);
CREATE INDEX agentloop_runs_updated ON agentloop_runs (updated_at);
CREATE TABLE agentloop_entries (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = (
    "run_id, status, task, fingerprint, started_at, updated_at, attempts, steps, tasks, "
    "answer, error, holder_token, holder_host, holder_pid, lease_expires"
)


class SQLiteJournal(Journal):
    """A journal in one SQLite file (created with its schema if it does not exist).

    Args:
        path: the file. Its directory must exist and be writable (unless `read_only`).
        synchronous: `"NORMAL"` (survives a killed process) or `"FULL"` (also an OS crash).
        busy_timeout: seconds to wait for another process's write lock before failing.
        read_only: open an existing journal only to read it (`agentloop runs`, or a journal
            on a read-only mount); every write raises `JournalError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 5.0,
        read_only: bool = False,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise JournalError(
                f"`synchronous` must be 'NORMAL' or 'FULL', received {synchronous!r}."
            )
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._closed = False
        if read_only:
            if not self.path.is_file():
                raise JournalError(f"journal `{self.path}` does not exist (or is not a file).")
            target: str | Path = f"{self.path.resolve().as_uri()}?mode=ro"
        else:
            _check_writable(self.path)
            target = self.path
        try:
            self._db = sqlite3.connect(
                target,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=read_only,
            )
        except sqlite3.Error as exc:
            raise JournalError(f"journal `{self.path}` cannot be opened: {exc}.") from None
        try:
            if read_only:
                with self._errors("opened"):
                    self._check_format(self._table_names())
            else:
                self._setup(synchronous, busy_timeout)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"SQLiteJournal({str(self.path)!r}{mode})"

    # -- opening --------------------------------------------------------------------------------

    def _setup(self, synchronous: str, busy_timeout: float) -> None:
        with self._errors("opened"):
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not tables:
                self._to_wal(busy_timeout)
                with self._transaction():
                    if not self._table_names():  # another process may have just created it
                        self._create_schema()
                        self._db.executemany(
                            "INSERT INTO agentloop_meta VALUES (?, ?)",
                            [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))],
                        )
            else:
                self._check_format(tables)
            mode = self._to_wal(busy_timeout)
            if str(mode).lower() != "wal":
                raise JournalError(
                    f"journal `{self.path}` could not switch to WAL mode (it is in {mode!r})."
                )
            self._db.execute(f"PRAGMA synchronous={synchronous}")

    def _to_wal(self, busy_timeout: float) -> str:
        """`PRAGMA journal_mode=WAL`, retried while the file is locked: switching to WAL takes
        an exclusive lock without SQLite's busy handler, so of processes opening a new journal
        at once one failed at once (~1 in 200 races of 6 openers) instead of waiting."""
        deadline, pause = time.monotonic() + busy_timeout, 0.001
        while True:
            try:
                return str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)  # a lock's backoff, as SQLite's own busy handler does
            pause = min(2 * pause, 0.05)

    def _create_schema(self) -> None:
        # one statement at a time: `executescript` would commit the open transaction
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(statement)

    def _table_names(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {row[0] for row in rows}

    def _check_format(self, tables: set[str]) -> None:
        if not tables:
            raise JournalError(f"`{self.path}` is an empty database, not an agentloop journal.")
        if "agentloop_meta" not in tables:
            found = ", ".join(sorted(tables)[:5])
            raise JournalError(
                f"`{self.path}` is an SQLite database of something else (its tables: {found}), "
                "not an agentloop journal; it was left untouched. Give the journal a file of "
                "its own."
            )
        meta = dict(self._db.execute("SELECT key, value FROM agentloop_meta").fetchall())
        if meta.get("format") != FORMAT:
            raise JournalError(
                f"`{self.path}` is not an agentloop journal (format {meta.get('format')!r}); "
                "it was left untouched."
            )
        try:
            version = int(meta.get("schema_version", "0"))
        except ValueError:
            raise JournalError(
                f"journal `{self.path}` has an unreadable schema version "
                f"{meta.get('schema_version')!r}; it was left untouched."
            ) from None
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal `{self.path}` has schema version {version}, newer than this "
                f"agentloop's ({SCHEMA_VERSION}); upgrade agentloop to read it. It was left "
                "untouched."
            )
        if version < SCHEMA_VERSION:  # no older schema has existed yet
            raise JournalError(f"journal `{self.path}` has unknown schema version {version}.")

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
        now = time.time()
        with self._errors(f"read for run `{run_id}`"), self._transaction():
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM agentloop_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            previous = None if row is None else summary_from_row(row)
            if previous is None:
                self._db.execute(
                    "INSERT INTO agentloop_runs (run_id, status, task, fingerprint, started_at, "
                    "updated_at, attempts, holder_token, holder_host, holder_pid, lease_expires)"
                    " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                    (
                        run_id,
                        RunStatus.RUNNING,
                        task,
                        fingerprint,
                        now,
                        now,
                        *_held(holder, now, lease_seconds),
                    ),
                )
                return Claim(previous=None)
            if previous.status is RunStatus.COMPLETED:
                return Claim(previous=previous)
            check_claim(previous, task=task, fingerprint=fingerprint, now=now, force=force)
            self._db.execute(
                "UPDATE agentloop_runs SET status = ?, updated_at = ?, attempts = attempts + 1, "
                "fingerprint = ?, error = NULL, holder_token = ?, holder_host = ?, "
                "holder_pid = ?, lease_expires = ? WHERE run_id = ?",
                (RunStatus.RUNNING, now, fingerprint, *_held(holder, now, lease_seconds), run_id),
            )
            return Claim(previous=previous, entries=self._entries(run_id))

    def append(
        self,
        run_id: str,
        holder: LeaseHolder,
        entries: Sequence[JournalEntry],
        lease_seconds: float,
    ) -> None:
        now = time.time()
        steps = sum(1 for e in entries if e.kind is EntryKind.MODEL_REPLY)
        tasks = sum(1 for e in entries if e.kind is EntryKind.SUBMITTED)
        with self._errors(f"written for run `{run_id}`"), self._transaction():
            self._renew(run_id, holder, now, lease_seconds, steps, tasks)
            if entries:
                self._db.executemany(
                    "INSERT INTO agentloop_entries VALUES (?, ?, ?, ?)",
                    [(run_id, e.seq, e.kind.value, json.dumps(e.data)) for e in entries],
                )

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, JournalError]:
        """Every run's part in one transaction (one commit for a burst of many runs); a run
        whose lease is lost or whose new id is taken is skipped and reported."""
        now = time.time()
        errors: dict[str, JournalError] = {}
        with self._errors("written"), self._transaction():
            for write in writes:
                self._db.execute("SAVEPOINT agentloop_run")  # a refused run writes nothing
                try:
                    self._write_one(write, now, lease_seconds)
                    self._db.execute("RELEASE agentloop_run")
                except (RunLeasedError, sqlite3.IntegrityError) as exc:  # this run only
                    self._db.execute("ROLLBACK TO agentloop_run")
                    self._db.execute("RELEASE agentloop_run")
                    errors[write.run_id] = (
                        exc
                        if isinstance(exc, RunLeasedError)
                        else RunLeasedError(f"run `{write.run_id}` could not be written: {exc}.")
                    )
        return errors

    def _write_one(self, write: RunWrite, now: float, lease_seconds: float) -> None:
        run_id, holder, entries = write.run_id, write.holder, write.entries
        if write.new is not None:
            self._db.execute(
                "INSERT INTO agentloop_runs (run_id, status, task, fingerprint, started_at, "
                "updated_at, attempts, holder_token, holder_host, holder_pid, lease_expires)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (
                    *(run_id, RunStatus.RUNNING, write.new.task, write.new.fingerprint, now, now),
                    *_held(holder, now, lease_seconds),
                ),
            )
        steps = sum(1 for e in entries if e.kind is EntryKind.MODEL_REPLY)
        tasks = sum(1 for e in entries if e.kind is EntryKind.SUBMITTED)
        self._renew(run_id, holder, now, lease_seconds, steps, tasks)
        if entries:
            self._db.executemany(
                "INSERT INTO agentloop_entries VALUES (?, ?, ?, ?)",
                [(run_id, e.seq, e.kind.value, json.dumps(e.data)) for e in entries],
            )
        end = write.end
        if end is not None:
            self._db.execute(
                "UPDATE agentloop_runs SET status = ?, updated_at = ?, answer = ?, error = ?, "
                "holder_token = NULL, holder_host = NULL, holder_pid = NULL, "
                "lease_expires = NULL WHERE run_id = ?",
                (
                    end.status,
                    now,
                    None if end.answer is None else json.dumps(end.answer),
                    end.error,
                    run_id,
                ),
            )

    def finish(
        self,
        run_id: str,
        holder: LeaseHolder,
        status: RunStatus,
        *,
        answer: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        now = time.time()
        with self._errors(f"written for run `{run_id}`"), self._transaction():
            self._renew(run_id, holder, now, 0.0, 0, 0)
            self._db.execute(
                "UPDATE agentloop_runs SET status = ?, updated_at = ?, answer = ?, error = ?, "
                "holder_token = NULL, holder_host = NULL, holder_pid = NULL, "
                "lease_expires = NULL WHERE run_id = ?",
                (status, now, None if answer is None else json.dumps(answer), error, run_id),
            )

    def runs(self, limit: int = 100) -> list[RunSummary]:
        with self._errors("read"):
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM agentloop_runs ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [summary_from_row(row) for row in rows]

    def run(self, run_id: str) -> RunSummary | None:
        with self._errors("read"):
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM agentloop_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else summary_from_row(row)

    def entries(self, run_id: str) -> list[JournalEntry]:
        with self._errors("read"):
            return self._entries(run_id)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- helpers --------------------------------------------------------------------------------

    def _entries(self, run_id: str) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT seq, kind, data FROM agentloop_entries WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        try:
            return [JournalEntry(seq=s, kind=EntryKind(k), data=json.loads(d)) for s, k, d in rows]
        except ValueError as exc:
            raise JournalError(
                f"journal `{self.path}` has an unreadable entry for run `{run_id}` ({exc}); "
                "it was left untouched."
            ) from None

    def _renew(
        self,
        run_id: str,
        holder: LeaseHolder,
        now: float,
        lease_seconds: float,
        steps: int,
        tasks: int,
    ) -> None:
        updated = self._db.execute(
            "UPDATE agentloop_runs SET updated_at = ?, lease_expires = ?, steps = steps + ?, "
            "tasks = tasks + ? WHERE run_id = ? AND holder_token = ?",
            (now, now + lease_seconds, steps, tasks, run_id, holder.token),
        ).rowcount
        if updated != 1:
            raise RunLeasedError(
                f"run `{run_id}` is no longer leased to this process (pid {holder.pid}): its "
                "lease expired and another process took the run over. This attempt stops "
                "writing; the other one carries on."
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock first, so a claim's read-then-write is atomic
        across processes. Callers of the interface hold `self._lock` through `_errors`."""
        if self.read_only:
            raise JournalError(f"journal `{self.path}` was opened read-only; it takes no writes.")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does); a failed COMMIT leaves
            # the transaction open. Either way nothing of it is kept, and the error is raised.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Hold the connection's lock; turn sqlite3's errors into `JournalError`s that say
        which file and what happened."""
        with self._lock:
            if self._closed:
                raise JournalError(f"journal `{self.path}` is closed.")
            try:
                yield
            except sqlite3.DatabaseError as exc:
                raise JournalError(_explain(self.path, what, exc)) from None


def _held(holder: LeaseHolder, now: float, lease_seconds: float) -> tuple[Any, ...]:
    """The lease columns: holder token, host, pid, and when the lease expires."""
    return (holder.token, holder.host, holder.pid, now + lease_seconds)


def _explain(path: Path, what: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return (
            f"`{path}` is not a readable SQLite journal ({text}); it could not be {what} and "
            "was left untouched."
        )
    if "locked" in text or "busy" in text:
        return (
            f"journal `{path}` could not be {what}: the database is locked by another process "
            f"({text}). Nothing was written; the run stops rather than lose records."
        )
    if "full" in text:
        return (
            f"journal `{path}` could not be {what}: the disk (or the database's size limit) is "
            f"full ({text}). Nothing was written; the run stops rather than lose records."
        )
    return f"journal `{path}` could not be {what}: {text}."


def _check_writable(path: Path) -> None:
    """Refuse a journal agentloop could read but never write, at creation rather than at the
    first record of a run."""
    where = path if path.exists() else path.parent
    if not where.exists():
        raise JournalError(f"journal `{path}`: the directory `{where}` does not exist.")
    if path.exists() and path.is_dir():
        raise JournalError(f"journal `{path}` is a directory; give the path of a file.")
    if not os.access(where, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise JournalError(
            f"journal `{path}` is on a read-only path (`{where}` is not writable); a journal "
            "must be able to record every step. Choose a writable location."
        )
