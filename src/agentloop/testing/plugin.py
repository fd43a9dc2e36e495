"""pytest plugin, registered through the `pytest11` entry point.

Fixtures:
    agentloop_leak_check: fails the test if it leaves new threads running after it ends.

Settings (ini):
    agentloop_thread_grace: seconds to let a test's threads finish before calling them
        leaked (default 2.0).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from .leaks import settled_threads

DEFAULT_THREAD_GRACE = 2.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "agentloop_thread_grace",
        "seconds agentloop_leak_check lets a test's threads finish before failing it",
        default=str(DEFAULT_THREAD_GRACE),
    )


@pytest.fixture
def agentloop_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if threads it started are still alive (after a bounded join) at the end."""
    grace = float(request.config.getini("agentloop_thread_grace"))
    before = threading.enumerate()
    yield
    leaked = settled_threads(before, timeout=grace)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test left {len(leaked)} thread(s) running: {names}", pytrace=False)
