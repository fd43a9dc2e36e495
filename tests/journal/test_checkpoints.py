"""SQLite's log is checkpointed off the commit path: the writer starts `Journal.checkpoint` in a
thread of its own between commits and never waits for it; a journal written directly is kept
bounded by the writing connection's own (rarer) checkpoints; `close` is safe beside a running
checkpoint."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentloop import JournalError
from agentloop.journal import (
    EntryKind,
    JournalEntry,
    LeaseHolder,
    NewRun,
    RunWrite,
    SQLiteJournal,
    _wal,
)
from agentloop.journal import sqlite as sqlite_journal
from agentloop.journal._writer import JournalWriter, RunLog

from .conftest import Store

LEASE = 30.0
PAYLOAD = "x" * 16_000
"""An entry of about four pages."""


class Tracked(SQLiteJournal):
    """Counts the checkpoints started and done, and wakes a test on the loop after each."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.started = self.done = 0
        self.woken: asyncio.Event | None = None
        self._loop = asyncio.get_running_loop()

    def checkpoint(self) -> None:
        self.started += 1
        super().checkpoint()
        self.done += 1
        if self.woken is not None:
            self._loop.call_soon_threadsafe(self.woken.set)


class HeldConnection(sqlite3.Connection):
    """A checkpoint's connection, held in its statement (the checkpoint's lock held) until the
    test's gate opens. With `mid_copy`, an interrupt meanwhile fails the statement, as SQLite
    fails a checkpoint it interrupts mid-copy; without, it changes nothing, as when it comes
    before the copy."""

    started: threading.Event
    gate: threading.Event
    mid_copy = False
    interrupted = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.started.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.interrupted and self.mid_copy:
            raise sqlite3.OperationalError("interrupted")
        return super().execute(sql, *args)

    def interrupt(self) -> None:
        self.interrupted = True
        super().interrupt()


@dataclass
class Hold:
    started: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    connections: list[HeldConnection] = field(default_factory=list)


def hold_checkpoints(journal: SQLiteJournal, *, mid_copy: bool = False) -> Hold:
    """Run `journal`'s checkpoints on a `HeldConnection`."""
    hold = Hold()

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(
            journal.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
            factory=HeldConnection,
        )
        db.started, db.gate, db.mid_copy = hold.started, hold.gate, mid_copy
        hold.connections.append(db)
        return db

    assert journal._checkpointer is not None
    journal._checkpointer._connect = connect  # type: ignore[method-assign]
    return hold


class FailingCheckpoint(SQLiteJournal):
    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(path)
        self.error = error
        self.calls = 0

    def checkpoint(self) -> None:
        self.calls += 1
        raise self.error


def open_run(writer: JournalWriter, run_id: str = "r1") -> RunLog:
    def fail(exc: JournalError) -> None:
        raise AssertionError(f"the run failed: {exc}")

    return writer.open_log(
        run_id, LeaseHolder(), last_seq=0, new=NewRun(task="t", fingerprint="f"), on_failure=fail
    )


async def commit(log: RunLog, payload: str = PAYLOAD) -> None:
    """Queue one entry and wait until it is committed."""
    version = log.add(EntryKind.EVENT, {"payload": payload})
    async with asyncio.timeout(10):
        await log.durable(version)


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


# -- through the writer --------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoints", [True, False], ids=["checkpointed", "never"])
async def test_a_writer_checkpoints_the_log_so_its_file_stops_growing(
    tmp_path: Path, checkpoints: bool
) -> None:
    path = tmp_path / "runs.sqlite"
    journal = Tracked(path)
    writer = JournalWriter(
        journal, lease_seconds=LEASE, checkpoint_every=0.0 if checkpoints else 3600.0
    )
    log = open_run(writer)
    for n in range(1, 31):
        journal.woken = asyncio.Event()
        await commit(log)
        if checkpoints:  # the commit started one: let it finish before the next commit
            async with asyncio.timeout(10):
                await journal.woken.wait()
            assert journal.done == n
    await writer.aclose()
    log_size, file_size = wal_size(path), path.stat().st_size
    journal.close()  # (closing the last connection checkpoints, and removes the log)
    one_commit = len(PAYLOAD)
    if checkpoints:
        # each commit found the log copied, and wrote it again from the top
        assert log_size < 5 * one_commit
        assert file_size > 30 * one_commit  # the entries are in the database file
    else:
        assert journal.done == 0
        assert log_size > 30 * one_commit
    with SQLiteJournal(path, read_only=True) as reread:
        assert len(reread.entries("r1")) == 30


async def test_a_short_lived_writer_starts_no_checkpoint(tmp_path: Path) -> None:
    journal = Tracked(tmp_path / "runs.sqlite")
    writer = JournalWriter(journal, lease_seconds=LEASE)  # the default: one a second at most
    log = open_run(writer)
    for _ in range(3):
        await commit(log, "short")
    await writer.aclose()
    journal.close()
    assert journal.started == 0


async def test_commits_go_on_while_a_checkpoint_is_held_up_and_none_starts_beside_it(
    tmp_path: Path,
) -> None:
    journal = Tracked(tmp_path / "runs.sqlite")
    hold = hold_checkpoints(journal)
    writer = JournalWriter(journal, lease_seconds=LEASE, checkpoint_every=0.0)
    log = open_run(writer)
    await commit(log)
    async with asyncio.timeout(10):
        await asyncio.to_thread(hold.started.wait)
    for _ in range(5):  # each a flush round that commits while the checkpoint is held
        await commit(log)
    assert [e.seq for e in journal.entries("r1")] == [1, 2, 3, 4, 5, 6]
    assert (journal.started, journal.done) == (1, 0)
    hold.gate.set()
    await writer.aclose()
    assert journal.done >= 1
    journal.close()


async def test_aclose_waits_for_a_running_checkpoint(tmp_path: Path) -> None:
    journal = Tracked(tmp_path / "runs.sqlite")
    hold = hold_checkpoints(journal)
    writer = JournalWriter(journal, lease_seconds=LEASE, checkpoint_every=0.0)
    await commit(open_run(writer))
    async with asyncio.timeout(10):
        await asyncio.to_thread(hold.started.wait)
    closing = asyncio.create_task(writer.aclose())
    done, _ = await asyncio.wait({closing}, timeout=0.05)
    assert not done  # it waits for the checkpoint, which waits for the gate
    hold.gate.set()
    async with asyncio.timeout(10):
        await closing
    assert journal.done == 1
    journal.close()


@pytest.mark.parametrize(
    "error",
    [JournalError("the disk is on fire"), RuntimeError("a broken store")],
    ids=["JournalError", "other"],
)
async def test_a_failed_checkpoint_is_logged_and_the_runs_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    journal = FailingCheckpoint(tmp_path / "runs.sqlite", error)
    writer = JournalWriter(journal, lease_seconds=LEASE, checkpoint_every=0.0)
    log = open_run(writer)
    with caplog.at_level(logging.WARNING, logger="agentloop"):
        for _ in range(5):
            await commit(log, "entry")
        await writer.aclose()
    assert log.failure is None
    assert journal.calls >= 1
    assert len(journal.entries("r1")) == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("checkpoint failed" in w and str(error) in w for w in warnings)
    journal.close()


# -- the journal on its own ----------------------------------------------------------------------


def write_directly(journal: SQLiteJournal, commits: int) -> None:
    holder = LeaseHolder()
    new = NewRun(task="t", fingerprint="f")
    for n in range(1, commits + 1):
        entry = JournalEntry(seq=n, kind=EntryKind.EVENT, data={"payload": PAYLOAD})
        write = RunWrite(run_id="r1", holder=holder, entries=[entry], new=new if n == 1 else None)
        assert journal.write([write], LEASE) == {}


def test_the_writing_connection_checkpoints_only_past_the_safety_net(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "runs.sqlite")
    (pages,) = journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()
    journal.close()
    assert pages == _wal.AUTOCHECKPOINT_PAGES > 1000  # SQLite's default, inside commits


@pytest.mark.parametrize("safety_net", [64, 100_000])
def test_a_journal_written_directly_keeps_its_log_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, safety_net: int
) -> None:
    monkeypatch.setattr(sqlite_journal, "AUTOCHECKPOINT_PAGES", safety_net)
    path = tmp_path / "runs.sqlite"
    journal = SQLiteJournal(path)
    write_directly(journal, 60)  # ~240 pages, nothing else checkpoints
    log_size = wal_size(path)
    journal.close()
    if safety_net < 100:  # the last commit past it copied the log, the next started it again
        assert log_size < (safety_net + 20) * 4096
    else:
        assert log_size > 60 * len(PAYLOAD)


def test_a_checkpoint_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    path, alone = tmp_path / "runs.sqlite", tmp_path / "alone.sqlite"
    journal = SQLiteJournal(path)
    write_directly(journal, 20)
    journal.checkpoint()
    alone.write_bytes(path.read_bytes())  # the database file without its log
    journal.close()
    with SQLiteJournal(alone) as copied:
        assert len(copied.entries("r1")) == 20


def test_read_only_and_closed_journals_have_nothing_to_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    journal = SQLiteJournal(path)
    write_directly(journal, 2)
    reader = SQLiteJournal(path, read_only=True)
    reader.checkpoint()
    assert reader._checkpointer is None
    reader.close()
    journal.close()
    journal.checkpoint()  # nothing, no error
    journal.close()


def test_every_store_takes_a_checkpoint(journal_store: Store) -> None:
    journal = journal_store.open()
    journal.checkpoint()
    journal.close()
    journal.checkpoint()


# -- closing beside a running checkpoint ---------------------------------------------------------


@pytest.mark.parametrize("mid_copy", [True, False], ids=["mid-copy", "before-copy"])
def test_close_interrupts_and_waits_for_a_running_checkpoint_and_closes_its_connection(
    tmp_path: Path, mid_copy: bool
) -> None:
    journal = SQLiteJournal(tmp_path / "runs.sqlite")
    write_directly(journal, 5)
    hold = hold_checkpoints(journal, mid_copy=mid_copy)
    errors: list[BaseException] = []

    def checkpoint() -> None:
        try:
            journal.checkpoint()
        except BaseException as exc:
            errors.append(exc)

    checkpointing = threading.Thread(target=checkpoint)
    checkpointing.start()
    assert hold.started.wait(10)
    closing = threading.Thread(target=journal.close)
    closing.start()
    closing.join(0.05)
    assert closing.is_alive()  # waiting for the checkpoint
    hold.gate.set()
    checkpointing.join(10)
    closing.join(10)
    assert not checkpointing.is_alive() and not closing.is_alive()
    assert errors == []  # an interrupted checkpoint of a closing journal is no failure
    (held,) = hold.connections
    assert held.interrupted
    with pytest.raises(sqlite3.ProgrammingError):  # closed: nothing leaks
        sqlite3.Connection.execute(held, "SELECT 1")
    assert journal._checkpointer is not None and journal._checkpointer._db is None
    journal.checkpoint()  # closed: nothing, no error
