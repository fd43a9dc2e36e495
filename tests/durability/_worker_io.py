"""What the crash tests' worker processes share: a line for the parent on stdout, and an
execution log on disk (appended, flushed and fsynced per line, so a `SIGKILL` right after a
line cannot lose it) that the parent reads to count what ran in which process."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["execution_log", "fetch_tool", "say"]


def say(line: str) -> None:
    """A line for the parent process, on stdout, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def execution_log(path: str | Path) -> Callable[[str], None]:
    """A function that appends `<pid> <line>` to `path`, durably, per call."""

    def log(line: str) -> None:
        with open(path, "a", encoding="utf-8") as log_file:
            log_file.write(f"{os.getpid()} {line}\n")
            log_file.flush()
            os.fsync(log_file.fileno())

    return log


def fetch_tool(log: Callable[[str], None]) -> Callable[[int], Awaitable[int]]:
    """The workers' `fetch` tool: logs each call, answers ten times its number."""

    async def fetch(n: int) -> int:
        """Fetch a number."""
        log(f"fetch {n}")
        return n * 10

    return fetch
