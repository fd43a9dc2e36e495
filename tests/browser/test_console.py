"""The operations console of `agentloop serve` in a real browser: headless Chromium (Debian's
package) driven with Playwright's Python API, against `create_app` served by uvicorn on
127.0.0.1 over scripted agents (no LLM, no network).

Skipped unless `AGENTLOOP_BROWSER=1` (run it with `nox -s browser`). Every wait is on the page's
DOM state, bounded by a Playwright timeout; nothing sleeps. With `AGENTLOOP_BROWSER_SCREENSHOT_DIR`
set, the screenshots go there (docs/console-runs.png and docs/console-run.png are made this way);
otherwise to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("AGENTLOOP_BROWSER") != "1":
    pytest.skip("set AGENTLOOP_BROWSER=1 (or run `nox -s browser`)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("AGENTLOOP_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000
"""Longest any one DOM state is waited for (the longest run here takes about 2 s)."""
HOSTILE = '<img src=x onerror="window.__pwned = 1">'

pytestmark = pytest.mark.timeout(120)


# -- the agents: fan-out, an approval, a run that only ends when cancelled ------------------------


async def crunch(part: int) -> dict[str, Any]:
    """Crunch one part of the data set (the parts take different times: a Gantt with a shape)."""
    await asyncio.sleep(0.15 + 0.1 * (part % 4))
    return {"part": part, "rows": 1000 + part}


async def merge(parts: list[dict[str, Any]]) -> int:
    """Merge the crunched parts."""
    await asyncio.sleep(0.2)
    return sum(p["rows"] for p in parts)


async def run_check(name: str) -> str:
    """Run one pre-deploy check."""
    await asyncio.sleep(0.2 + 0.1 * len(name) % 3)
    return f"{name}: ok"


async def deploy(env: str, version: str) -> str:
    """Deploy `version` to `env` (needs a person's approval)."""
    await asyncio.sleep(0.2)
    return f"deployed {version} to {env}"


async def reindex(shard: int) -> str:
    """Rebuild one search shard: far longer than any test waits (it is cancelled)."""
    await asyncio.sleep(600)
    return f"shard {shard} rebuilt"


FANOUT = [
    """Thought: The eight parts are independent: crunch them all at once, merge when all are in.
<code>
parts = [submit_task("tool", "crunch", {"part": i}, task_id=f"crunch_{i}") for i in range(8)]
total = submit_task("tool", "merge", {"parts": [{"$result_of": p} for p in parts]}, task_id="merge")
print(wait_for_tasks([total], max_wait_time=60))
</code>""",
    """<code>
final_answer(f"{get_task_results([total])[total]} rows in 8 parts")
</code>""",
]

RELEASE = [
    """Thought: Run the checks in parallel, then deploy (a person approves the deploy).
<code>
checks = [submit_task("tool", "run_check", {"name": n}, task_id=n) for n in ["lint", "unit", "e2e"]]
print(wait_for_tasks(checks, max_wait_time=60))
release = submit_task("tool", "deploy", {"env": "prod", "version": "1.4.2"}, task_id="deploy")
print(wait_for_tasks([release], max_wait_time=120))
</code>""",
    """<code>
final_answer(get_task_results([release])[release])
</code>""",
]

REINDEX = [
    """Thought: Rebuild the four shards in parallel.
<code>
shards = [submit_task("tool", "reindex", {"shard": i}, task_id=f"shard_{i}") for i in range(4)]
print(wait_for_tasks(shards, max_wait_time=600))
</code>""",
    """<code>
final_answer("reindexed")
</code>""",
]


SHIP = [
    """Thought: The deployer agent does the release.
<code>
job = submit_task("managed_agent", "deployer", {"task": "deploy 2.0.0 to staging"}, task_id="job")
print(wait_for_tasks([job], max_wait_time=120))
</code>""",
    """<code>
final_answer(get_task_results([job])[job])
</code>""",
]


def _agents(journal: Any, nested: list[Any]) -> dict[str, Any]:
    """The four agents, sharing `journal` (the service reads runs from it); `ship`'s managed
    agent, whose deploys need approval, is added to `nested` (the test closes it)."""
    from agentloop import create_async_agent
    from agentloop.serve import ServedAgent
    from agentloop.testing import ScriptedModel

    deploy_code = 'final_answer(deploy(env="staging", version="2.0.0"))'
    nested.append(
        create_async_agent(
            tools=[deploy],
            model=ScriptedModel([deploy_code], delay=0.05),
            name="deployer",
            description="Deploys a release.",
            needs_approval={"deploy"},
        )
    )

    def served(name: str, tools: list[Any], plan: list[str], task: str, **kw: Any) -> Any:
        model = ScriptedModel(plan, delay=0.05)
        agent = create_async_agent(
            tools=tools, model=model, max_workers=8, name=name, journal=journal, **kw
        )
        return ServedAgent(name=name, agent=agent, task=task)

    return {
        "crunch": served("crunch", [crunch, merge], FANOUT, "Crunch the eight parts and merge"),
        "release": served(
            "release",
            [run_check, deploy],
            RELEASE,
            "Check and deploy release 1.4.2 to prod",
            needs_approval={"deploy"},
        ),
        "reindex": served("reindex", [reindex], REINDEX, "Rebuild the search index"),
        "ship": served("ship", [], SHIP, "Ship 2.0.0 to staging", managed_agents=nested),
    }


def _service(agents: dict[str, Any]) -> Any:
    from agentloop.serve import create_app

    return create_app(agents, title="agentloop serve: operations console", owns_agents=True)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a socket bound first (so no readiness wait), in a thread of this process,
    over a SQLite journal (so the runs have a holder, and the list is read from the journal)."""
    import uvicorn

    from agentloop.journal import SQLiteJournal

    journal = SQLiteJournal(tmp_path_factory.mktemp("journal") / "runs.db")
    nested: list[Any] = []
    app = _service(_agents(journal, nested))  # the app closes the agents it serves
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
        thread.join(timeout=20)
        listener.close()
        # Playwright's sync API runs a loop in this thread: close the nested agent from another.
        closer = threading.Thread(target=lambda: [agent.shutdown() for agent in nested])
        closer.start()
        closer.join(timeout=20)
        assert not thread.is_alive(), "uvicorn did not stop within 20 s"


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
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#start-agent option').length === 4")
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"errors in the page: {errors}"


def _shot(page: Any, name: str, tmp_path: Path, **kwargs: Any) -> None:
    folder = Path(os.environ.get("AGENTLOOP_BROWSER_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), **kwargs)
    assert (folder / name).stat().st_size > 10_000


def _start(page: Any, agent: str, task: str = "") -> str:
    """Starts a run from the form; returns its id once its page is open."""
    page.goto(page.url.split("#")[0] + "#/")
    page.select_option("#start-agent", agent)
    page.fill("#start-task", task)
    page.click("#start")
    page.wait_for_function("location.hash.startsWith('#/runs/')")
    page.wait_for_function("!document.getElementById('run-view').hidden")
    return str(page.evaluate("decodeURIComponent(location.hash.slice('#/runs/'.length))"))


def _lanes(page: Any) -> list[dict[str, str]]:
    """Each lane of the Gantt: its task id, status, and the kinds of its bars."""
    return page.eval_on_selector_all(
        "#lanes .lane",
        """lanes => lanes.map(l => ({
            id: l.dataset.taskId, status: l.querySelector('.track').dataset.status,
            bars: [...l.querySelectorAll('.bar')].map(b => b.className).join('|')}))""",
    )


def _wait_count(page: Any, selector: str, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll({selector!r}).length === {count}")


def _wait_status(page: Any, status: str) -> None:
    page.wait_for_function(f"document.body.dataset.runStatus === '{status}'")


def test_a_run_started_from_the_form_draws_its_fan_out_live_then_its_answer(page: Any) -> None:
    run_id = _start(page, "crunch")

    # Live: bars are running while the run has no answer yet (checked in one evaluation).
    page.wait_for_function(
        """document.querySelectorAll('#lanes .bar.run.status-running').length >= 2
           && document.getElementById('answer-box').hidden"""
    )
    _wait_status(page, "completed")

    assert page.text_content("#run-id") == run_id
    assert page.text_content("#answer") == "8028 rows in 8 parts"
    lanes = _lanes(page)
    assert [lane["id"] for lane in lanes] == [*(f"crunch_{i}" for i in range(8)), "merge"]
    assert {lane["status"] for lane in lanes} == {"completed"}, lanes
    assert page.locator("#lanes .bar.run.status-completed").count() == 9
    assert page.locator("#tasks tbody tr").count() == 9
    assert page.locator("#steps .step").count() == 2
    assert "submit_task(" in page.text_content("#steps .step pre.code")
    assert page.is_disabled("#cancel")

    # A reload shows the same history: the service replays the run's events from the first.
    before = _lanes(page)
    page.reload()
    _wait_status(page, "completed")
    page.wait_for_function("document.querySelectorAll('#lanes .bar.run').length === 9")
    assert _lanes(page) == before
    assert page.text_content("#answer") == "8028 rows in 8 parts"
    assert page.locator("#steps .step").count() == 2


def test_a_pending_approval_is_approved_with_its_button(page: Any, tmp_path: Path) -> None:
    _start(page, "release")

    card = page.wait_for_selector("#approvals .approval")
    assert card.query_selector(".target").text_content() == "deploy"
    assert '"version": "1.4.2"' in card.query_selector("pre.arguments").text_content()
    page.wait_for_function(
        "document.querySelector('#lanes .lane[data-task-id=deploy] .bar.approval') !== null"
    )
    page.wait_for_function(
        "document.querySelectorAll('#lanes .bar.run.status-completed').length === 3"
    )
    _shot(page, "console-run.png", tmp_path)

    card.query_selector("input.reason").fill("release train 14")
    card.query_selector("button.approve").click()

    _wait_status(page, "completed")
    assert page.text_content("#answer") == "deployed 1.4.2 to prod"
    assert page.is_hidden("#approvals-box")
    deploy_lane = [lane for lane in _lanes(page) if lane["id"] == "deploy"]
    assert deploy_lane[0]["status"] == "completed", deploy_lane
    assert "bar approval" in deploy_lane[0]["bars"]  # the wait for the decision stays drawn


def test_a_nested_agents_request_shows_who_asked_and_is_approved_with_its_button(
    page: Any,
) -> None:
    _start(page, "ship")

    card = page.wait_for_selector("#approvals .approval")
    assert card.query_selector(".asked-by").text_content() == "asked by ship → deployer"
    assert '"env": "staging"' in card.query_selector("pre.arguments").text_content()
    request = page.wait_for_selector("#requests .request")
    assert "asked by ship → deployer" in request.text_content()
    # The nested agent's task is not a lane of this run; the managed agent's task is.
    assert [lane["id"] for lane in _lanes(page)] == ["job"]

    card.query_selector("button.approve").click()

    _wait_status(page, "completed")
    assert page.text_content("#answer") == "deployed 2.0.0 to staging"
    assert page.get_attribute("#requests .request", "data-state") == "answered"
    assert page.is_hidden("#approvals-box")


def test_cancel_stops_the_run_and_draws_its_in_flight_bars_cancelled(page: Any) -> None:
    _start(page, "reindex")
    _wait_count(page, "#lanes .bar.run.status-running", 4)

    page.click("#cancel")

    _wait_status(page, "cancelled")
    lanes = _lanes(page)
    assert len(lanes) == 4
    assert {lane["status"] for lane in lanes} == {"cancelled"}, lanes
    assert page.locator("#lanes .bar.status-running").count() == 0
    assert page.locator("#lanes .bar.run.status-cancelled").count() == 4
    assert page.get_attribute("#answer-box", "data-state") == "cancelled"
    assert page.is_disabled("#cancel")

    page.reload()  # the same after a reload: the service's record says cancelled
    _wait_status(page, "cancelled")
    _wait_count(page, "#lanes .bar.run.status-cancelled", 4)


def test_the_run_list_shows_runs_filters_them_and_shows_hostile_text_as_text(
    page: Any, tmp_path: Path
) -> None:
    _start(page, "crunch", HOSTILE)
    _wait_status(page, "completed")
    assert page.text_content("#run-task") == HOSTILE
    waiting = _start(page, "release")  # left waiting for its approval
    page.wait_for_selector("#approvals .approval")
    _start(page, "reindex")
    _wait_count(page, "#lanes .bar.run.status-running", 4)

    page.click(".crumbs a")
    page.wait_for_function(
        f"document.querySelector('#runs tr[data-run-id=\"{waiting}\"] .col-approvals')"
        "?.textContent === '1'"
    )
    rows = page.eval_on_selector_all(
        "#runs tbody tr",
        """rows => rows.map(r => ({status: r.dataset.status,
            agent: r.querySelector('.col-agent').textContent,
            task: r.querySelector('.col-task').textContent,
            holder: r.querySelector('.col-holder').textContent}))""",
    )
    assert rows[0]["agent"] == "reindex" and rows[0]["status"] == "running"
    assert ":" in rows[0]["holder"]  # host:pid of the process running it
    assert any(r["task"] == HOSTILE for r in rows), rows
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#runs img").count() == 0
    _shot(page, "console-runs.png", tmp_path, clip={"x": 0, "y": 0, "width": 1280, "height": 460})

    page.select_option("#filter-status", "completed")
    page.wait_for_function(
        """[...document.querySelectorAll('#runs tbody tr')].every(
             r => r.dataset.status === 'completed')
           && document.querySelectorAll('#runs tbody tr').length >= 1"""
    )
    page.select_option("#filter-status", "")
    page.select_option("#filter-agent", "release")
    page.wait_for_function(
        """[...document.querySelectorAll('#runs tbody tr')].every(
             r => r.querySelector('.col-agent').textContent === 'release')"""
    )

    page.click(f'#runs tr[data-run-id="{waiting}"] .col-task a')
    page.wait_for_selector("#approvals .approval")
    page.go_back()
    page.wait_for_function("!document.getElementById('list-view').hidden")


class _Relay:
    """A TCP relay between the browser and the service that the test can cut and restore: a
    lost connection for real (the browser's own offline switch leaves open streams alone)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.up = threading.Event()
        self.up.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            if not self.up.is_set():
                client.close()  # down: a reconnect fails at once
                continue
            server = socket.create_connection(("127.0.0.1", self.port))
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for each in self.sockets:
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_lost_event_stream_is_shown_then_resumed_by_eventsource(browser: Any, url: str) -> None:
    relay = _Relay(int(url.rstrip("/").rsplit(":", 1)[1]))
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(relay.url)
        page.wait_for_function("document.querySelectorAll('#start-agent option').length === 4")
        _start(page, "reindex")
        _wait_count(page, "#lanes .bar.run.status-running", 4)
        assert page.get_attribute("#stream-state", "data-state") == "open"

        relay.cut()

        page.wait_for_function("document.getElementById('stream-state').dataset.state === 'lost'")
        assert "reconnecting" in page.text_content("#stream-state")
        relay.up.set()  # EventSource retries by itself, with Last-Event-ID
        page.wait_for_function("document.getElementById('stream-state').dataset.state === 'open'")
        assert page.is_hidden("#stream-state")
        page.click("#cancel")  # the resumed stream delivers the run's end
        _wait_status(page, "cancelled")
        assert page.locator("#lanes .lane").count() == 4
        # One bar per task: a start event seen twice would have drawn a second one.
        assert page.locator("#lanes .bar.run").count() == 4
        assert page.locator("#lanes .bar.run.status-cancelled").count() == 4
    finally:
        context.close()
        relay.close()
