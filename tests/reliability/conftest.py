"""Reliability suite setup: the `stress` marker, the figures it records, a thread-leak check.

Tests marked `stress` run only when AGENTLOOP_STRESS=1 (`nox -s stress`); the same variable
makes every other test in this directory push harder (see `figures.Sizes`). Every test here is
checked for threads it leaves behind, and counted in the figures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agentloop.testing import settled_threads

from .figures import STRESS, Figures

FIGURES = pytest.StashKey[Figures]()
THREAD_GRACE = 5.0
"""Seconds a test's threads get to end (joined, not slept) before they count as leaked."""
FOREIGN_THREADS = ("litellm-", "(process_request_thread)")
"""Threads that are not agentloop's and outlive a test by design: litellm's process-wide
logging worker, and the LLM stub's handler threads serving the HTTP keep-alive connections
that litellm's cached clients hold open."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stress: long reliability runs; skipped unless AGENTLOOP_STRESS=1 (nox -s stress)",
    )
    config.stash[FIGURES] = Figures()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if STRESS:
        return
    skip = pytest.mark.skip(reason="stress test: set AGENTLOOP_STRESS=1 (or run nox -s stress)")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(FIGURES, None)
    if figures is None or not figures.tests_checked_for_threads:
        return
    path = figures.write()
    terminalreporter.section("agentloop reliability figures")
    for line in figures.summary_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {path}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash[FIGURES]


@pytest.fixture(autouse=True)
def no_leaked_threads(figures: Figures) -> Iterator[None]:
    """Fail a test that leaves threads running (after a bounded join), and count it."""
    before = set(threading.enumerate())
    yield
    foreign = {t for t in threading.enumerate() if any(part in t.name for part in FOREIGN_THREADS)}
    leaked = settled_threads(before | foreign, timeout=THREAD_GRACE)
    figures.tests_checked_for_threads += 1
    figures.leaked_threads += len(leaked)
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test left {len(leaked)} thread(s) running: {names}", pytrace=False)
