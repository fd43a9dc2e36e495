"""A journal row someone else wrote badly (a hand edit, another tool, a crafted file) is a
`JournalError` naming the run and the column, from every reader: the store, `agent.runs()` and
`agentloop runs` (one error line, exit code 2, no traceback)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from agentloop import JournalError, SQLiteJournal, create_async_agent
from agentloop.journal import EntryKind, JournalEntry, LeaseHolder
from agentloop.testing import ScriptedModel

from ..cli.test_run_command import assert_one_clean_error, cli

pytestmark = pytest.mark.timeout(60)

RUN = "run-bad-row"

BAD_VALUES = [
    ("started_at", "'yesterday'"),
    ("updated_at", "'soon'"),
    ("attempts", "'many'"),
    ("steps", "'x'"),
    ("tasks", "'y'"),
    ("holder_pid", "'pid-7'"),
    ("lease_expires", "'never'"),
    ("answer", "'{not json'"),
    ("answer", "'[1, 2]'"),
    ("status", "'paused'"),
]


def journal_with_one_bad_row(path: Path, column: str, value: str) -> None:
    """One run that is held (so it has a holder and a lease), then one column overwritten."""
    with SQLiteJournal(path) as journal:
        journal.claim(
            RUN, task="t", fingerprint="f", holder=LeaseHolder(), lease_seconds=60, force=False
        )
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE agentloop_runs SET {column} = {value} WHERE run_id = ?", (RUN,))


@pytest.mark.parametrize(("column", "value"), BAD_VALUES, ids=[f"{c}={v}" for c, v in BAD_VALUES])
async def test_every_reader_names_the_run_and_the_column(
    tmp_path: Path, column: str, value: str
) -> None:
    path = tmp_path / "runs.sqlite"
    journal_with_one_bad_row(path, column, value)

    with SQLiteJournal(path, read_only=True) as journal:
        for read in (journal.runs, lambda: journal.run(RUN)):
            with pytest.raises(JournalError) as caught:
                read()
            assert f"`{RUN}`" in str(caught.value) and column in str(caught.value)

    agent = create_async_agent(model=ScriptedModel([]), journal=path)
    try:
        with pytest.raises(JournalError) as caught:
            await agent.runs()
        assert f"`{RUN}`" in str(caught.value) and column in str(caught.value)
    finally:
        await agent.aclose()


@pytest.mark.parametrize("column", ["started_at", "holder_pid", "answer"])
def test_agentloop_runs_prints_one_error_line_and_exits_2(tmp_path: Path, column: str) -> None:
    path = tmp_path / "runs.sqlite"
    journal_with_one_bad_row(path, column, dict(BAD_VALUES)[column])
    for args in (("runs", "--journal", str(path)), ("runs", "--journal", str(path), RUN)):
        result = cli(*args)
        assert result.returncode == 2, result.stderr
        assert_one_clean_error(result, RUN, column)


BAD_ENTRIES = [("kind", "'teleported'"), ("data", "'{not json'"), ("data", "'\"text\"'")]


@pytest.mark.parametrize(("column", "value"), BAD_ENTRIES, ids=[f"{c}={v}" for c, v in BAD_ENTRIES])
def test_an_unreadable_entry_names_the_run_the_entry_and_the_column(
    tmp_path: Path, column: str, value: str
) -> None:
    path = tmp_path / "runs.sqlite"
    holder = LeaseHolder()
    with SQLiteJournal(path) as journal:
        journal.claim(RUN, task="t", fingerprint="f", holder=holder, lease_seconds=60, force=False)
        journal.append(RUN, holder, [JournalEntry(1, EntryKind.SLEPT, {"seconds": 1})], 60)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE agentloop_entries SET {column} = {value} WHERE run_id = ?", (RUN,))

    with SQLiteJournal(path, read_only=True) as journal, pytest.raises(JournalError) as caught:
        journal.entries(RUN)
    assert f"`{RUN}`" in str(caught.value) and f"`{column}`" in str(caught.value)

    result = cli("runs", "--journal", str(path), RUN)
    assert result.returncode == 2, result.stderr
    assert_one_clean_error(result, RUN, column)
