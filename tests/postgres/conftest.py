"""Tests against the real PostgreSQL server `nox -s postgres` starts (it sets
`AGENTLOOP_POSTGRES_DSN`); without it every test here is skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_DSN = os.environ.get("AGENTLOOP_POSTGRES_DSN", "")


@pytest.fixture
def postgres_dsn() -> str:
    """The test server's libpq connection string."""
    if not POSTGRES_DSN:
        pytest.skip("needs a PostgreSQL server: run `nox -s postgres`")
    return POSTGRES_DSN


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test's journal, dropped with its tables afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
