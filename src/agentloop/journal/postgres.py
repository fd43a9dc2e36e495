"""The journal on PostgreSQL (psycopg 3), for replicas of a service that share their runs.

Every replica opens a `PostgresJournal` on the same database; any of them can resume a run
another one started, and exactly one does: `claim` inserts the run (`INSERT ... ON CONFLICT DO
NOTHING`) or locks its row (`SELECT ... FOR UPDATE`) and takes the lease in one transaction,
and `append` / `finish` write only while the row's lease token is still theirs. Lease times come
from the database server's clock, so replicas whose clocks disagree still agree on who holds a
run.

Durability: each `claim`, `append` and `finish` is one committed transaction, durable as the
server's `synchronous_commit` says (PostgreSQL's default, `on`, flushes the WAL before the
commit returns, so neither a killed replica nor a crash of the database server loses a record
whose call returned). A write that fails (the server unreachable, a lost connection, a lock held
longer than `lock_timeout`, a full disk, missing privileges) raises `JournalError` and the run
fails; a connection lost in the middle of a commit may or may not have committed it, which a
resume then reads back.

The tables are created (with a transaction-level advisory lock, so replicas that start at once
create them once) when the schema has none of them. A schema whose `agentloop_meta` names
another format or a newer schema version, or that holds `agentloop_*` tables without it, is
refused with a `JournalError` and never modified; so is a read-only server or a user who may
not write the tables.

`write` (the agent's group commit: whatever every run of the process has to record) is one
transaction whatever the number of runs, each run one statement (renew the lease if this
holder still has it, insert the entries only then, end the run), sent pipelined: one round trip
to the server for a burst of two hundred runs, where a statement per run and round trip would
pay the network's latency two hundred times.

One connection, guarded by a lock, serves all threads: each call is one short transaction,
agentloop calls the journal from worker threads only and already groups the writes of all runs
into one call, and a pool would add a dependency (`psycopg_pool`) and one server backend per
thread for no more throughput. A connection that broke is replaced at the next call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from ..errors import JournalError, RunLeasedError
from ._sql import (
    SCHEMA_VERSION,
    TABLES,
    TEMPLATES,
    Dialect,
    Statements,
    check_meta,
    write_params,
)
from ._sqlstore import Cursor, SQLStore, execute, lease_lost
from .base import RunWrite

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresJournal"]

_NOW = "extract(epoch FROM statement_timestamp())::float8"
"""The server's clock (seconds since the epoch), the same for every replica."""

_TCP_DEFAULTS = {  # a network that drops packets fails a call within ~30 s instead of hanging
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class PostgresJournal(SQLStore["psycopg.Connection[tuple[Any, ...]]"]):
    """A journal in a PostgreSQL database, shared by every process that opens it.

    Args:
        conninfo: a libpq connection string or URI (`"host=db dbname=app user=agent"`,
            `"postgresql://agent@db/app"`); the usual `PG*` environment variables apply.
        schema: the schema of the journal's tables (created if missing). Default: the first
            schema of the user's `search_path` (usually `public`).
        connect_timeout: seconds to wait for the server when connecting (overrides a
            `connect_timeout` in `conninfo`).
        lock_timeout: seconds a call waits for a run's row locked by another replica.
        statement_timeout: seconds any one statement may take.
        read_only: open an existing journal only to read it (`agentloop runs`): nothing is
            created, the session is read-only on the server, and every write raises
            `JournalError`.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        connect_timeout: float = 10,
        lock_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        read_only: bool = False,
    ) -> None:
        self._pg = _import_psycopg()
        if schema is not None and not (isinstance(schema, str) and _IDENTIFIER.fullmatch(schema)):
            raise JournalError(
                f"`schema` must be a plain PostgreSQL identifier (letters, digits, `_`, at "
                f"most 63 characters, not starting with a digit), received {schema!r}."
            )
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("lock_timeout", lock_timeout),
            ("statement_timeout", statement_timeout),
        ):
            if not isinstance(value, int | float) or not 0 < value < math.inf:
                raise JournalError(
                    f"`{name}` must be a positive number of seconds, received {value!r}."
                )
        self._conninfo = conninfo
        self._where = _describe(self._pg, conninfo)
        super().__init__(
            name=f"the journal `{self._where}`", read_only=read_only, driver_error=self._pg.Error
        )
        self._connect_timeout = max(1, math.ceil(connect_timeout))
        self._timeouts = (round(lock_timeout * 1000), round(statement_timeout * 1000))
        self._pipelined = bool(self._pg.Pipeline.is_supported())  # libpq >= 14
        self._db = self._connect()
        try:
            self._setup(schema)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"PostgresJournal({self._where!r}, schema={self.schema!r}{mode})"

    # -- opening --------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        pg = self._pg
        given = pg.conninfo.conninfo_to_dict(self._conninfo)
        extra: dict[str, Any] = {k: v for k, v in _TCP_DEFAULTS.items() if k not in given}
        extra.setdefault("application_name", given.get("application_name", "agentloop"))
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = pg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                **extra,
            )
        except pg.Error as exc:
            raise JournalError(
                f"the PostgreSQL journal `{self._where}` cannot be reached "
                f"({_first_lines(exc)}). Check that the server runs, that `conninfo` names it "
                "(host, port, database, user, password) and that this user may connect."
            ) from None
        try:
            lock_ms, statement_ms = self._timeouts
            conn.execute(f"SET lock_timeout = {lock_ms}")
            conn.execute(f"SET statement_timeout = {statement_ms}")
            if self.read_only:
                conn.execute("SET default_transaction_read_only = on")
        except pg.Error as exc:
            conn.close()
            raise JournalError(self._explain("opened", exc, lost=conn.closed)) from None
        return conn

    def _setup(self, schema: str | None) -> None:
        """Name the schema (`self.schema`) and its statements (`self._sql`); check the journal
        there, or create it."""
        with self._session("opened") as conn:
            if schema is None:
                schema = _one(conn.execute("SELECT current_schema()"))
                if schema is None:
                    raise JournalError(
                        f"the PostgreSQL journal `{self._where}` has no schema to use: no "
                        "schema of the user's `search_path` exists. Pass `schema=`."
                    )
            self.schema = schema
            self._render(schema)
            if self.read_only:
                found = self._tables(schema)
                if not found:
                    raise JournalError(
                        f"the PostgreSQL database `{self._where}` has no agentloop journal in "
                        f"schema `{schema}` (opened read-only, nothing was created)."
                    )
                self._check_format(schema, found)
                return
            read_only = conn.execute("SELECT current_setting('transaction_read_only')")
            if read_only.fetchone() == ("on",):
                raise JournalError(
                    f"the PostgreSQL journal `{self._where}` is read-only (a standby, or "
                    "`default_transaction_read_only` is on); a journal must record every "
                    "step. Connect to a writable primary."
                )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
                found = self._tables(schema)
                if not found:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
                    self._create_tables(conn)
                else:
                    self._check_format(schema, found)

    def _render(self, schema: str) -> None:
        """The shared statements, and this dialect's own, for the tables of `schema`."""
        dialect = Dialect(
            placeholder="%s",
            now=_NOW,
            schema=f"{_quoted(schema)}.",
            text="text",
            real="double precision",
            integer="integer",
            bigint="bigint",
        )
        self._sql = Statements.render(dialect)
        insert_new = TEMPLATES["insert_run"] + " ON CONFLICT (run_id) DO NOTHING"
        self._insert_new = dialect.render(insert_new)
        self._select_locked = dialect.render(TEMPLATES["select_run"] + " FOR UPDATE")
        self._write_renew = dialect.render(_with_entries(TEMPLATES["renew"]))
        self._write_end = dialect.render(_with_entries(TEMPLATES["end"]))

    def _tables(self, schema: str) -> set[str]:
        rows = self._db.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s)",
            (schema, list(TABLES)),
        )
        return {row[0] for row in rows}

    def _check_format(self, schema: str, found: set[str]) -> None:
        where = f"`{self._where}` (schema `{schema}`)"
        if "agentloop_meta" not in found:
            raise JournalError(
                f"the PostgreSQL database {where} has tables named "
                f"{', '.join(sorted(found))} but no `agentloop_meta`: they belong to something "
                "else (or to a damaged journal) and were left untouched. Give the journal a "
                "schema of its own (`schema=`)."
            )
        try:
            with self._db.transaction():  # a savepoint: a foreign table's error stays here
                rows = execute(self._db, self._sql.select_meta, {}).fetchall()
        except self._pg.Error as exc:
            raise JournalError(
                f"the table `agentloop_meta` of {where} is not an agentloop journal's "
                f"({_first_lines(exc)}); it was left untouched. Give the journal a schema of "
                "its own (`schema=`)."
            ) from None
        meta = {str(k): str(v) for k, v in rows}
        check_meta(meta, where=where, journal=f"the journal {where}")
        missing = set(TABLES) - found
        if missing:
            raise JournalError(
                f"the journal {where} is damaged: its tables {', '.join(sorted(missing))} "
                "are missing. It was left untouched."
            )
        if self.read_only:
            return
        runs, entries = self._sql.runs, self._sql.entries
        needed = [(runs, "SELECT"), (runs, "INSERT"), (runs, "UPDATE")]
        needed += [(entries, "SELECT"), (entries, "INSERT")]
        writable = self._db.execute(  # one privilege per call: a list means "any of them"
            "SELECT " + " AND ".join(["has_table_privilege(%s, %s)"] * len(needed)),
            [v for table_right in needed for v in table_right],
        ).fetchone()
        if writable != (True,):
            raise JournalError(
                f"the journal {where} is read-only for this user (it may not insert into or "
                "update its tables); a journal must record every step. Grant SELECT, INSERT, "
                "UPDATE on the agentloop_* tables, or connect as their owner."
            )

    # -- the interface --------------------------------------------------------------------------

    def write(self, writes: Sequence[RunWrite], lease_seconds: float) -> dict[str, JournalError]:
        """Every run's part in one transaction, pipelined (one round trip for a burst of many
        runs); a run whose lease is lost or whose new id is taken writes nothing and is
        reported. If one run's data breaks the transaction (a duplicate entry), the runs are
        written one by one, so that only it fails."""
        if not writes:
            return {}
        try:
            with self._session("written", write=True) as conn:
                return self._write_batch(conn, writes, lease_seconds)
        except _Rejected:
            pass
        errors: dict[str, JournalError] = {}
        for write in writes:
            try:
                with self._session(f"written for run `{write.run_id}`", write=True) as conn:
                    errors.update(self._write_batch(conn, [write], lease_seconds))
            except _Rejected as rejected:
                errors[write.run_id] = RunLeasedError(
                    f"run `{write.run_id}` could not be written: {_first_lines(rejected.exc)}."
                )
        return errors

    # -- helpers --------------------------------------------------------------------------------

    def _transaction(
        self, db: psycopg.Connection[tuple[Any, ...]]
    ) -> AbstractContextManager[object]:
        return db.transaction()

    def _insert_or_lock(
        self, db: psycopg.Connection[tuple[Any, ...]], values: Mapping[str, Any]
    ) -> Any:
        """`INSERT ... ON CONFLICT DO NOTHING`, or else `SELECT ... FOR UPDATE`."""
        if execute(db, self._insert_new, values).rowcount == 1:
            return None
        # the row exists (runs are never deleted): lock it, so one replica at a time decides
        row = execute(db, self._select_locked, values).fetchone()
        if row is None:
            raise JournalError(f"run `{values['run_id']}` vanished from `{self._where}` mid-claim.")
        return row

    def _now(self, db: psycopg.Connection[tuple[Any, ...]], values: Mapping[str, Any]) -> float:
        return float(_one(db.execute(f"SELECT {_NOW}")))  # after the lock was granted

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._db.closed:  # the last call broke it
            self._db = self._connect()
        return self._db

    def _write_one(self, write: RunWrite, lease_seconds: float) -> None:
        what = f"written for run `{write.run_id}`"
        try:
            with self._session(what, write=True) as conn:
                errors = self._write_batch(conn, [write], lease_seconds)
        except _Rejected as rejected:
            raise JournalError(self._explain(what, rejected.exc, lost=False)) from None
        if errors:
            raise errors[write.run_id]

    def _write_batch(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        writes: Sequence[RunWrite],
        lease_seconds: float,
    ) -> dict[str, JournalError]:
        """One transaction; each run is one statement (renew the lease only while it is this
        holder's, insert the entries only then, end the run if it ended), plus one for a new
        run, all sent at once. Raises `_Rejected` for data the server refused (nothing of the
        batch is written then)."""
        sent: list[tuple[RunWrite, Any, Any]] = []
        pipelined = self._pipelined and len(writes) > 1  # for one run it costs a round trip
        pipeline = conn.pipeline() if pipelined else contextlib.nullcontext()
        try:
            with pipeline, conn.transaction():
                for write in writes:
                    values = write_params(write, lease_seconds)
                    created = None
                    if write.new is not None:
                        created = execute(conn, self._insert_new, values)
                    sent.append((write, created, self._send_write(conn, write, values)))
            written = [(w, None if c is None else c.rowcount, _one(r)) for w, c, r in sent]
        except (self._pg.IntegrityError, self._pg.DataError) as exc:
            raise _Rejected(exc) from None
        errors: dict[str, JournalError] = {}
        for write, created, renewed in written:
            if created == 0:
                errors[write.run_id] = RunLeasedError(
                    f"run id `{write.run_id}` is already taken (another process created a run "
                    "with it); nothing was written for this one."
                )
            elif renewed != 1:
                errors[write.run_id] = lease_lost(write.run_id, write.holder)
        return errors

    def _send_write(
        self, conn: psycopg.Connection[tuple[Any, ...]], write: RunWrite, values: dict[str, Any]
    ) -> Any:
        """`renew` or `end`, with the insertion of the entries only if it updated the run."""
        entries = write.entries
        values["seqs"] = [e.seq for e in entries]
        values["kinds"] = [e.kind.value for e in entries]
        values["datas"] = [json.dumps(e.data) for e in entries]
        return execute(conn, self._write_renew if write.end is None else self._write_end, values)

    def _explain(self, what: str, exc: Exception, *, lost: bool | None = None) -> str:
        """`exc` is psycopg's (the store's `driver_error`); `lost`: whether the connection is
        gone (by default, whether it is closed now)."""
        error = cast("psycopg.Error", exc)
        text, state = _first_lines(error), error.sqlstate or ""
        where = f"the PostgreSQL journal `{self._where}`"
        stops = "Nothing was written; the run stops rather than lose records."
        if lost is None:
            lost = self._db.closed
        if lost or state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return (
                f"{where} could not be {what}: the connection to the server was lost "
                f"({text}). A write in flight may or may not have been committed; the run "
                "stops (resuming it reads what was recorded). The next call reconnects."
            )
        if state == "55P03":
            return (
                f"{where} could not be {what}: the run's row stayed locked by another "
                f"connection for longer than `lock_timeout` ({text}). {stops}"
            )
        if state == "57014":
            return f"{where} could not be {what}: the statement timed out ({text}). {stops}"
        if state.startswith("53"):
            return (
                f"{where} could not be {what}: the server is out of resources (disk full, "
                f"memory, connections: {text}). {stops}"
            )
        if state in ("25006", "42501"):
            return (
                f"{where} could not be {what}: this connection may not write there ({text}). "
                f"{stops}"
            )
        return f"{where} could not be {what}: {text}" + ("" if text[-1:] in ".?!" else ".")


def _import_psycopg() -> Any:
    """psycopg, imported only when a `PostgresJournal` is made (`import agentloop` never needs
    it). Typed `Any` here; the methods are typed against psycopg's own annotations."""
    try:
        import psycopg
    except ImportError as exc:
        raise JournalError(
            "PostgresJournal needs psycopg 3, which cannot be imported here "
            f"({exc}). Install it with `pip install 'agentloop-smol[postgres]'`."
        ) from None
    return psycopg


def _with_entries(update: str) -> str:
    """A template: `update` (`renew` or `end`) and, only if it updated the run (this holder
    still holds its lease), the insertion of its entries; it returns how many runs it updated."""
    return (
        f"WITH renewed AS ({update} RETURNING run_id), "
        "added AS (INSERT INTO {entries} (run_id, seq, kind, data) "
        "SELECT renewed.run_id, e.seq, e.kind, e.data FROM renewed, "
        "unnest(:seqs::bigint[], :kinds::text[], :datas::text[]) AS e(seq, kind, data)) "
        "SELECT count(*) FROM renewed"
    )


def _one(cursor: Cursor) -> Any:
    row = cursor.fetchone()
    if row is None:  # a scalar query always returns a row
        raise JournalError("the PostgreSQL server returned no row for a scalar query.")
    return row[0]


class _Rejected(Exception):
    """The server refused a write's data (an integrity or data error): the batch was rolled
    back, and may be retried run by run."""

    def __init__(self, exc: psycopg.Error) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lock_key(schema: str) -> int:
    """The advisory lock that makes creating the tables of `schema` happen once."""
    digest = hashlib.blake2b(f"agentloop-journal/{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _describe(pg: Any, conninfo: str) -> str:
    """The conninfo without its password, to name the database in messages."""
    try:
        parts = pg.conninfo.conninfo_to_dict(conninfo)
    except pg.Error as exc:
        raise JournalError(
            f"`conninfo` is not a valid PostgreSQL connection string ({_first_lines(exc)}); "
            "give one like 'host=db dbname=app user=agent' or 'postgresql://agent@db/app'."
        ) from None
    shown = [f"{key}={parts[key]}" for key in ("host", "port", "dbname", "user") if parts.get(key)]
    return " ".join(shown) or "(libpq defaults)"


def _first_lines(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])
    return text if len(text) <= 300 else text[:297] + "..."
