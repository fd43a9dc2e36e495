"""One set of tests for every journal store: `journal_store` opens SQLite always, and PostgreSQL
when `AGENTLOOP_POSTGRES_DSN` names a server (`nox -s postgres` starts one and sets it).

Each test gets a store of its own (a file in `tmp_path`, or a PostgreSQL schema dropped after
the test), and may open it several times, like several processes or replicas would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentloop import SQLiteJournal
from agentloop.journal import Journal

POSTGRES_DSN = os.environ.get("AGENTLOOP_POSTGRES_DSN", "")
NEEDS_POSTGRES = pytest.mark.skipif(
    not POSTGRES_DSN, reason="needs a PostgreSQL server: run `nox -s postgres`"
)


@dataclass
class Store:
    """One kind of journal store. `open()` gives another `Journal` on the test's store;
    `open(at="name")` one on another, new store of the same kind. All are closed (and the
    PostgreSQL schemas dropped) after the test."""

    kind: str
    opener: Callable[..., Journal]
    opened: list[Journal] = field(default_factory=list)

    def open(self, at: str = "runs", **options: Any) -> Journal:
        journal = self.opener(at, **options)
        self.opened.append(journal)
        return journal


def postgres_admin() -> Any:
    """A plain psycopg connection to the test server (autocommit), for setting up faults."""
    import psycopg

    return psycopg.connect(POSTGRES_DSN, autocommit=True)


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema name on the test server, dropped (with its tables, and those of the
    schemas named after it) after the test."""
    if not POSTGRES_DSN:
        pytest.skip("needs a PostgreSQL server: run `nox -s postgres`")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with postgres_admin() as admin:
        rows = admin.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s",
            (name, f"{name}\\_%"),
        ).fetchall()
        for (schema,) in rows:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=NEEDS_POSTGRES)])
def journal_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":

        def sqlite(at: str, **options: Any) -> Journal:
            return SQLiteJournal(tmp_path / f"{at}.sqlite", **options)

        store = Store("sqlite", sqlite)
    else:
        from agentloop import PostgresJournal

        schema = request.getfixturevalue("postgres_schema")

        def postgres(at: str, **options: Any) -> Journal:
            where = schema if at == "runs" else f"{schema}_{at}"
            return PostgresJournal(POSTGRES_DSN, schema=where, **options)

        store = Store("postgres", postgres)
    yield store
    for journal in store.opened:
        journal.close()


@pytest.fixture
def journal(journal_store: Store) -> Journal:
    return journal_store.open()
