"""pytest plugin, registered through the `pytest11` entry point.

Fixtures:
    agentloop_leak_check: fails the test if it leaves new threads running after it ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from .leaks import settled_threads


@pytest.fixture
def agentloop_leak_check() -> Iterator[None]:
    """Fail the test if threads it started are still alive (after a bounded join) at the end."""
    before = threading.enumerate()
    yield
    leaked = settled_threads(before)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test left {len(leaked)} thread(s) running: {names}", pytrace=False)
