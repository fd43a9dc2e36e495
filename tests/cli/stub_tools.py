"""Tools the CLI tests load with `--tools tests.cli.stub_tools:TOOLS` in a subprocess."""

from __future__ import annotations

import asyncio
import time

__all__ = ["NOT_A_TOOL", "TOOLS", "fetch_title", "hang", "slow_double"]


def slow_double(n: int) -> int:
    """Double `n`, slowly (a blocking tool: it runs in a worker thread).

    Args:
        n: the number to double.
    """
    time.sleep(0.05)
    return 2 * n


async def fetch_title(url: str) -> str:
    """Pretend to fetch a page title (an async tool: it runs on the event loop).

    Args:
        url: the page address.
    """
    await asyncio.sleep(0.02)
    return f"title of {url}"


async def hang(reason: str) -> str:
    """Wait until cancelled (for the Ctrl-C test: the run is surely mid-task when interrupted).

    Args:
        reason: shown in the task's arguments, unused.
    """
    await asyncio.Event().wait()
    return reason


TOOLS = [slow_double, fetch_title, hang]

NOT_A_TOOL = 42
"""For the wrong-type test: neither a tool nor a callable."""
