"""The SQL every journal store speaks: one schema, one set of statements, one meta check.

`SQLiteJournal` and `PostgresJournal` differ only in their dialect: how they connect, how a
parameter is spelt, how a claim inserts or locks a run, whose clock stamps a lease, whether
writes are pipelined. What a journal *is* (its tables, its meta rows, the statements that
create, resume, renew and end a run) is written here once, so the two stores cannot drift
apart, and a journal written by one version reads in the next.

Statements are templates that name their values (`:run_id`) and hold a few markers: `{runs}`,
`{entries}` and `{meta}` (the tables, schema-qualified on PostgreSQL), `{now}` (the clock: a
`:now` value of each call, from the process's clock, on SQLite; an expression of the server's
clock on PostgreSQL, so replicas whose clocks disagree still agree on who holds a run) and the
column types of the schema. `Dialect.render` turns one into a dialect's text with positional
placeholders (`?`, `%s`) once, when a store opens, and remembers which value goes where: a
call builds one dict of values (`claim_params`, `write_params`) and every statement of the
call binds what it needs from it.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..errors import JournalError
from .base import EntryKind, LeaseHolder, RunStatus, RunSummary, RunWrite

__all__ = [
    "FORMAT",
    "META",
    "SCHEMA_VERSION",
    "TABLES",
    "TEMPLATES",
    "Dialect",
    "Statement",
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

TEMPLATES = {
    "select_run": f"SELECT {_RUN_COLUMNS} FROM {{runs}} WHERE run_id = :run_id",
    "select_runs": f"SELECT {_RUN_COLUMNS} FROM {{runs}} ORDER BY updated_at DESC LIMIT :limit",
    "select_entries": "SELECT seq, kind, data FROM {entries} WHERE run_id = :run_id ORDER BY seq",
    "select_events": (
        "SELECT seq, kind, data FROM {entries} WHERE run_id = :run_id AND seq > :after "
        "AND kind = 'event' ORDER BY seq LIMIT :limit"
    ),
    # recovery's candidates: handed back, expired, or held on this host (whose process may be
    # gone: `SQLStore.recoverable` asks); the last column is the clock the leases are read by
    "select_recoverable": (
        f"SELECT {_RUN_COLUMNS}, {{now}} FROM {{runs}} WHERE status = {{running}} AND "
        "(holder_token IS NULL OR lease_expires IS NULL OR lease_expires <= {now} "
        "OR holder_host = :host) ORDER BY updated_at LIMIT :limit"
    ),
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
"""The statements, each a template of `Dialect.render`."""

_NAMED = re.compile(r"\"[^\"]*\"|'[^']*'|(?<!:):([a-z_]+)")
"""A named value (`:run_id`, not a cast's `::float8`), outside quoted names and strings."""


class Statement:
    """One statement in one dialect: its text, with positional placeholders, and the names of
    the values they stand for, in order. Positional, because sqlite3 looks a named value up by
    its name at every execution (the lease update took ~1.2x as long, measured)."""

    __slots__ = ("_pick", "names", "text")

    def __init__(self, text: str, names: tuple[str, ...]) -> None:
        self.text, self.names = text, names
        if len(names) == 1:
            (name,) = names
            self._pick: Callable[[Mapping[str, Any]], tuple[Any, ...]] = lambda v: (v[name],)
        else:
            self._pick = operator.itemgetter(*names) if names else lambda v: ()

    def __repr__(self) -> str:
        return f"Statement({self.text!r}, {self.names!r})"

    def bind(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The parameters of one execution: `values`' of `names`, in order."""
        return self._pick(values)


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """How one database spells what the statements say."""

    placeholder: str
    """A parameter's placeholder: `?` (sqlite3), `%s` (psycopg)."""
    now: str
    """The clock, in seconds since the epoch: `:now` (a value of each call), or the server's."""
    schema: str = ""
    """The tables' schema followed by a dot (`"app".`), or nothing."""
    text: str
    real: str
    integer: str
    bigint: str
    entries_options: str = ""
    """What follows the entries table's definition (SQLite: ` WITHOUT ROWID`)."""

    def render(self, template: str) -> Statement:
        """A template of this module (or a store's own) in this dialect."""
        text = template.format_map(self._markers())
        names: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            if match[1] is None:  # a quoted name or string, left as it is
                return match[0]
            names.append(match[1])
            return self.placeholder

        return Statement(_NAMED.sub(placeholder, text), tuple(names))

    def _markers(self) -> dict[str, str]:
        markers = {f.name: getattr(self, f.name) for f in fields(self)}
        markers |= {table.removeprefix("agentloop_"): self.schema + table for table in TABLES}
        return markers | {"running": f"'{RunStatus.RUNNING.value}'"}


@dataclass(frozen=True, kw_only=True)
class Statements:
    """The journal's statements in one dialect; `renew` and `end` also tell, by their
    row count, whether the holder still holds the run's lease."""

    runs: str
    entries: str
    schema: tuple[str, ...]
    select_run: Statement
    select_runs: Statement
    select_entries: Statement
    select_events: Statement
    select_recoverable: Statement
    insert_run: Statement
    resume: Statement
    renew: Statement
    end: Statement
    select_meta: Statement
    insert_meta: Statement

    @classmethod
    def render(cls, dialect: Dialect) -> Statements:
        markers = dialect._markers()
        schema = _SCHEMA.format_map(markers)
        return cls(
            runs=markers["runs"],
            entries=markers["entries"],
            schema=tuple(filter(None, (s.strip() for s in schema.split(";")))),
            **{name: dialect.render(template) for name, template in TEMPLATES.items()},
        )

    def update(self, write: RunWrite) -> Statement:
        """The statement that renews `write`'s lease, or ends its run (an end with status
        `running` hands the run back: no holder, no lease, still unfinished)."""
        return self.renew if write.end is None else self.end


def claim_params(
    run_id: str, *, task: str, fingerprint: str, holder: LeaseHolder, lease_seconds: float
) -> dict[str, Any]:
    """The values of a claim's statements (`select_run`, `insert_run`, `resume`)."""
    lease = float(lease_seconds)
    values = {"run_id": run_id, "task": task, "fingerprint": fingerprint, "lease": lease}
    return values | _held(holder)


def write_params(write: RunWrite, lease_seconds: float) -> dict[str, Any]:
    """The values of one run's write: `insert_run` for a new run, then `renew` or `end`."""
    steps = tasks = 0
    for entry in write.entries:
        if entry.kind is EntryKind.MODEL_REPLY:
            steps += 1
        elif entry.kind is EntryKind.SUBMITTED:
            tasks += 1
    lease = float(lease_seconds)
    values = {"run_id": write.run_id, "steps": steps, "tasks": tasks, "lease": lease}
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
            f"({SCHEMA_VERSION}); upgrade agentloop (`pip install -U agentloop-smol`) to read "
            "it. It was left untouched."
        )
    if version < SCHEMA_VERSION:  # no older schema has existed yet
        raise JournalError(f"{journal} has unknown schema version {version}.")


def summary_from_row(row: Sequence[Any]) -> RunSummary:
    """A `RunSummary` from a row of `select_run`, `select_runs` or `select_recoverable`; a
    column that does not hold what the schema says (a hand edit, another tool, a crafted file)
    is a `JournalError` naming the run and the column, never a driver's or a parser's bare
    error."""
    (run_id, status, task, fingerprint, started, updated, attempts, steps, tasks) = row[:9]
    answer, error, token, host, pid, expires = row[9:15]
    column = _ColumnReader(run_id)
    try:
        run_status = RunStatus(status)
    except ValueError:
        raise JournalError(f"run `{run_id}` has an unknown status {status!r}.") from None
    holder = None
    if token is not None:
        holder = LeaseHolder(token=str(token), host=str(host), pid=column.int("holder_pid", pid))
    return RunSummary(
        run_id=run_id,
        status=run_status,
        task=task,
        started_at=column.float("started_at", started),
        updated_at=column.float("updated_at", updated),
        steps=column.int("steps", steps),
        tasks=column.int("tasks", tasks),
        attempts=column.int("attempts", attempts),
        stored_answer=None if answer is None else column.stored_value("answer", answer),
        error=error,
        fingerprint=fingerprint,
        holder=holder,
        lease_expires=None if expires is None else column.float("lease_expires", expires),
    )


class _ColumnReader:
    """Reads one run row's columns, each failure a `JournalError` naming run and column."""

    __slots__ = ("_run_id",)

    def __init__(self, run_id: object) -> None:
        self._run_id = run_id

    def _unreadable(self, column: str, value: object, expected: str) -> JournalError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return JournalError(
            f"run `{self._run_id}` has an unreadable `{column}` column ({shown}, expected "
            f"{expected}); the journal was left untouched. Was the row edited by hand or "
            "written by another program?"
        )

    def float(self, column: str, value: object) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise self._unreadable(column, value, "a number")

    def int(self, column: str, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._unreadable(column, value, "an integer")

    def stored_value(self, column: str, value: object) -> Mapping[str, Any]:
        """An encoded value (a JSON object), as text (SQLite) or already parsed (jsonb)."""
        try:
            loaded = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            raise self._unreadable(column, value, "a JSON object") from None
        if not isinstance(loaded, Mapping):
            raise self._unreadable(column, value, "a JSON object")
        return loaded
