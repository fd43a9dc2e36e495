"""`agentloop.web.create_web_app`, in process (httpx's ASGI transport): the page and its
assets, the scenario list, the SSE route and its refusals, mounting, and agent ownership.

The page itself runs in a real browser in tests/browser (`nox -s browser`); uvicorn serves it
in tests/test_examples.py and tests/cli/test_demo_web.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.testclient import TestClient

from agentloop import InvalidArgumentsError, RegistryClosedError, create_async_agent
from agentloop.testing import ScriptedModel
from agentloop.web import LOOPBACK_HOSTS, WebScenario, create_web_app
from agentloop.web.app import MAX_TASK_CHARS

pytestmark = pytest.mark.timeout(30)

PLAN = [
    """
ids = [submit_task("tool", "double", {"x": x}, task_id=f"double_{x}") for x in (1, 2)]
wait_for_tasks(ids)
results = get_task_results(ids)
final_answer(sum(results.values()))
"""
]


async def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number.
    """
    return 2 * x


def _agent() -> Any:
    return create_async_agent(tools=[double], model=ScriptedModel(PLAN), name="doubler")


@pytest.fixture
async def agent() -> AsyncIterator[Any]:
    agent = _agent()
    async with agent:
        yield agent


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame; checks each frame's `id:` is its data's seq."""
    frames = []
    for frame in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ":" in line[1:])
        data = json.loads(fields["data"])
        assert int(fields["id"]) == data["seq"]
        frames.append((fields["event"], data))
    return frames


async def test_the_page_and_its_assets_are_served_from_the_package(agent: Any) -> None:
    app = create_web_app({"doubler": agent}, title="<my> runs")
    async with _client(app) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        style = await client.get("/static/app.css")
        missing = await client.get("/static/secret.py")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>&lt;my&gt; runs</title>" in page.text  # the title is escaped
    # No CDN, no build step: every script and stylesheet is one of the app's own, relative.
    assert re.findall(r'(?:src|href)="([^"]+)"', page.text) == [
        "data:,",
        "static/app.css",
        "static/app.js",
    ]
    assert script.status_code == 200 and "new EventSource(" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text  # run data is shown as text, never parsed as HTML
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_scenarios_lists_names_titles_and_default_tasks(agent: Any) -> None:
    app = create_web_app(
        {
            "plain": agent,
            "titled": WebScenario(agent=agent, task="double 1 and 2", title="Doubling"),
        }
    )
    async with _client(app) as client:
        listing = (await client.get("/scenarios")).json()

    assert listing == [
        {"name": "plain", "title": "plain", "task": ""},
        {"name": "titled", "title": "Doubling", "task": "double 1 and 2"},
    ]


async def test_a_run_streams_from_run_started_to_the_final_answer(agent: Any) -> None:
    app = create_web_app({"doubler": WebScenario(agent=agent, task="the default task")})
    async with _client(app) as client:
        default = await client.get("/runs/stream", params={"scenario": "doubler"})
        custom = await client.get("/runs/stream", params={"scenario": "doubler", "task": " mine "})

    assert default.headers["content-type"].startswith("text/event-stream")
    events = _events(default.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer", kinds
    assert events[0][1]["task"] == "the default task"
    assert events[-1][1]["answer"] == 6
    finished = [d["task_event"]["task_id"] for k, d in events if k == "task_completed"]
    assert sorted(finished) == ["double_1", "double_2"]
    assert kinds.count("step") == 1
    assert _events(custom.text)[0][1]["task"] == "mine"
    assert agent.task_manager.get_statistics()["running"] == 0


@pytest.mark.parametrize(
    ("params", "headers", "status", "message"),
    [
        ({"scenario": "dobler"}, {}, 404, "unknown scenario `dobler`; did you mean `doubler`?"),
        ({}, {}, 404, "unknown scenario ``; available: doubler."),
        ({"scenario": "doubler"}, {}, 400, "`task` is empty and `doubler` has no default task"),
        (
            {"scenario": "doubler", "task": "x" * (MAX_TASK_CHARS + 1)},
            {},
            400,
            f"at most {MAX_TASK_CHARS} are accepted",
        ),
        (
            {"scenario": "doubler", "task": "t"},
            {"Sec-Fetch-Site": "cross-site"},
            403,
            "cross-site request",
        ),
    ],
    ids=["misspelt", "missing", "no-task", "too-long", "cross-site"],
)
async def test_a_run_that_cannot_start_is_refused_with_a_reason(
    agent: Any, params: dict[str, str], headers: dict[str, str], status: int, message: str
) -> None:
    app = create_web_app({"doubler": agent})
    async with _client(app) as client:
        reply = await client.get("/runs/stream", params=params, headers=headers)

    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert agent.task_manager.get_statistics()["total_submitted"] == 0


async def test_mounted_under_a_prefix_in_fastapi(agent: Any) -> None:
    app = FastAPI()
    app.mount("/live", create_web_app({"doubler": WebScenario(agent=agent, task="t")}))
    async with _client(app) as client:
        page = await client.get("/live/")
        stream = await client.get("/live/runs/stream", params={"scenario": "doubler"})

    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert _events(stream.text)[-1][0] == "final_answer"


def test_an_app_that_owns_its_agents_closes_them_at_shutdown() -> None:
    owned, kept = _agent(), _agent()
    with TestClient(create_web_app({"a": owned}, owns_agents=True)) as client:
        assert client.get("/scenarios").status_code == 200
    with TestClient(create_web_app({"a": kept})) as client:
        assert client.get("/scenarios").status_code == 200

    with pytest.raises(RegistryClosedError):
        owned.astream("t")
    kept.astream("t")  # still open: whoever made it closes it
    asyncio.run(kept.aclose())


def test_bad_agent_mappings_are_refused() -> None:
    with pytest.raises(InvalidArgumentsError, match="`agents` is empty"):
        create_web_app({})
    with pytest.raises(
        InvalidArgumentsError, match=r"`agents\['x'\]` must be an AsyncAgent or a WebScenario"
    ):
        create_web_app({"x": "not an agent"})  # type: ignore[dict-item]


async def test_a_foreign_host_header_is_refused_dns_rebinding(agent: Any) -> None:
    """A hostile page on a domain that resolves to 127.0.0.1 is same-origin to the browser
    (no `Sec-Fetch-Site: cross-site`), but its requests say its domain in `Host`."""
    app = create_web_app({"doubler": agent}, allowed_hosts=LOOPBACK_HOSTS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as mine:
        assert (await mine.get("/scenarios")).status_code == 200
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as theirs:
        refused = await theirs.get("/runs/stream", params={"scenario": "doubler", "task": "x"})
        page = await theirs.get("/")
    assert refused.status_code == page.status_code == 400
    assert agent.task_manager.get_statistics()["total_submitted"] == 0  # no run started


def test_the_demos_web_app_answers_only_loopback_hosts() -> None:
    from starlette.testclient import TestClient

    from agentloop.web.demo import demo_web_app

    with TestClient(demo_web_app(["batch"]), base_url="http://attacker.example") as client:
        assert client.get("/scenarios").status_code == 400
    with TestClient(demo_web_app(["batch"]), base_url="http://localhost:8765") as client:
        assert client.get("/scenarios").status_code == 200
