"""The service's defaults refuse what they should: foreign clients without auth, foreign Host
values, cross-site and non-JSON state changes, big bodies, too many runs, other principals'
runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentloop import InvalidArgumentsError, create_async_agent
from agentloop.serve import Principal, bearer_tokens, create_app
from agentloop.testing import ScriptedModel

from .conftest import FAN_OUT, double

pytestmark = pytest.mark.timeout(30)

ALICE, BOB, OPS = "alice-token-0123456789", "bob-token-0123456789", "ops-token-0123456789"


def _agent() -> Any:
    return create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]), name="w")


def _client(app: Any, client: tuple[str, int] = ("127.0.0.1", 5000), **kw: Any) -> Any:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", **kw)


async def test_without_auth_only_loopback_clients_are_answered() -> None:
    async with _agent() as agent:
        app = create_app(agent)
        async with _client(app, ("10.1.2.3", 4000)) as foreign, _client(app) as local:
            refused = await foreign.get("/api/runs")
            assert refused.status_code == 403 and "token" in refused.json()["error"]
            assert (await local.get("/api/runs")).status_code == 200


async def test_a_foreign_host_header_is_refused() -> None:
    async with _agent() as agent:
        async with _client(create_app(agent)) as client:
            rebinding = await client.get("/api/runs", headers={"Host": "evil.example"})
            assert rebinding.status_code == 400


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ],
)
async def test_state_changes_need_json_from_this_origin(
    headers: dict[str, str], status: int
) -> None:
    async with _agent() as agent:
        async with _client(create_app(agent)) as client:
            sent = {"Content-Type": "application/json", **headers}
            refused = await client.post("/api/runs", content=b'{"task": "x"}', headers=sent)
            assert refused.status_code == status
            assert (await client.get("/api/runs")).json()["runs"] == []  # nothing started
            same = {"Content-Type": "application/json", "Origin": "http://127.0.0.1:8000"}
            ok = await client.post("/api/runs", content=b'{"task": "x"}', headers=same)
            assert ok.status_code == 202


async def test_get_changes_nothing() -> None:
    async with _agent() as agent:
        async with _client(create_app(agent)) as client:
            assert (await client.get("/api/runs/x/cancel")).status_code == 405
            assert (await client.get("/api/runs?task=x")).json()["runs"] == []


async def test_bodies_tasks_and_new_runs_are_bounded() -> None:
    async with _agent() as agent:
        app = create_app(agent, max_body_bytes=1000, max_task_chars=100, runs_per_minute=2)
        async with _client(app) as client:
            big = await client.post("/api/runs", json={"task": "x" * 2000})
            assert big.status_code == 413
            long = await client.post("/api/runs", json={"task": "x" * 200})
            assert long.status_code == 413 and "at most 100" in long.json()["error"]
            nan = await client.post(
                "/api/runs", content=b'{"task": NaN}', headers={"Content-Type": "application/json"}
            )
            assert nan.status_code == 400
            for _ in range(2):
                assert (await client.post("/api/runs", json={"task": "t"})).status_code == 202
            third = await client.post("/api/runs", json={"task": "t"})
            assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1


async def test_principals_see_their_own_runs_and_admins_all() -> None:
    auth = bearer_tokens({ALICE: "alice", BOB: "bob", OPS: Principal("ops", admin=True)})
    async with _agent() as agent:
        app = create_app(agent, auth=auth)
        async with _client(app, ("10.1.2.3", 4000)) as client:
            assert (await client.get("/api/runs")).status_code == 401
            wrong = await client.get("/api/runs", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401

            def as_(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            started = await client.post(
                "/api/runs", json={"task": "t", "wait": True}, headers=as_(ALICE)
            )
            run_id = started.json()["run"]["run_id"]
            assert started.json()["run"]["principal"] == "alice"
            assert (await client.get(f"/api/runs/{run_id}", headers=as_(BOB))).status_code == 404
            assert (await client.get("/api/runs", headers=as_(BOB))).json()["runs"] == []
            events = await client.get(f"/api/runs/{run_id}/events", headers=as_(BOB))
            assert events.status_code == 404
            seen = (await client.get("/api/runs", headers=as_(OPS))).json()["runs"]
            assert [r["run_id"] for r in seen] == [run_id]


def test_tokens_must_be_long_and_agents_share_one_journal(tmp_path: Any) -> None:
    with pytest.raises(InvalidArgumentsError, match="16 characters"):
        bearer_tokens({"short": "x"})
    a = create_async_agent(tools=[double], model=ScriptedModel([]), journal=tmp_path / "a")
    b = create_async_agent(tools=[double], model=ScriptedModel([]))
    with pytest.raises(InvalidArgumentsError, match="same `journal=`"):
        create_app({"a": a, "b": b})
