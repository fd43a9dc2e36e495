"""SQLite journal files that cannot be used: each is refused (or the write fails) with a
`JournalError` that says what is wrong, and the file is left as it was."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from agentloop import JournalError
from agentloop.journal import EntryKind, JournalEntry, LeaseHolder, SQLiteJournal
from agentloop.journal._codec import UnjournalableError, encode
from agentloop.journal.sqlite import SCHEMA_VERSION

LEASE = 30.0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def started(path: Path, **options: object) -> tuple[SQLiteJournal, LeaseHolder]:
    journal = SQLiteJournal(path, **options)  # type: ignore[arg-type]
    holder = LeaseHolder()
    journal.claim("r1", task="t", fingerprint="f", holder=holder, lease_seconds=LEASE, force=False)
    return journal, holder


def entry(seq: int, size: int = 10) -> JournalEntry:
    return JournalEntry(seq=seq, kind=EntryKind.MODEL_REPLY, data={"content": "x" * size})


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is a text file, not a database\n" * 100, id="text"),
        pytest.param(b"SQLite format 3\x00" + bytes(range(256)) * 16, id="bad-header"),
    ],
)
def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "runs.sqlite"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=r"runs\.sqlite.*(not a readable|left untouched)"):
        SQLiteJournal(path)
    assert path.read_bytes() == content


def test_a_damaged_journal_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    journal, holder = started(path)
    journal.append("r1", holder, [entry(n, 2000) for n in range(20)], LEASE)
    journal.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # page 1 (the schema) after the header
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(JournalError, match=r"left untouched|malformed"):
        SQLiteJournal(path).entries("r1")
    assert digest(path) == before


def test_a_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        other.execute("INSERT INTO users (name) VALUES ('ada')")
    other.close()
    before = digest(path)
    with pytest.raises(JournalError, match=r"something else \(its tables: users\)"):
        SQLiteJournal(path)
    assert digest(path) == before


def test_a_table_named_like_ours_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE agentloop_meta (key TEXT PRIMARY KEY, value TEXT)")
        other.execute("INSERT INTO agentloop_meta VALUES ('format', 'someone-else')")
    other.close()
    before = digest(path)
    with pytest.raises(JournalError, match=r"not an agentloop journal.*someone-else"):
        SQLiteJournal(path)
    assert digest(path) == before


def test_a_journal_of_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    started(path)[0].close()
    with sqlite3.connect(path) as other:
        other.execute(
            "UPDATE agentloop_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    other.close()
    before = digest(path)
    with pytest.raises(JournalError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        SQLiteJournal(path)
    assert digest(path) == before


def test_an_unreadable_schema_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    started(path)[0].close()
    with sqlite3.connect(path) as other:
        other.execute("UPDATE agentloop_meta SET value = 'two' WHERE key = 'schema_version'")
    other.close()
    before = digest(path)
    with pytest.raises(JournalError, match="unreadable schema version 'two'"):
        SQLiteJournal(path)
    assert digest(path) == before


def test_a_path_under_proc_is_refused_at_creation() -> None:
    # chmod does not stop root; /proc refuses even root (os.access may say yes for /proc
    # itself, and then opening the file fails)
    with pytest.raises(JournalError, match="read-only path"):
        SQLiteJournal("/proc/self/runs.sqlite")
    with pytest.raises(JournalError, match=r"read-only path|cannot be opened"):
        SQLiteJournal("/proc/runs.sqlite")


def test_a_read_only_directory_is_refused_at_creation(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user writes through chmod (root): the /proc test covers it")
        with pytest.raises(JournalError, match="read-only path"):
            SQLiteJournal(folder / "runs.sqlite")
    finally:
        folder.chmod(0o755)
    assert not (folder / "runs.sqlite").exists()


def test_a_directory_or_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a directory"):
        SQLiteJournal(tmp_path)
    with pytest.raises(JournalError, match="does not exist"):
        SQLiteJournal(tmp_path / "missing" / "runs.sqlite")


def test_a_full_disk_fails_the_write_loudly_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    journal, holder = started(path)
    journal.append("r1", holder, [entry(0)], LEASE)
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the database's size limit
    with pytest.raises(JournalError, match="full"):
        journal.append("r1", holder, [entry(1), entry(2, 200_000)], LEASE)
    assert [e.seq for e in journal.entries("r1")] == [0]  # nothing of the failed batch
    journal.close()
    again = SQLiteJournal(path)
    assert [e.seq for e in again.entries("r1")] == [0]
    again.close()


def test_a_locked_database_fails_the_write_loudly(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    journal, holder = started(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError, match="locked by another process"):
            journal.append("r1", holder, [entry(0)], LEASE)
        with pytest.raises(JournalError, match="locked"):
            journal.claim(
                "r2", task="t", fingerprint="f", holder=holder, lease_seconds=LEASE, force=False
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert journal.entries("r1") == []
    journal.append("r1", holder, [entry(0)], LEASE)  # usable again once the lock is gone
    assert [e.seq for e in journal.entries("r1")] == [0]
    journal.close()


def test_a_value_neither_json_nor_picklable_is_refused_at_encoding() -> None:
    with pytest.raises(UnjournalableError, match="the result of `t1` cannot be journaled"):
        encode(lambda: None, "the result of `t1`")
