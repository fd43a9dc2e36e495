"""`agentloop runs --journal FILE [RUN_ID]`: a subprocess reading journals built here through
`SQLiteJournal` itself (claim, append, finish), one run of each state the command shows."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import types
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentloop import JournalError, SQLiteJournal
from agentloop.cli import runs_cmd
from agentloop.cli.runs_text import entry_summary, stored_value
from agentloop.journal import EntryKind, Journal, JournalEntry, LeaseHolder, RunStatus
from agentloop.journal._codec import encode

from .test_run_command import _environment, assert_one_clean_error, cli

pytestmark = pytest.mark.timeout(60)

STARTED = 1772600767.0
"""2026-03-04 05:06:07 UTC: the started time of every run (the tests run the CLI with TZ=UTC)."""
STARTED_TEXT = "2026-03-04 05:06:07"
TASK = "Double 0, 1 and 2, fetch the title of https://example.com and write it all up nicely"
PICKLED_RESULT = (3, "three")
"""A result as agentloop 0.1 stored a tuple: pickled (shown by its size, never unpickled)."""
PICKLED = {"pickle": base64.b64encode(pickle.dumps(PICKLED_RESULT, protocol=5)).decode()}
SUMMARY_KEYS = {
    "run_id", "status", "task", "started_at", "updated_at", "steps", "tasks", "attempts",
    "answer", "answer_repr", "error", "fingerprint", "lease",
}  # fmt: skip

ENTRIES: list[tuple[EntryKind, dict[str, Any]]] = [
    (EntryKind.MODEL_REPLY, {
        "content": "Thought: fan out, then wait once.\n<code>\nids = [...]\n</code>",
        "input_tokens": 812, "output_tokens": 64,
    }),
    (EntryKind.SUBMITTED, {"task_id": "slow_double_1", "target": "slow_double"}),
    (EntryKind.SUBMITTED, {"task_id": "deploy_2", "target": "deploy"}),
    (EntryKind.APPROVAL, {"task_id": "deploy_2", "approved": False, "reason": "not on a Friday"}),
    (EntryKind.OUTCOME, {
        "task_id": "slow_double_1", "status": "completed", "error": None,
        "result": encode({"doubled": [0, 2, 4]}, "result"),
    }),
    (EntryKind.OUTCOME, {
        "task_id": "fetch_title_3", "status": "completed", "error": None,
        "result": PICKLED,
    }),
    (EntryKind.OUTCOME, {
        "task_id": "deploy_2", "status": "failed", "result": None,
        "error": "ApprovalRejectedError: rejected: not on a Friday\nsecond line",
    }),
    (EntryKind.WAITED, {"completed": ["slow_double_1", "fetch_title_3"], "failed": ["deploy_2"]}),
    (EntryKind.SLEPT, {"seconds": 1.5}),
    (EntryKind.LOOKED, {"call": "get_task_results"}),
    (EntryKind.MODEL_REPLY, {
        "content": "Thought: done.\n<code>\nfinal_answer(x)\n</code>",
        "input_tokens": 1020, "output_tokens": 21,
    }),
]  # fmt: skip


@dataclass(frozen=True)
class Journals:
    path: Path
    dead_pid: int
    """A pid on this host whose process has ended (the stale run's holder)."""


def claim(journal: Journal, run_id: str, holder: LeaseHolder, lease: float = 300) -> None:
    journal.claim(
        run_id, task=TASK, fingerprint="f1", holder=holder, lease_seconds=lease, force=False
    )


def entries(records: list[tuple[EntryKind, dict[str, Any]]]) -> list[JournalEntry]:
    return [JournalEntry(seq=i, kind=kind, data=data) for i, (kind, data) in enumerate(records, 1)]


def build_journal(path: Path) -> int:
    """Five runs: completed (every kind of entry), failed, running with a live lease, running
    with an expired lease, running leased to a process of this host that is gone. Returns
    that gone process's pid."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead_pid = int(ended.stdout)
    with SQLiteJournal(path) as journal:
        done = LeaseHolder()
        claim(journal, "done-1", done)
        journal.append("done-1", done, entries(ENTRIES), 300)
        journal.finish("done-1", done, RunStatus.COMPLETED, answer=encode("doubled=[0, 2, 4]", "a"))
        broke = LeaseHolder()
        claim(journal, "broke-1", broke)
        journal.append("broke-1", broke, entries(ENTRIES[:2]), 300)
        journal.finish("broke-1", broke, RunStatus.FAILED, error="BudgetExceededError: 3 steps")
        claim(journal, "live-1", LeaseHolder())  # this test process: alive
        claim(journal, "expired-1", LeaseHolder(host="other-host", pid=4242), lease=-1)
        claim(journal, "stale-1", LeaseHolder(pid=dead_pid))
        tupled = LeaseHolder()
        claim(journal, "tupled-1", tupled)
        journal.finish("tupled-1", tupled, RunStatus.COMPLETED, answer=encode((1, 2), "a"))
    order = ["live-1", "expired-1", "stale-1", "broke-1", "done-1", "tupled-1"]  # newest first
    # fixed times, so the table's order and text are known
    with closing(sqlite3.connect(path)) as db, db:
        for age, run_id in enumerate(order):
            db.execute(
                "UPDATE agentloop_runs SET started_at = ?, updated_at = ? WHERE run_id = ?",
                (STARTED, STARTED + 100 - age, run_id),
            )
    return dead_pid


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Journals:
    path = tmp_path_factory.mktemp("journal") / "runs.sqlite"
    return Journals(path, build_journal(path))


def runs(*args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    return cli("runs", *args, env={"TZ": "UTC", "COLUMNS": str(columns)})


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's body rows by run id, each a list of its cells."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_the_list_shows_every_run_newest_first_with_its_state_and_lease(journals: Journals) -> None:
    result = runs("--journal", str(journals.path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = table_rows(result.stdout)
    assert list(rows) == ["live-1", "expired-1", "stale-1", "broke-1", "done-1", "tupled-1"]
    header = ["run id", "status", "task", "started", "updated", "steps", "tasks", "attempts"]
    assert [c.strip() for c in result.stdout.split("┃")[1:10]] == [*header, "lease"]
    _, status, task, started, _, steps, tasks, attempts, lease = rows["done-1"]
    assert (status, started, steps, tasks, attempts, lease) == (
        "completed", STARTED_TEXT, "2", "2", "1", "-",
    )  # fmt: skip
    assert task.endswith("…") and TASK.startswith(task[:-1]) and len(task) <= 40
    assert rows["broke-1"][1] == "failed"
    me = f"{os.getpid()}@{socket.gethostname()}"
    assert rows["live-1"][1] == "running"
    assert rows["live-1"][-1] in (f"{me} 4m left", f"{me} 5m left")  # a 300 s lease
    assert rows["expired-1"][-1] == "4242@other-host expired"
    assert rows["stale-1"][-1] == f"{journals.dead_pid}@{socket.gethostname()} stale"
    assert "--limit" not in result.stdout  # all six fit in the default 20


def test_limit_keeps_the_most_recently_updated_and_says_there_may_be_more(
    journals: Journals,
) -> None:
    result = runs("--journal", str(journals.path), "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert list(table_rows(result.stdout)) == ["live-1", "expired-1"]
    assert "the 2 most recently updated runs; --limit N shows more" in result.stdout


def test_on_a_narrow_terminal_the_task_gives_way_and_each_run_stays_on_one_line(
    journals: Journals,
) -> None:
    result = runs("--journal", str(journals.path), columns=130)
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(lines) == 6 and all(len(line) <= 130 for line in lines)
    rows = table_rows(result.stdout)
    assert rows["done-1"][3] == STARTED_TEXT and rows["expired-1"][-1].endswith("expired")
    assert len(rows["done-1"][2]) < 40


def test_json_prints_one_object_per_run_with_stable_keys(journals: Journals) -> None:
    result = runs("--journal", str(journals.path), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["run_id"] for line in lines] == [
        "live-1", "expired-1", "stale-1", "broke-1", "done-1", "tupled-1",
    ]  # fmt: skip
    assert all(set(line) == SUMMARY_KEYS for line in lines)
    by_id = {line["run_id"]: line for line in lines}
    done = by_id["done-1"]
    assert done["status"] == "completed" and done["answer"] == "doubled=[0, 2, 4]"
    assert (done["steps"], done["tasks"], done["attempts"], done["lease"]) == (2, 2, 1, None)
    assert done["started_at"] == STARTED and done["task"] == TASK and done["answer_repr"] is None
    assert by_id["broke-1"]["error"] == "BudgetExceededError: 3 steps"
    assert (by_id["tupled-1"]["answer"], by_id["tupled-1"]["answer_repr"]) == (None, "(1, 2)")
    assert by_id["live-1"]["lease"]["state"] == "live"
    assert by_id["live-1"]["lease"]["pid"] == os.getpid()
    assert by_id["expired-1"]["lease"] == {
        "host": "other-host",
        "pid": 4242,
        "expires_at": pytest.approx(by_id["expired-1"]["lease"]["expires_at"]),
        "state": "expired",
    }
    assert by_id["stale-1"]["lease"]["state"] == "stale"


def test_showing_a_run_gives_its_summary_and_one_line_per_entry(journals: Journals) -> None:
    result = runs("--journal", str(journals.path), "done-1")
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition("entries (11)")
    assert "run       done-1" in head and "status    completed" in head
    assert f"task      {TASK}" in head and f"started   {STARTED_TEXT}" in head
    assert "steps 2 · tasks 2 · attempts 1" in head
    assert "answer    doubled=[0, 2, 4]" in head
    lines = [line.split(None, 2) for line in body.strip().splitlines()]
    assert [int(seq) for seq, _, _ in lines] == list(range(1, 12))
    assert [kind for _, kind, _ in lines] == [kind.value for kind, _ in ENTRIES]
    pickled = len(pickle.dumps(PICKLED_RESULT, protocol=5))
    assert [text for _, _, text in lines] == [
        "Thought: fan out, then wait once. (+3 lines) · 812 in, 64 out",
        "slow_double_1 → slow_double",
        "deploy_2 → deploy",
        "deploy_2 rejected (not on a Friday)",
        "slow_double_1 completed: {'doubled': [0, 2, 4]}",
        f"fetch_title_3 completed: <pickled {pickled} bytes>",
        "deploy_2 failed: ApprovalRejectedError: rejected: not on a Friday",
        "completed slow_double_1, fetch_title_3; failed deploy_2",
        "1.5s",
        "get_task_results",
        "Thought: done. (+3 lines) · 1020 in, 21 out",
    ]


def test_showing_a_failed_and_a_running_run(journals: Journals) -> None:
    failed = runs("--journal", str(journals.path), "broke-1")
    assert failed.returncode == 0, failed.stderr
    assert "status    failed" in failed.stdout
    assert "error     BudgetExceededError: 3 steps" in failed.stdout
    assert "answer" not in failed.stdout and "entries (2)" in failed.stdout
    expired = runs("--journal", str(journals.path), "expired-1")
    assert "lease     4242@other-host expired (lease expired " in expired.stdout
    assert "entries (none recorded)" in expired.stdout


def test_showing_a_run_as_json_gives_its_summary_then_its_entries(journals: Journals) -> None:
    result = runs("--journal", str(journals.path), "done-1", "--json")
    assert result.returncode == 0, result.stderr
    summary, *lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert set(summary) == SUMMARY_KEYS and summary["run_id"] == "done-1"
    assert lines == [
        {"seq": i, "kind": kind.value, "data": data} for i, (kind, data) in enumerate(ENTRIES, 1)
    ]


def test_an_unknown_run_id_is_an_error_with_a_close_match(journals: Journals) -> None:
    result = runs("--journal", str(journals.path), "done-2")
    assert result.returncode == 2 and result.stdout == ""
    assert_one_clean_error(result, "no run `done-2`", "Did you mean `done-1`?")


def test_an_empty_journal_lists_no_runs(tmp_path: Path) -> None:
    SQLiteJournal(tmp_path / "empty.sqlite").close()
    listed = runs("--journal", str(tmp_path / "empty.sqlite"))
    assert listed.returncode == 0
    assert listed.stdout.strip() == f"no runs in `{tmp_path}/empty.sqlite` yet"
    assert runs("--journal", str(tmp_path / "empty.sqlite"), "--json").stdout == ""
    unknown = runs("--journal", str(tmp_path / "empty.sqlite"), "x")
    assert_one_clean_error(unknown, "no run `x`", "It has none.")


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some text " * 100)


def _foreign(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE invoices (id INTEGER)")


def _newer(path: Path) -> None:
    SQLiteJournal(path).close()
    with closing(sqlite3.connect(path)) as db, db:  # closed: nothing left in its WAL
        db.execute("UPDATE agentloop_meta SET value = '99' WHERE key = 'schema_version'")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (_not_sqlite, ["is not a readable SQLite journal", "left untouched"]),
        (_foreign, ["an SQLite database of something else", "invoices"]),
        (_newer, ["schema version 99, newer than", "upgrade agentloop"]),
        (_empty, ["is an empty file, not an agentloop journal"]),
    ],
    ids=["not-sqlite", "foreign", "newer-schema", "empty-file"],
)
def test_a_file_that_is_not_a_readable_journal_is_refused_and_left_untouched(
    tmp_path: Path, make: Any, needles: list[str]
) -> None:
    path = tmp_path / "bad.sqlite"
    make(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = runs("--journal", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert_one_clean_error(result, "agentloop runs: error:", *needles)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_missing_journal_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite"
    result = runs("--journal", str(path), "some-run")
    assert result.returncode == 2
    assert_one_clean_error(result, f"--journal `{path}`: no such file")
    assert list(tmp_path.iterdir()) == []
    directory = runs("--journal", str(tmp_path))
    assert_one_clean_error(directory, "is a directory")


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_a_bad_limit_is_a_usage_error(journals: Journals, limit: str) -> None:
    result = runs("--journal", str(journals.path), "--limit", limit)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --limit:" in result.stderr


def test_the_command_imports_neither_smolagents_nor_litellm(journals: Journals) -> None:
    code = (
        "import sys; from agentloop.cli import main; code = main(['runs', '--journal', "
        f"{str(journals.path)!r}, '--json']); "
        "print(code, sorted(m for m in ('smolagents', 'litellm') if m in sys.modules), "
        "file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_environment(None), capture_output=True, text=True,
        timeout=50, check=False,
    )  # fmt: skip
    assert result.stderr.strip() == "0 []", result.stderr


def test_an_answer_of_a_class_not_importable_here_does_not_break_the_list(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.sqlite"
    module = types.ModuleType("gone_module")
    exec("class Report:\n    pass\n", module.__dict__)
    module.Report.__module__ = "gone_module"
    sys.modules["gone_module"] = module
    try:
        answer = {"pickle": base64.b64encode(pickle.dumps(module.Report())).decode()}
    finally:
        del sys.modules["gone_module"]
    with SQLiteJournal(path) as journal:
        holder = LeaseHolder()
        claim(journal, "r1", holder)
        journal.finish("r1", holder, RunStatus.COMPLETED, answer=answer)
    result = runs("--journal", str(path))
    assert result.returncode == 0, result.stderr


# -- in process: opening a journal, entries the command did not expect ------------------------


def test_a_postgres_url_opens_the_postgres_journal_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class FakePostgresJournal:
        def __init__(self, conninfo: str, *, read_only: bool = False) -> None:
            assert read_only  # listing runs must not create tables
            opened.append(conninfo)

    fake = types.ModuleType("agentloop.journal.postgres")
    fake.PostgresJournal = FakePostgresJournal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agentloop.journal.postgres", fake)
    for url in ("postgresql://u:pw@db/runs", "postgres://db/runs"):
        assert isinstance(runs_cmd.open_journal(url), FakePostgresJournal)
    assert opened == ["postgresql://u:pw@db/runs", "postgres://db/runs"]


def test_a_postgres_url_without_its_module_or_psycopg_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "agentloop.journal.postgres", None)  # import fails
    with pytest.raises(runs_cmd.UsageError, match="has no PostgreSQL journal") as missing:
        runs_cmd.open_journal("postgresql://alice:s3cret@db.example/runs")
    assert "s3cret" not in str(missing.value) and "alice:***@db.example" in str(missing.value)

    def no_psycopg(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(runs_cmd, "importlib", types.SimpleNamespace(import_module=no_psycopg))
    with pytest.raises(runs_cmd.UsageError, match=r"pip install 'agentloop-smol\[postgres\]'"):
        runs_cmd.open_journal("postgres://db/runs")


def test_a_journal_error_from_the_store_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(where: str) -> SQLiteJournal:
        raise JournalError("journal `x` could not be read: the database is locked.")

    monkeypatch.setattr(runs_cmd, "open_journal", refused)
    from agentloop.cli import main

    assert main(["runs", "--journal", "x"]) == 2
    assert capsys.readouterr().err == (
        "agentloop runs: error: journal `x` could not be read: the database is locked.\n"
    )


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (EntryKind.MODEL_REPLY, {}, "(no content) · ? in, ? out"),
        (EntryKind.MODEL_REPLY, {"content": "\x1b[2J" + "x" * 500}, "\\x1b[2Jxxx"),
        (EntryKind.SUBMITTED, {"task_id": 7}, "7 → ?"),
        (EntryKind.APPROVAL, {"task_id": "t", "approved": "maybe"}, "t ?"),
        (EntryKind.OUTCOME, {"task_id": "t", "status": "completed"}, "t completed"),
        (EntryKind.OUTCOME, {"result": {"pickle": 5}}, "? ?: {'pickle': 5}"),
        (EntryKind.WAITED, {"completed": [f"t{i}" for i in range(9)]}, "t5 +3 more; failed ?"),
        (EntryKind.SLEPT, {"seconds": "soon"}, "soon"),
        (EntryKind.LOOKED, {"call": {"name": "list_tasks"}}, "{'name': 'list_tasks'}"),
        (EntryKind.LOOKED, ["not", "a", "mapping"], "['not', 'a', 'mapping']"),
    ],
)
def test_an_entry_of_an_unexpected_shape_is_shown_as_it_is(
    kind: EntryKind, data: Any, expected: str
) -> None:
    line = entry_summary(JournalEntry(seq=1, kind=kind, data=data))
    assert expected in line
    assert "\x1b" not in line and len(line) <= 110


def test_a_pickled_value_is_shown_by_its_size_and_never_unpickled() -> None:
    class Boom:
        def __reduce__(self) -> Any:
            return (pytest.fail, ("unpickled!",))

    stored = {"pickle": base64.b64encode(pickle.dumps(Boom())).decode()}
    size = len(pickle.dumps(Boom()))
    assert stored_value(stored) == f"<pickled {size} bytes>"
