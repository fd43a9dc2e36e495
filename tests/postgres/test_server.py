"""The server `nox -s postgres` started is the one the journal tests use: a real, separate
PostgreSQL process (not a mock), reached over TCP on 127.0.0.1, that other processes share."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentloop import PostgresJournal, RunLeasedError
from agentloop.journal import LeaseHolder

CLAIM_ELSEWHERE = """
import sys
from agentloop.journal import LeaseHolder
from agentloop.journal.postgres import PostgresJournal

with PostgresJournal(sys.argv[1], schema=sys.argv[2]) as journal:
    journal.claim("r1", task="t", fingerprint="f", holder=LeaseHolder(host="replica-2"),
                  lease_seconds=60, force=False)
"""


def test_the_server_is_a_real_postgresql_on_loopback(postgres_dsn: str) -> None:
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int, inet_server_addr()::text"
        ).fetchone()
    assert row is not None
    version, address = row
    assert version >= 120000
    assert address in (None, "127.0.0.1/32")  # None: a unix socket


def test_a_run_claimed_in_another_process_is_leased_here(
    postgres_dsn: str, postgres_schema: str
) -> None:
    subprocess.run(
        [sys.executable, "-c", CLAIM_ELSEWHERE, postgres_dsn, postgres_schema],
        check=True,
        timeout=60,
    )
    with PostgresJournal(postgres_dsn, schema=postgres_schema) as journal:
        run = journal.run("r1")
        assert run is not None and run.holder is not None
        assert run.holder.host == "replica-2"
        with pytest.raises(RunLeasedError, match="replica-2"):
            journal.claim(
                "r1", task="t", fingerprint="f", holder=LeaseHolder(), lease_seconds=60, force=False
            )
