"""The SQL every journal store speaks: one schema, one set of statements, one meta check.

`SQLiteJournal` and `PostgresJournal` differ only in their dialect: how they connect, how a
parameter is spelt, how a claim inserts or locks a run, whose clock stamps a lease, whether
writes are pipelined. What a journal *is* (its tables, its meta rows, the statements that
create, resume, renew and end a run) is written here once, so the two stores cannot drift
apart, and a journal written by one version reads in the next.

Statements are templates with named parameters (`:run_id`) and a few markers: `{runs}`,
`{entries}` and `{meta}` (the tables, schema-qualified on PostgreSQL), `{now}` (the clock: a
`:now` parameter filled from the process's clock on SQLite, an expression of the server's
clock on PostgreSQL, so replicas whose clocks disagree still agree on who holds a run) and the
column types of the schema. `Statements.render` turns them into one dialect's text once, when
a store opens; a named parameter is what both drivers take (`:name` for sqlite3, `%(name)s`
for psycopg), so one dict of values serves every statement of a call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import JournalError
from .base import EntryKind, LeaseHolder, RunStatus, RunSummary, RunWrite

__all__ = [
    "FORMAT",
    "META",
    "SCHEMA_VERSION",
    "TABLES",
    "Dialect",
    "Statements",
    "check_meta",
    "claim_params",
    "summary_from_row",
    "write_params",
]

SCHEMA_VERSION = 1
FORMAT = "agentloop-journal"
TABLES = ("agentloop_meta", "agentloop_runs", "agentloop_entries")
META = (("format", FORMAT), ("schema_version", str(SCHEMA_VERSION)))
"""The rows of `agentloop_meta` a new journal gets."""

_SCHEMA = """
CREATE TABLE {meta} (key {text} PRIMARY KEY, value {text} NOT NULL);
CREATE TABLE {runs} (
    run_id {text} PRIMARY KEY,
    status {text} NOT NULL,
    task {text} NOT NULL,
    fingerprint {text} NOT NULL,
    started_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    attempts {integer} NOT NULL,
    steps {integer} NOT NULL DEFAULT 0,
    tasks {integer} NOT NULL DEFAULT 0,
    answer {text},
    error {text},
    holder_token {text},
    holder_host {text},
    holder_pid {integer},
    lease_expires {real}
);
CREATE INDEX agentloop_runs_updated ON {runs} (updated_at);
CREATE TABLE {entries} (
    run_id {text} NOT NULL,
    seq {bigint} NOT NULL,
    kind {text} NOT NULL,
    data {text} NOT NULL,
    PRIMARY KEY (run_id, seq)
){entries_options};
"""

_RUN_COLUMNS = (
    "run_id, status, task, fingerprint, started_at, updated_at, attempts, steps, tasks, "
    "answer, error, holder_token, holder_host, holder_pid, lease_expires"
)
_COUNTED = "updated_at = {now}, steps = steps + :steps, tasks = tasks + :tasks"
_HELD_BY = "WHERE run_id = :run_id AND holder_token = :token"

_STATEMENTS = {
    "select_run": f"SELECT {_RUN_COLUMNS} FROM {{runs}} WHERE run_id = :run_id",
    "select_runs": f"SELECT {_RUN_COLUMNS} FROM {{runs}} ORDER BY updated_at DESC LIMIT :limit",
    "select_entries": "SELECT seq, kind, data FROM {entries} WHERE run_id = :run_id ORDER BY seq",
    "insert_run": (
        "INSERT INTO {runs} (run_id, status, task, fingerprint, started_at, updated_at, "
        "attempts, holder_token, holder_host, holder_pid, lease_expires) VALUES (:run_id, "
        "{running}, :task, :fingerprint, {now}, {now}, 1, :token, :host, :pid, {now} + :lease)"
    ),
    "resume": (
        "UPDATE {runs} SET status = {running}, updated_at = {now}, attempts = attempts + 1, "
        "fingerprint = :fingerprint, error = NULL, holder_token = :token, holder_host = :host, "
        "holder_pid = :pid, lease_expires = {now} + :lease WHERE run_id = :run_id"
    ),
    "renew": f"UPDATE {{runs}} SET {_COUNTED}, lease_expires = {{now}} + :lease {_HELD_BY}",
    "end": (
        f"UPDATE {{runs}} SET {_COUNTED}, status = :status, answer = :answer, error = :error, "
        "holder_token = NULL, holder_host = NULL, holder_pid = NULL, lease_expires = NULL "
        f"{_HELD_BY}"
    ),
    "select_meta": "SELECT key, value FROM {meta}",
    "insert_meta": "INSERT INTO {meta} VALUES (:key, :value)",
}
_PARAMETER = re.compile(r"(?<!:):([a-z_]+)")


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """How one database spells what the statements say."""

    parameter: str
    """A named parameter, `{}` standing for its name: `:{}` (sqlite3), `%({})s` (psycopg)."""
    now: str
    """The clock, in seconds since the epoch: `:now`, or the server's clock."""
    schema: str = ""
    """The tables' schema followed by a dot (`"app".`), or nothing."""
    text: str
    real: str
    integer: str
    bigint: str
    entries_options: str = ""
    """What follows the entries table's definition (SQLite: ` WITHOUT ROWID`)."""


@dataclass(frozen=True, kw_only=True)
class Statements:
    """The journal's statements in one dialect; `renew` and `end` also tell, by their
    row count, whether the holder still holds the run's lease."""

    runs: str
    entries: str
    schema: tuple[str, ...]
    select_run: str
    select_runs: str
    select_entries: str
    insert_run: str
    resume: str
    renew: str
    end: str
    select_meta: str
    insert_meta: str

    @classmethod
    def render(cls, dialect: Dialect) -> Statements:
        names = {table.removeprefix("agentloop_"): dialect.schema + table for table in TABLES}
        markers = {f.name: getattr(dialect, f.name) for f in fields(dialect)}
        markers |= names | {"running": f"'{RunStatus.RUNNING.value}'"}

        def spelt(template: str) -> str:
            named = _PARAMETER.sub(lambda m: dialect.parameter.format(m[1]), template)
            return named.format_map(markers)

        schema = tuple(s.strip() for s in _SCHEMA.format_map(markers).split(";") if s.strip())
        texts = {name: spelt(template) for name, template in _STATEMENTS.items()}
        return cls(runs=names["runs"], entries=names["entries"], schema=schema, **texts)

    def update(self, write: RunWrite) -> str:
        """The statement that renews `write`'s lease, or ends its run."""
        return self.renew if write.end is None else self.end


def claim_params(
    run_id: str, *, task: str, fingerprint: str, holder: LeaseHolder, lease_seconds: float
) -> dict[str, Any]:
    """The values of a claim's statements (`select_run`, `insert_run`, `resume`)."""
    values = {"run_id": run_id, "task": task, "fingerprint": fingerprint}
    return values | {"lease": float(lease_seconds)} | _held(holder)


def write_params(write: RunWrite, lease_seconds: float) -> dict[str, Any]:
    """The values of one run's write: `insert_run` for a new run, then `renew` or `end`."""
    steps = tasks = 0
    for entry in write.entries:
        if entry.kind is EntryKind.MODEL_REPLY:
            steps += 1
        elif entry.kind is EntryKind.SUBMITTED:
            tasks += 1
    values = {"run_id": write.run_id, "steps": steps, "tasks": tasks}
    values |= {"lease": float(lease_seconds)}
    values |= _held(write.holder)
    if write.new is not None:
        values |= {"task": write.new.task, "fingerprint": write.new.fingerprint}
    end = write.end
    if end is not None:
        answer = None if end.answer is None else json.dumps(end.answer)
        values |= {"status": RunStatus(end.status).value, "answer": answer, "error": end.error}
    return values


def _held(holder: LeaseHolder) -> dict[str, Any]:
    return {"token": holder.token, "host": holder.host, "pid": holder.pid}


def check_meta(meta: Mapping[str, Any], *, where: str, journal: str) -> None:
    """Refuse a store whose `agentloop_meta` rows are not this version's journal's: `where`
    names the store in a message, `journal` names it as a journal ("journal `runs.sqlite`")."""
    if meta.get("format") != FORMAT:
        raise JournalError(
            f"{where} is not an agentloop journal (format {meta.get('format')!r}); "
            "it was left untouched."
        )
    raw = meta.get("schema_version", "0")
    try:
        version = int(raw)
    except ValueError:
        raise JournalError(
            f"{journal} has an unreadable schema version {raw!r}; it was left untouched."
        ) from None
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{journal} has schema version {version}, newer than this agentloop's "
            f"({SCHEMA_VERSION}); upgrade agentloop to read it. It was left untouched."
        )
    if version < SCHEMA_VERSION:  # no older schema has existed yet
        raise JournalError(f"{journal} has unknown schema version {version}.")


def summary_from_row(row: Sequence[Any]) -> RunSummary:
    """A `RunSummary` from a row of `select_run` or `select_runs`."""
    (run_id, status, task, fingerprint, started, updated, attempts, steps, tasks) = row[:9]
    answer, error, token, host, pid, expires = row[9:15]
    try:
        run_status = RunStatus(status)
    except ValueError:
        raise JournalError(f"run `{run_id}` has an unknown status {status!r}.") from None
    return RunSummary(
        run_id=run_id,
        status=run_status,
        task=task,
        started_at=float(started),
        updated_at=float(updated),
        steps=int(steps),
        tasks=int(tasks),
        attempts=int(attempts),
        stored_answer=None if answer is None else _loaded(answer),
        error=error,
        fingerprint=fingerprint,
        holder=None if token is None else LeaseHolder(token=token, host=host, pid=int(pid)),
        lease_expires=None if expires is None else float(expires),
    )


def _loaded(answer: Any) -> Any:
    return json.loads(answer) if isinstance(answer, str) else answer
