"""PostgreSQL journals that cannot be used, and servers that fail: each gives a `JournalError`
that says what is wrong, quickly, and a schema that is not agentloop's is never modified.

The tests without a server (psycopg missing, nothing listening, a server that never answers)
run everywhere psycopg is installed; the others need `AGENTLOOP_POSTGRES_DSN` (`nox -s
postgres`)."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentloop import JournalError
from agentloop.journal import EntryKind, JournalEntry, LeaseHolder

from .conftest import POSTGRES_DSN, postgres_admin

LEASE = 30.0


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentloop import PostgresJournal

    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` raises ImportError
    with pytest.raises(JournalError, match=r"pip install 'agentloop-smol\[postgres\]'"):
        PostgresJournal("host=127.0.0.1 dbname=x")


def test_importing_the_module_does_not_import_psycopg() -> None:
    import subprocess

    code = "import agentloop.journal.postgres, sys; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


psycopg = pytest.importorskip("psycopg")
from agentloop.journal import PostgresJournal  # noqa: E402
from agentloop.journal.postgres import SCHEMA_VERSION  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(JournalError, match="not a valid PostgreSQL connection string"):
        PostgresJournal("host=127.0.0.1 = nonsense")
    with pytest.raises(JournalError, match="plain PostgreSQL identifier"):
        PostgresJournal("host=127.0.0.1", schema='x"; DROP TABLE y; --')
    with pytest.raises(JournalError, match="`lock_timeout` must be a positive number"):
        PostgresJournal("host=127.0.0.1", lock_timeout=0)


def test_nothing_listening_fails_at_once_with_a_clear_error() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(JournalError, match=f"port={port}.*cannot be reached.*refused"):
        PostgresJournal(f"host=127.0.0.1 port={port} dbname=app user=agent password=s3cret")
    assert time.monotonic() - started < 5


def test_a_server_that_never_answers_fails_within_connect_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(JournalError, match="cannot be reached") as error:
            PostgresJournal(f"host=127.0.0.1 port={port} dbname=app", connect_timeout=1)
        elapsed = time.monotonic() - started
    assert elapsed < 6, elapsed
    assert "s3cret" not in str(error.value)


# -- against a real server ------------------------------------------------------------------------


def snapshot(schema: str) -> list[Any]:
    """Every relation of `schema` and every row of its tables: what "untouched" compares."""
    with postgres_admin() as admin:
        names = admin.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1",
            (schema,),
        ).fetchall()
        tables = [
            row[0]
            for row in admin.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
            )
        ]
        rows = [
            (t, admin.execute(f'SELECT * FROM "{schema}"."{t}" ORDER BY 1').fetchall())
            for t in tables
        ]
    return [names, rows]


@pytest.fixture
def admin() -> Iterator[Any]:
    if not POSTGRES_DSN:
        pytest.skip("needs a PostgreSQL server: run `nox -s postgres`")
    with postgres_admin() as conn:
        yield conn


def make_foreign(admin: Any, schema: str, *statements: str) -> list[Any]:
    admin.execute(f'CREATE SCHEMA "{schema}"')
    for statement in statements:
        admin.execute(statement.format(s=f'"{schema}"'))
    return snapshot(schema)


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        pytest.param(
            (
                "CREATE TABLE {s}.agentloop_meta (key text PRIMARY KEY, value text)",
                "INSERT INTO {s}.agentloop_meta VALUES ('format', 'someone-else')",
            ),
            "not an agentloop journal.*someone-else",
            id="other-format",
        ),
        pytest.param(
            (
                "CREATE TABLE {s}.agentloop_meta (key text PRIMARY KEY, value text)",
                "INSERT INTO {s}.agentloop_meta VALUES ('format', 'agentloop-journal'), "
                f"('schema_version', '{SCHEMA_VERSION + 1}')",
                "CREATE TABLE {s}.agentloop_runs (x int)",
                "CREATE TABLE {s}.agentloop_entries (x int)",
            ),
            f"schema version {SCHEMA_VERSION + 1}, newer than this agentloop's",
            id="newer-schema",
        ),
        pytest.param(
            ("CREATE TABLE {s}.agentloop_runs (id serial PRIMARY KEY, owner text)",),
            "agentloop_runs but no `agentloop_meta`",
            id="same-names-no-meta",
        ),
        pytest.param(
            ("CREATE TABLE {s}.agentloop_meta (id int PRIMARY KEY, label text)",),
            "`agentloop_meta` of .* is not an agentloop journal's",
            id="other-meta-table",
        ),
        pytest.param(
            (
                "CREATE TABLE {s}.agentloop_meta (key text PRIMARY KEY, value text)",
                "INSERT INTO {s}.agentloop_meta VALUES ('format', 'agentloop-journal'), "
                f"('schema_version', '{SCHEMA_VERSION}')",
            ),
            "damaged: its tables agentloop_entries, agentloop_runs are missing",
            id="missing-tables",
        ),
    ],
)
def test_a_schema_that_is_not_a_usable_journal_is_refused_and_untouched(
    admin: Any, postgres_schema: str, statements: tuple[str, ...], message: str
) -> None:
    before = make_foreign(admin, postgres_schema, *statements)
    with pytest.raises(JournalError, match=message):
        PostgresJournal(POSTGRES_DSN, schema=postgres_schema)
    assert snapshot(postgres_schema) == before


def test_a_journal_of_a_newer_schema_made_by_agentloop_is_left_untouched(
    admin: Any, postgres_schema: str
) -> None:
    journal = PostgresJournal(POSTGRES_DSN, schema=postgres_schema)
    holder = LeaseHolder()
    journal.claim("r1", task="t", fingerprint="f", holder=holder, lease_seconds=LEASE, force=False)
    journal.close()
    admin.execute(
        f"UPDATE \"{postgres_schema}\".agentloop_meta SET value = '{SCHEMA_VERSION + 1}' "
        "WHERE key = 'schema_version'"
    )
    before = snapshot(postgres_schema)
    with pytest.raises(JournalError, match=r"newer than this agentloop's.*upgrade agentloop"):
        PostgresJournal(POSTGRES_DSN, schema=postgres_schema)
    assert snapshot(postgres_schema) == before


def test_the_default_schema_is_the_search_path_s_first(admin: Any, postgres_schema: str) -> None:
    admin.execute(f'CREATE SCHEMA "{postgres_schema}"')
    dsn = psycopg.conninfo.make_conninfo(POSTGRES_DSN, options=f"-c search_path={postgres_schema}")
    with PostgresJournal(dsn) as journal:
        assert journal.schema == postgres_schema  # type: ignore[attr-defined]
    assert ("agentloop_runs", "r") in snapshot(postgres_schema)[0]


def test_a_read_only_server_is_refused_at_creation(postgres_schema: str) -> None:
    dsn = psycopg.conninfo.make_conninfo(
        POSTGRES_DSN, options="-c default_transaction_read_only=on"
    )
    with pytest.raises(JournalError, match="is read-only"):
        PostgresJournal(dsn, schema=postgres_schema)


@pytest.fixture
def weak_role(admin: Any) -> Iterator[tuple[str, str]]:
    """A role that may log in and read, nothing else: (name, password)."""
    name, password = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    yield name, password
    admin.execute(f"DROP OWNED BY {name}")
    admin.execute(f"DROP ROLE {name}")


def test_a_user_who_may_not_write_is_refused_at_creation(
    admin: Any, postgres_schema: str, weak_role: tuple[str, str]
) -> None:
    name, password = weak_role
    PostgresJournal(POSTGRES_DSN, schema=postgres_schema).close()
    admin.execute(f'GRANT USAGE ON SCHEMA "{postgres_schema}" TO {name}')
    admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{postgres_schema}" TO {name}')
    dsn = psycopg.conninfo.make_conninfo(POSTGRES_DSN, user=name, password=password)
    before = snapshot(postgres_schema)
    with pytest.raises(JournalError, match="read-only for this user"):
        PostgresJournal(dsn, schema=postgres_schema)
    with pytest.raises(JournalError, match=r"may not write there.*permission denied"):
        PostgresJournal(dsn, schema=f"{postgres_schema}_new")  # may not create a schema
    assert snapshot(postgres_schema) == before


def test_a_wrong_password_or_database_says_so(admin: Any) -> None:
    parts = psycopg.conninfo.conninfo_to_dict(POSTGRES_DSN)
    if parts.get("password"):
        wrong = psycopg.conninfo.make_conninfo(POSTGRES_DSN, password="wrong-password")
        with pytest.raises(JournalError, match="password authentication failed") as error:
            PostgresJournal(wrong)
        assert "wrong-password" not in str(error.value)
    missing = psycopg.conninfo.make_conninfo(POSTGRES_DSN, dbname="no_such_db")
    with pytest.raises(JournalError, match='database "no_such_db" does not exist'):
        PostgresJournal(missing)


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ({"lock_timeout": 0.2}, "stayed locked by another connection"),
        ({"lock_timeout": 20, "statement_timeout": 0.2}, "timed out"),
    ],
)
def test_a_run_locked_by_another_connection_fails_the_write_loudly(
    admin: Any, postgres_schema: str, timeouts: dict[str, float], message: str
) -> None:
    journal = PostgresJournal(POSTGRES_DSN, schema=postgres_schema, **timeouts)
    holder = LeaseHolder()
    journal.claim("r1", task="t", fingerprint="f", holder=holder, lease_seconds=LEASE, force=False)
    entry = JournalEntry(seq=0, kind=EntryKind.MODEL_REPLY, data={"content": "x"})
    with admin.transaction():
        admin.execute(
            f'SELECT 1 FROM "{postgres_schema}".agentloop_runs WHERE run_id = %s FOR UPDATE',
            ("r1",),
        )
        with pytest.raises(JournalError, match=message):
            journal.append("r1", holder, [entry], LEASE)
    assert journal.entries("r1") == []
    journal.append("r1", holder, [entry], LEASE)  # the lock is gone: usable again
    assert [e.seq for e in journal.entries("r1")] == [0]
    journal.close()


def test_a_lost_connection_fails_the_call_and_the_next_one_reconnects(
    admin: Any, postgres_schema: str
) -> None:
    journal = PostgresJournal(POSTGRES_DSN, schema=postgres_schema)
    holder = LeaseHolder()
    journal.claim("r1", task="t", fingerprint="f", holder=holder, lease_seconds=LEASE, force=False)
    backend = journal._db.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    entry = JournalEntry(seq=0, kind=EntryKind.MODEL_REPLY, data={"content": "x"})
    with pytest.raises(JournalError, match="connection to the server was lost"):
        journal.append("r1", holder, [entry], LEASE)
    journal.append("r1", holder, [entry], LEASE)
    assert [e.seq for e in journal.entries("r1")] == [0]
    assert journal._db.info.backend_pid != backend
    journal.close()


def test_text_postgresql_cannot_hold_is_refused_without_a_write(postgres_schema: str) -> None:
    journal = PostgresJournal(POSTGRES_DSN, schema=postgres_schema)
    with pytest.raises(JournalError, match="NUL"):
        journal.claim(
            "r1", task="a\x00b", fingerprint="f", holder=LeaseHolder(), lease_seconds=1, force=False
        )
    assert journal.runs() == []
    journal.close()
