"""`agentloop runs`: list a journal's durable runs, or show one run's record, on the terminal.

`agentloop runs --journal FILE` is a table of the most recently updated runs (`--limit N`,
default 20); `agentloop runs --journal FILE RUN_ID` shows one run's summary and every entry it
recorded, one line each. `--json` prints the same as JSON lines for scripts (keys in
docs/cli.md). `--journal` is an SQLite file or a `postgresql://` URL (`open_journal`).

The command only reads: a path that does not exist is refused rather than created (opening an
`SQLiteJournal` creates its file), and so is an empty file, which SQLite would otherwise turn
into a new journal. What the journal refuses (a corrupt, foreign or newer-schema file) is its
`JournalError`, printed as one line. Every bad input is one `agentloop runs: error:` line on
stderr and exit code 2, never a traceback. Neither smolagents nor litellm is imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._text import MAX_HINT_CANDIDATES, close_match_hint, json_value, truncate
from ..errors import AgentloopError
from ..journal.base import EntryKind, Journal, JournalEntry, RunStatus, RunSummary
from ._exits import EXIT_USAGE
from .runs_text import (
    LeaseState,
    age,
    answer_text,
    entry_json,
    entry_summary,
    lease_left,
    lease_state,
    local_time,
    oneline,
    readable,
    summary_json,
)
from .view import shorten

__all__ = ["DEFAULT_LIMIT", "open_journal", "run"]

DEFAULT_LIMIT = 20
TASK_WIDTH = 40
"""Characters of a run's task shown in the list."""
ANSWER_LIMIT = 2000
"""Characters of an answer or error shown by the one-run view."""
PIPED_WIDTH = 160
"""Width of the output when it is not a terminal and `COLUMNS` is unset (rich's 80 would
squeeze the table's nine columns into wrapped cells)."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

_STATUS_STYLE = {
    RunStatus.RUNNING: "yellow",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "magenta",
    RunStatus.PARKED: "cyan",
}
_LEASE_STYLE = {
    LeaseState.LIVE: "",
    LeaseState.STALE: "red",
    LeaseState.EXPIRED: "red",
    LeaseState.RELEASED: "yellow",
}
_KIND_STYLE = {
    EntryKind.MODEL_REPLY: "bold",
    EntryKind.SUBMITTED: "cyan",
    EntryKind.APPROVAL: "bold cyan",
    EntryKind.OUTCOME: "green",
    EntryKind.WAITED: "dim",
    EntryKind.SLEPT: "dim",
    EntryKind.LOOKED: "dim",
    EntryKind.TURN_STARTED: "bold magenta",
    EntryKind.TURN_ENDED: "magenta",
    EntryKind.ATTEMPT: "yellow",
    EntryKind.EVENT: "dim",
    EntryKind.PARKED: "bold cyan",
}


class UsageError(Exception):
    """A journal that cannot be opened for the reason the message gives (exit code 2)."""


def run(args: argparse.Namespace) -> int:
    """List the runs of `args.journal`, or show `args.run_id`; return the exit code."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    name = _without_password(args.journal)
    try:
        journal = open_journal(args.journal)
    except (UsageError, AgentloopError) as exc:
        return _fail(str(exc))
    try:
        with journal:
            if args.run_id is None:
                return _list(console, journal, name, args.limit, as_json=args.json)
            return _show(console, journal, name, args.run_id, as_json=args.json)
    except AgentloopError as exc:  # `JournalError`: unreadable rows, a lost connection
        return _fail(str(exc))


def open_journal(where: str) -> Journal:
    """The journal at `where`: an `SQLiteJournal` for a path, a `PostgresJournal` for a
    `postgresql://` or `postgres://` URL (imported only then: it needs psycopg).

    Raises `UsageError` for a path with no journal file and for a PostgreSQL URL this
    installation cannot open, and the journal's own `JournalError` for a store it refuses."""
    if where.startswith(POSTGRES_SCHEMES):
        return _postgres(where)
    path = Path(where)
    if not path.exists():
        raise UsageError(
            f"--journal `{where}`: no such file (a journal file is created by the first run "
            "that records to it; check the path)."
        )
    if path.is_dir():
        raise UsageError(f"--journal `{where}` is a directory; give the journal's file.")
    if path.stat().st_size == 0:
        raise UsageError(
            f"--journal `{where}` is an empty file, not an agentloop journal; it was left "
            "untouched."
        )
    from ..journal.sqlite import SQLiteJournal

    return SQLiteJournal(path, read_only=True)


def _postgres(url: str) -> Journal:
    shown_url = _without_password(url)
    try:
        module = importlib.import_module("agentloop.journal.postgres")
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.startswith("psycopg"):
            raise UsageError(
                f"--journal `{shown_url}`: a PostgreSQL journal needs psycopg 3, which is not "
                "installed: pip install 'agentloop-smol[postgres]'."
            ) from None
        if missing.startswith("agentloop"):
            raise UsageError(
                f"--journal `{shown_url}`: this agentloop has no PostgreSQL journal "
                "(`agentloop.journal.postgres` is missing); upgrade agentloop-smol."
            ) from None
        raise UsageError(
            f"--journal `{shown_url}`: cannot load the PostgreSQL journal: {exc}."
        ) from None
    except ImportError as exc:
        raise UsageError(
            f"--journal `{shown_url}`: cannot load the PostgreSQL journal: {exc}."
        ) from None
    journal: Journal = module.PostgresJournal(url, read_only=True)  # creates no tables
    return journal


def _without_password(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, for messages; a path as it is."""
    if not url.startswith(POSTGRES_SCHEMES):
        return url
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # a malformed port, brackets: show only the scheme
        return url.partition("://")[0] + "://..."


def _fail(message: str) -> int:
    sys.stderr.write(f"agentloop runs: error: {message}\n")
    return EXIT_USAGE


# -- the list ---------------------------------------------------------------------------------


def _list(console: Console, journal: Journal, name: str, limit: int, *, as_json: bool) -> int:
    summaries = journal.runs(limit)
    now = time.time()
    if as_json:
        for summary in summaries:
            _print_json(summary_json(summary, now))
        return 0
    if not summaries:
        console.print(f"no runs in `{name}` yet", markup=False)
        return 0
    console.print(_runs_table(summaries, name, now, console.width))
    if len(summaries) == limit:
        console.print(f"the {limit} most recently updated runs; --limit N shows more", style="dim")
    return 0


_COLUMNS = ("run id", "status", "task", "started", "updated", "steps", "tasks", "attempts", "lease")
_TASK_COLUMN = _COLUMNS.index("task")


def _runs_table(summaries: list[RunSummary], name: str, now: float, width: int) -> Table:
    """One line per run. The task is the column that gives way: it gets the room the others
    leave (at most `TASK_WIDTH`), cut between words, so a row never wraps onto more lines."""
    rows = [
        [
            Text(oneline(summary.run_id)),
            _status(summary),
            Text(oneline(summary.task)),
            Text(local_time(summary.started_at)),
            Text(age(summary.updated_at, now)),
            Text(str(summary.steps)),
            Text(str(summary.tasks)),
            Text(str(summary.attempts)),
            _lease(summary, now),
        ]
        for summary in summaries
    ]
    widths = [
        max(len(column), *(row[i].cell_len for row in rows)) for i, column in enumerate(_COLUMNS)
    ]
    others = sum(widths) - widths[_TASK_COLUMN] + 3 * len(_COLUMNS) + 1  # borders and padding
    task_width = min(max(width - others, 6), TASK_WIDTH)
    table = Table(title=Text(f"runs in {oneline(name)}"), title_justify="left")
    for column in _COLUMNS:
        right = column in ("steps", "tasks", "attempts")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        row[_TASK_COLUMN] = Text(shorten(row[_TASK_COLUMN].plain, task_width))
        table.add_row(*row)
    return table


def _status(summary: RunSummary) -> Text:
    return Text(summary.status.value, style=_STATUS_STYLE[summary.status])


def _lease(summary: RunSummary, now: float) -> Text:
    """Who holds a running run: `pid@host` and the time its lease has left, or `stale` or
    `expired` after it; `released` for a run handed back."""
    state = lease_state(summary, now)
    if state is LeaseState.RELEASED:
        return Text(state.value, style=_LEASE_STYLE[state])
    if state is None or summary.holder is None:
        return Text("-", style="dim")
    text = Text(oneline(f"{summary.holder.pid}@{summary.holder.host}"))
    left = lease_left(summary, now)
    if left is not None:
        text.append(f" {left}", style="dim")
    elif state is not LeaseState.LIVE:
        text.append(f" {state.value}", style=_LEASE_STYLE[state])
    return text


# -- one run ----------------------------------------------------------------------------------


def _show(console: Console, journal: Journal, name: str, run_id: str, *, as_json: bool) -> int:
    summary = journal.run(run_id)
    if summary is None:
        known = [s.run_id for s in reversed(journal.runs(MAX_HINT_CANDIDATES))]
        hint = close_match_hint(run_id, known)
        listed = f"`agentloop runs --journal {name}` lists its runs." if known else "It has none."
        return _fail(f"no run `{truncate(oneline(run_id), 80)}` in `{name}`.{hint} {listed}")
    entries = journal.entries(run_id)
    now = time.time()
    if as_json:
        _print_json(summary_json(summary, now))
        for entry in entries:
            _print_json(entry_json(entry))
        return 0
    console.print(_header(summary, now))
    console.print(Text(f"\nentries ({len(entries) or 'none recorded'})", style="bold underline"))
    for entry in entries:
        console.print(_entry_line(entry), soft_wrap=True)
    return 0


def _header(summary: RunSummary, now: float) -> Text:
    """The run's summary, one `label  value` line each."""
    text = Text()

    def line(label: str, value: str | Text) -> None:
        text.append(f"{label:<10}", style="bold")
        text.append_text(value if isinstance(value, Text) else Text(value))
        text.append("\n")

    line("run", oneline(summary.run_id))
    line("status", _status(summary))
    line("task", readable(shorten(summary.task, ANSWER_LIMIT)))
    line("started", local_time(summary.started_at))
    line("updated", f"{local_time(summary.updated_at)} ({age(summary.updated_at, now)})")
    line(
        "recorded",
        f"steps {summary.steps} · tasks {summary.tasks} · attempts {summary.attempts}",
    )
    if summary.status is RunStatus.RUNNING:
        lease = _lease(summary, now)
        if summary.lease_expires is not None:
            ends = "expired" if summary.lease_expires <= now else "expires"
            lease.append(f" (lease {ends} {local_time(summary.lease_expires)})", style="dim")
        line("lease", lease)
    if summary.status is RunStatus.COMPLETED:
        line("answer", readable(_answer_text(summary.stored_answer)))
    if summary.error:
        line("error", Text(readable(shorten(summary.error, ANSWER_LIMIT)), style="red"))
    text.rstrip()
    return text


def _answer_text(stored: Mapping[str, Any] | None) -> str:
    """The stored answer as text; a pickled one is described, never unpickled."""
    if stored is None:
        return ""
    return shorten(answer_text(stored, ANSWER_LIMIT), ANSWER_LIMIT)


def _entry_line(entry: JournalEntry) -> Text:
    style = _KIND_STYLE[entry.kind]
    status = entry.data.get("status") if isinstance(entry.data, Mapping) else None
    if entry.kind is EntryKind.OUTCOME and status != "completed":
        style = "red"
    line = Text(f"{entry.seq:>5}  ")
    line.append(f"{entry.kind.value:<11}", style=style)
    line.append(f"  {entry_summary(entry)}")
    return line


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(json_value(value), allow_nan=False) + "\n")
