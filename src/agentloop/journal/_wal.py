"""SQLite's WAL checkpoints on a connection of their own, off the journal's commit path.

A WAL-mode database keeps its commits in the write-ahead log (`runs.sqlite-wal`) until a
checkpoint copies them into the database file. By default SQLite checkpoints in the connection
that commits, inside the commit, each time the log reaches 1000 pages, and that checkpoint
syncs the log and the database file. Under the run service's benchmark (200 concurrent runs,
~300 commits/s, `synchronous=NORMAL`) a journal write took 0.4 ms at the median but 18-25 ms at
p99 and up to 35-300 ms, and the p99 was that checkpoint: with it off, p99 was 3-10 ms. Every
event a client waits for is committed first, so it waited behind the checkpoint too.

So the journal's writing connection checkpoints only past `AUTOCHECKPOINT_PAGES`, a safety net,
and the agent's writer asks for a checkpoint about once a second, which `WalCheckpointer` runs
on a second connection: `PRAGMA wal_checkpoint(PASSIVE)`. WAL mode lets a checkpoint run beside
a writer, and PASSIVE waits for neither the writer nor readers: it copies what was committed
when it began and no reader still needs; the next one copies the rest.

The log's file starts again from the top only when a commit begins with the whole log copied,
which a checkpoint beside a steady stream of commits does not achieve (commits land while it
runs). So under steady load the log grows to the safety net, where a commit checkpoints what is
left (about a second of commits at most: the rest is copied already) and the log starts again.
Measured with a writer under 200 runs at ~330 commits/s for 15 s: SQLite's default checkpointed
in a commit every ~0.5 s, this once or twice in all; write p99 2.1-2.7 ms became 0.8-1.9 ms,
p99.9 28-37 ms became 6-20 ms. (Closing that gap would mean a last checkpoint pass holding
the journal's lock, which blocks writes for its length.)
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["AUTOCHECKPOINT_PAGES", "WalCheckpointer"]

AUTOCHECKPOINT_PAGES = 10_000
"""`PRAGMA wal_autocheckpoint` of the journal's writing connection: past this many pages in
the log (~40 MB at SQLite's 4 KiB pages) a commit checkpoints as SQLite does by default (every
1000 pages). It is the safety net for a journal written without the agent's writer (direct
`write` calls, tools, tests), which nothing else checkpoints, and for a log under a steady
stream of commits, which the writer's checkpoints copy but never let start again (see above).
Not 0 (off): then nothing would bound such a log. Ten times SQLite's default makes those
checkpoints inside a commit ten times rarer, each no longer (the writer's checkpoints have
copied most of the log already), for a log file of tens of MB at most."""


class WalCheckpointer:
    """Passive checkpoints of one journal file, one at a time, on a connection opened by the
    first (a journal nobody checkpoints never opens it)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        """Held by a running checkpoint, and by `close` while it closes the connection."""
        self._closing = threading.Lock()
        """One `close` at a time: a connection is never interrupted while it is closed."""
        self._db: sqlite3.Connection | None = None
        self._closed = False

    def run(self) -> None:
        """Copy the log's committed pages into the database file, as far as no reader needs
        them; return at once if a checkpoint runs already (another loop's writer: it does the
        same work) or the journal is closed. Raises `sqlite3.Error`."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._closed:
                return
            if self._db is None:
                self._db = self._connect()
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as exc:
            if self._closed or _is_busy(exc):
                return  # interrupted by `close`, or the file is busy: the next one does it
            raise
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection, interrupting a running checkpoint (it stops at its next page;
        the log keeps everything) and waiting for it. Idempotent."""
        with self._closing:
            self._closed = True
            db = self._db
            if db is not None:
                db.interrupt()  # thread-safe; nothing when no checkpoint runs
            with self._lock:
                db, self._db = self._db, None
                if db is not None:
                    db.close()

    def _connect(self) -> sqlite3.Connection:
        """The checkpoint's connection. Its `synchronous` is SQLite's default (FULL), which
        syncs a checkpoint as NORMAL does (the log before copying, the file after). Timeout
        0: a checkpoint is never urgent, and a busy file only postpones it."""
        return sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
