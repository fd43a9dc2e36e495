"""The default journal: one SQLite file (stdlib `sqlite3`), shared by the processes of one host.

Durability: WAL mode with `synchronous=NORMAL` by default. Each write is a committed
transaction, so a process killed at any point (`SIGKILL`, OOM) loses nothing it committed; an
OS crash or power cut may lose the last few commits before a checkpoint. `synchronous="FULL"`
syncs every commit to disk as well, at a cost of a disk flush per write. Checkpoints run off
the commit path, on a connection of their own (`_wal`): the agent's writer asks for one about
once a second.

The file is never rewritten or "repaired": a file that is not SQLite, an SQLite database of some
other application, or a journal of a newer schema is refused with a `JournalError`, and so is
a path agentloop cannot write. Writes that fail (disk full, the database locked by another
process for longer than `busy_timeout`) raise `JournalError` and the run fails.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..errors import JournalError, RunLeasedError
from ._sql import SCHEMA_VERSION, Dialect, Statements, check_meta, write_params
from ._sqlstore import SQLStore, execute, lease_lost
from ._wal import AUTOCHECKPOINT_PAGES, WalCheckpointer
from .base import RunWrite

__all__ = ["SCHEMA_VERSION", "SQLiteJournal"]

_SQL = Statements.render(
    Dialect(
        placeholder="?",
        now=":now",  # the process's clock: each call passes it
        text="TEXT",
        real="REAL",
        integer="INTEGER",
        bigint="INTEGER",
        entries_options=" WITHOUT ROWID",
    )
)
_INSERT_ENTRIES = f"INSERT INTO {_SQL.entries} VALUES (?, ?, ?, ?)"


class SQLiteJournal(SQLStore[sqlite3.Connection]):
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
        super().__init__(
            name=f"journal `{self.path}`", read_only=read_only, driver_error=sqlite3.DatabaseError
        )
        self._sql = _SQL
        self._checkpointer = None if read_only else WalCheckpointer(self.path)
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
                with self._session("opened"):
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
        with self._session("opened") as db:
            tables = self._table_names()
            if not tables:
                self._to_wal(busy_timeout)
                with self._transaction(db):
                    if not self._table_names():  # another process may have just created it
                        self._create_tables(db)
            else:
                self._check_format(tables)
            mode = self._to_wal(busy_timeout)
            if str(mode).lower() != "wal":
                raise JournalError(
                    f"journal `{self.path}` could not switch to WAL mode (it is in {mode!r})."
                )
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # see `checkpoint`

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
        meta = dict(execute(self._db, self._sql.select_meta, {}).fetchall())
        check_meta(meta, where=f"`{self.path}`", journal=self._name)

    # -- the interface --------------------------------------------------------------------------

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, JournalError]:
        """Every run's part in one transaction (one commit for a burst of many runs); a run
        whose lease is lost or whose new id is taken is skipped and reported."""
        now = time.time()
        errors: dict[str, JournalError] = {}
        with self._session("written", write=True) as db, self._transaction(db):
            for write in writes:
                db.execute("SAVEPOINT agentloop_run")  # a refused run writes nothing
                try:
                    self._write_run(db, write, now, lease_seconds)
                    db.execute("RELEASE agentloop_run")
                except (RunLeasedError, sqlite3.IntegrityError) as exc:  # this run only
                    db.execute("ROLLBACK TO agentloop_run")
                    db.execute("RELEASE agentloop_run")
                    errors[write.run_id] = (
                        exc
                        if isinstance(exc, RunLeasedError)
                        else RunLeasedError(f"run `{write.run_id}` could not be written: {exc}.")
                    )
        return errors

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (`PRAGMA wal_checkpoint(PASSIVE)`)
        on a second connection, so that a write goes on meanwhile: the writing connection
        checkpoints inside a commit only past `_wal.AUTOCHECKPOINT_PAGES`, where SQLite would
        every 1000 pages. Nothing to do when read-only or closed."""
        if self._checkpointer is None:
            return
        try:
            self._checkpointer.run()
        except sqlite3.Error as exc:
            raise JournalError(
                f"journal `{self.path}` could not be checkpointed ({exc}); its commits are "
                "safe in its write-ahead log, and a later checkpoint copies them."
            ) from None

    def close(self) -> None:
        super().close()
        if self._checkpointer is not None:
            self._checkpointer.close()

    # -- helpers --------------------------------------------------------------------------------

    def _write_one(self, write: RunWrite, lease_seconds: float) -> None:
        now, what = time.time(), f"written for run `{write.run_id}`"
        with self._session(what, write=True) as db, self._transaction(db):
            self._write_run(db, write, now, lease_seconds)

    def _write_run(
        self, db: sqlite3.Connection, write: RunWrite, now: float, lease_seconds: float
    ) -> None:
        """Create the run if it is new, renew its lease (or end it) if this holder still
        holds it, and insert its entries."""
        values = write_params(write, lease_seconds)
        values["now"] = now
        if write.new is not None:
            execute(db, self._sql.insert_run, values)
        if execute(db, self._sql.update(write), values).rowcount != 1:
            raise lease_lost(write.run_id, write.holder)
        if write.entries:
            run_id = write.run_id
            db.executemany(
                _INSERT_ENTRIES,
                [(run_id, e.seq, e.kind.value, json.dumps(e.data)) for e in write.entries],
            )

    def _clocked(self, values: dict[str, Any]) -> dict[str, Any]:
        values["now"] = time.time()
        return values

    def _insert_or_lock(self, db: sqlite3.Connection, values: Mapping[str, Any]) -> Any:
        """The transaction holds the file's write lock already: read, then insert if new."""
        row = execute(db, self._sql.select_run, values).fetchone()
        if row is None:
            execute(db, self._sql.insert_run, values)
        return row

    def _now(self, db: sqlite3.Connection, values: Mapping[str, Any]) -> float:
        return float(values["now"])

    @contextmanager
    def _transaction(self, db: sqlite3.Connection) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock first, so a claim's read-then-write is atomic
        across processes. Callers hold `self._lock` through `_session`."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does); a failed COMMIT leaves
            # the transaction open. Either way nothing of it is kept, and the error is raised.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _explain(self, what: str, exc: Exception) -> str:
        text, path = str(exc), self.path
        if "not a database" in text or "malformed" in text:
            return (
                f"`{path}` is not a readable SQLite journal ({text}); it could not be {what} "
                "and was left untouched."
            )
        if "locked" in text or "busy" in text:
            return (
                f"journal `{path}` could not be {what}: the database is locked by another "
                f"process ({text}). Nothing was written; the run stops rather than lose records."
            )
        if "full" in text:
            return (
                f"journal `{path}` could not be {what}: the disk (or the database's size limit) "
                f"is full ({text}). Nothing was written; the run stops rather than lose records."
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
