"""The live web view in a real browser: headless Chromium (Debian's package) driven with
Playwright's Python API, against `agentloop demo --web` served by uvicorn on 127.0.0.1.

Skipped unless `AGENTLOOP_BROWSER=1` (run it with `nox -s browser`, which installs Chromium and
Playwright). Every wait is on the page's DOM state, bounded by a Playwright timeout; nothing
sleeps. `AGENTLOOP_BROWSER_SCREENSHOT=path.png` keeps the screenshot (docs/web-view.png is made
this way); otherwise it goes to the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("AGENTLOOP_BROWSER") != "1":
    pytest.skip("set AGENTLOOP_BROWSER=1 (or run `nox -s browser`)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("AGENTLOOP_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000
"""Longest any one DOM state is waited for (the batch run takes about 4 s)."""

pytestmark = pytest.mark.timeout(120)


def _read_url(server: subprocess.Popen[str], seconds: float) -> str:
    """The URL `agentloop demo --web` prints; its output is read by a thread (bounded wait)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=seconds)
        except queue.Empty:
            pytest.fail(f"no URL printed within {seconds} s; output so far: {''.join(seen)}")
        seen.append(line)
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if match:
            return match[0]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "agentloop", "demo", "--web", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield _read_url(server, 30)
    finally:
        server.send_signal(signal.SIGINT)  # what Ctrl-C does: uvicorn shuts down gracefully
        try:
            code = server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            pytest.fail("`agentloop demo --web` did not stop within 15 s of SIGINT")
        assert code == 0, f"`agentloop demo --web` exited with {code}"


def _boom() -> str:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


def _failing_reply(messages: Any) -> str:
    from agentloop.testing import turn

    if turn(messages) == 0:
        return 'print(wait_for_tasks([submit_task("tool", "boom", {}, task_id="boom")]))'
    raise ConnectionError("model provider unreachable")


@pytest.fixture(scope="module")
def failing_url() -> Iterator[str]:
    """`create_web_app` with an agent whose task fails and whose model then raises, served by
    uvicorn in a thread of this process on a socket bound first (so no readiness wait)."""
    import socket

    import uvicorn

    from agentloop import create_async_agent
    from agentloop.testing import FunctionModel
    from agentloop.web import WebScenario, create_web_app

    agent = create_async_agent(tools={"boom": _boom}, model=FunctionModel(_failing_reply))
    app = create_web_app({"fails": WebScenario(agent=agent, task="t")}, owns_agents=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not stop within 15 s"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (nox -s browser does)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, url: str) -> Iterator[Any]:
    with _page(browser, url, scenarios=4) as page:
        yield page


@contextlib.contextmanager
def _page(browser: Any, url: str, *, scenarios: int) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('#scenario option').length === {scenarios}")
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"


def _rows(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#tasks tbody tr",
        """rows => rows.map(r => ({
            id: r.dataset.taskId, status: r.dataset.status,
            attempt: r.querySelector('.col-attempt').textContent,
            duration: r.querySelector('.col-duration').textContent}))""",
    )


def test_a_demo_run_shows_tasks_live_then_the_answer(page: Any, tmp_path: Path) -> None:
    page.select_option("#scenario", "batch")
    page.click("#start")

    # Live: a task row is running while no answer is shown yet (checked in one evaluation).
    page.wait_for_function(
        """document.querySelector('#tasks tbody tr[data-status="running"]') !== null
           && document.getElementById('answer-box').hidden"""
    )
    # The end: the answer is shown, and every row has finished.
    page.wait_for_function("document.getElementById('answer').dataset.state === 'done'")

    answer = page.text_content("#answer")
    assert answer.startswith("10 of 10 files cleaned, analysed and charted: charts/sales_01.png")
    rows = _rows(page)
    assert len(rows) == 30  # 10 files x (clean, analyse, chart)
    assert {r["status"] for r in rows} == {"completed"}, rows
    assert all(re.fullmatch(r"\d+\.\d+ s", r["duration"]) for r in rows), rows
    retried = [r for r in rows if r["attempt"] != "1"]
    assert [(r["id"], r["attempt"]) for r in retried] == [("make_chart_27", "2")], rows
    assert page.locator("#lanes .lane").count() == 30
    assert page.locator("#lanes .bar.run.status-completed").count() == 30
    assert page.locator("#lanes .bar.retry").count() == 1  # the failed first attempt
    assert page.locator("#steps .step").count() == 2
    assert "submit_task(" in page.text_content("#steps .step .code")
    assert page.get_attribute("#status", "data-state") == "done"
    assert page.is_enabled("#start") and not page.is_enabled("#stop")

    shot = Path(os.environ.get("AGENTLOOP_BROWSER_SCREENSHOT") or tmp_path / "web-view.png")
    page.screenshot(path=str(shot))  # the viewport: the answer and the timeline
    assert shot.stat().st_size > 10_000


def test_stop_cancels_the_run_and_a_new_run_starts(page: Any) -> None:
    page.select_option("#scenario", "quarterly")
    page.click("#start")
    page.wait_for_selector('#tasks tbody tr[data-status="running"]')

    page.click("#stop")

    page.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
    assert page.is_hidden("#answer-box")
    page.select_option("#scenario", "sources")
    page.click("#start")
    page.wait_for_function("document.getElementById('answer').dataset.state === 'done'")
    assert "integrated report" in page.text_content("#answer")
    assert {r["status"] for r in _rows(page)} == {"completed"}


def test_a_failing_run_shows_its_failed_task_and_its_error(browser: Any, failing_url: str) -> None:
    with _page(browser, failing_url, scenarios=1) as page:
        page.click("#start")

        page.wait_for_function("document.getElementById('answer').dataset.state === 'failed'")

        assert page.text_content("#answer-title") == "The run failed"
        assert "model provider unreachable" in page.text_content("#answer")
        assert page.get_attribute("#status", "data-state") == "failed"
        [row] = _rows(page)
        assert (row["id"], row["status"]) == ("boom", "failed")
        assert "the disk is on fire" in page.get_attribute("#tasks tbody tr", "title")
        assert page.locator("#lanes .bar.run.status-failed").count() == 1
        assert "the disk is on fire" in page.text_content("#steps .step .observation")
