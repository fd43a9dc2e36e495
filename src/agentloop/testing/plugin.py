"""pytest plugin, registered through the `pytest11` entry point.

Fixtures:
    agentloop_leak_check: fails the test if it leaves new threads running after it ends.

Settings (ini):
    agentloop_thread_grace: seconds to let a test's threads finish before calling them
        leaked (default 2.0).

Why a leak is a *failure* and how. The check has to run after the test's other fixtures are
torn down (an agent fixture closes its threads in its teardown), so it runs in the teardown
phase, and pytest counts any teardown problem as an ERROR next to a test that "passed". A leak
is the test's own fault, not a broken fixture, so the hooks below report it as the test's
failure instead: for a test that uses the fixture, the call phase's "passed" is held back
until teardown, then counted as `passed`, or as `failed` with the leaked threads' names.
Nothing else changes: the exit status, `-x`, `--lf` and `session.testsfailed` already treat a
failed teardown as a failure. A test whose call failed keeps that failure, and a leak on top
of it is the usual teardown error; so is another fixture's teardown error (then the held-back
"passed" is not counted: the test shows as that error alone).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator

import pytest

from .leaks import settled_threads

DEFAULT_THREAD_GRACE = 2.0
_FIXTURE = "agentloop_leak_check"
_LEAKED = pytest.StashKey[bool]()
_CALL_PASSED = pytest.StashKey[bool]()
# report attributes (plain values, so they survive pytest-xdist's report serialisation)
_CHECKED_ATTR = "agentloop_leak_checked"
_CALL_PASSED_ATTR = "agentloop_call_passed"
_LEAKED_ATTR = "agentloop_leaked_threads"


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
        request.node.stash[_LEAKED] = True
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"test left {len(leaked)} thread(s) running: {names}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark the reports of tests that use the fixture, for `pytest_report_teststatus`."""
    report = yield
    if _FIXTURE not in getattr(item, "fixturenames", ()):
        return report
    setattr(report, _CHECKED_ATTR, True)
    if call.when == "call":
        item.stash[_CALL_PASSED] = report.passed and not hasattr(report, "wasxfail")
    elif call.when == "teardown":
        setattr(report, _CALL_PASSED_ATTR, item.stash.get(_CALL_PASSED, False))
        setattr(report, _LEAKED_ATTR, item.stash.get(_LEAKED, False))
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """Count a leak-checked test's outcome once its teardown (the leak check) has run."""
    if not getattr(report, _CHECKED_ATTR, False):
        return None
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
        return "", "", ""  # held back: the teardown report says passed or failed
    if report.when == "teardown" and getattr(report, _CALL_PASSED_ATTR, False):
        if getattr(report, _LEAKED_ATTR, False):
            return "failed", "F", "FAILED"
        if report.passed:
            return "passed", ".", "PASSED"
    return None
