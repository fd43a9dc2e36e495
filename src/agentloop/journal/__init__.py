"""Durable storage of runs: the `Journal` contract and its records, and the two stores.

`Journal` is the interface a store implements (small, synchronous, thread-safe); `SQLiteJournal`
(one file, the default) and `PostgresJournal` (replicas of a service) implement it over one
shared SQL layer. The value codec, the writer that groups a loop's writes off the loop, and the
replay cursor of a resumed run live here too, private.

May import: the vocabulary (`errors`, `tasks`, `limits`, `_text`, `_util`) only.
"""

from typing import TYPE_CHECKING

from .. import _util
from .base import (
    DEFAULT_LEASE_SECONDS,
    Claim,
    EntryKind,
    Journal,
    JournalEntry,
    LeaseHolder,
    NewRun,
    RunEnd,
    RunStatus,
    RunSummary,
    RunWrite,
)

if TYPE_CHECKING:
    from .postgres import PostgresJournal
    from .sqlite import SQLiteJournal

_LAZY = {"PostgresJournal": "postgres", "SQLiteJournal": "sqlite"}


__getattr__ = _util.loaded_on_first_use(globals(), _LAZY)


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Claim",
    "EntryKind",
    "Journal",
    "JournalEntry",
    "LeaseHolder",
    "NewRun",
    "PostgresJournal",
    "RunEnd",
    "RunStatus",
    "RunSummary",
    "RunWrite",
    "SQLiteJournal",
]

_util.report_as(__name__, globals(), __all__)
