"""A2A over real uvicorn servers on 127.0.0.1: a2a-sdk's client against the service (card,
send, stream, get, cancel, errors, auth, a message sent twice), and two services talking A2A,
one's agent a managed agent of the other's."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

pytest.importorskip("a2a")

from a2a.client import ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)

from agentloop import create_async_agent
from agentloop.serve import bearer_tokens, create_app
from agentloop.serve.a2a import A2AAgent
from agentloop.testing import ScriptedModel

from .conftest import FAN_OUT, double, read_events, serving, slow_plan

pytestmark = pytest.mark.timeout(30)

TOKEN = "a-token-of-sixteen-chars-or-more"


def _message(text: str, message_id: str | None = None) -> SendMessageRequest:
    message = Message(
        role=Role.ROLE_USER, message_id=message_id or uuid.uuid4().hex, parts=[Part(text=text)]
    )
    return SendMessageRequest(message=message)


async def _client(url: str, http: httpx.AsyncClient, *, streaming: bool = True) -> Any:
    factory = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http))
    return await factory.create_from_url(url)


async def test_the_card_names_skills_streaming_and_bearer_auth() -> None:
    agent = create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]), name="worker")
    app = create_app({"worker": agent}, auth=bearer_tokens({TOKEN: "alice"}))
    async with agent, serving(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/a2a/worker/.well-known/agent-card.json")).status_code == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            card = (
                await http.get("/a2a/worker/.well-known/agent-card.json", headers=headers)
            ).json()
    assert card["name"] == "worker"
    assert card["capabilities"]["streaming"] is True
    assert [s["id"] for s in card["skills"]] == ["double"]
    assert card["supportedInterfaces"][0]["url"] == f"{url}/a2a/worker/"
    assert card["supportedInterfaces"][0]["protocolBinding"] == "JSONRPC"
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"


async def test_send_get_and_a_message_sent_twice_runs_once() -> None:
    model = ScriptedModel([FAN_OUT] * 3)
    agent = create_async_agent(tools=[double], model=model, name="worker")
    async with agent, serving(create_app({"worker": agent})) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            client = await _client(f"{url}/a2a/worker/", http, streaming=False)
            request = _message("add", "m-1")
            (response,) = [r async for r in client.send_message(request)]
            task = response.task
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            (artifact,) = task.artifacts
            assert artifact.parts[0].data.number_value == 6  # a typed answer: a data part
            again = [r async for r in client.send_message(_message("add", "m-1"))]
            assert again[-1].task.id == task.id
            got = await client.get_task(GetTaskRequest(id=task.id))
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            assert model.calls == 1  # the second send found the first's task
            async with httpx.AsyncClient(base_url=url) as api:
                shown = (await api.get(f"/api/runs/{task.id}")).json()["run"]
            assert shown["status"] == "completed" and shown["answer"] == 6


async def test_stream_shows_status_updates_then_the_answer() -> None:
    agent = create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]), name="worker")
    async with agent, serving(create_app({"worker": agent})) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            client = await _client(f"{url}/a2a/worker/", http)
            seen = [r async for r in client.send_message(_message("add"))]
    kinds = [r.WhichOneof("payload") for r in seen]
    assert kinds[0] == "task" and "artifact_update" in kinds
    texts = [
        r.status_update.status.message.parts[0].text
        for r in seen
        if r.WhichOneof("payload") == "status_update" and r.status_update.status.message.parts
    ]
    assert any("double_1" in t and "completed" in t for t in texts), texts
    assert seen[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


async def test_cancel_stops_the_run() -> None:
    entered = asyncio.Event()

    async def slow(x: int) -> int:
        """Wait forever.

        Args:
            x: a number.
        """
        entered.set()
        await asyncio.Event().wait()
        return x

    agent = create_async_agent(tools=[slow], model=ScriptedModel([slow_plan(1)]), name="w")
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            client = await _client(f"{url}/a2a/w/", http, streaming=False)
            request = _message("s")
            request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
            (response,) = [r async for r in client.send_message(request)]
            await entered.wait()
            cancelled = await client.cancel_task(CancelTaskRequest(id=response.task.id))
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
            async with httpx.AsyncClient(base_url=url) as api:
                events = await read_events(api, response.task.id)
                assert events[-1]["event"] == "run_failed"
                shown = (await api.get(f"/api/runs/{response.task.id}")).json()["run"]
            assert shown["status"] == "cancelled"


async def test_malformed_and_unauthenticated_requests_get_json_rpc_errors() -> None:
    agent = create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]), name="worker")
    app = create_app({"worker": agent}, auth=bearer_tokens({TOKEN: "alice"}), max_body_bytes=2000)
    async with agent, serving(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            bad = await http.post("/a2a/worker/", content=b"{not json", headers=headers)
            assert bad.json()["error"]["code"] == -32700
            unknown = await http.post(
                "/a2a/worker/",
                json={"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod", "params": {}},
                headers=headers,
            )
            assert unknown.json()["error"]["code"] == -32601
            anonymous = await http.post("/a2a/worker/", json={"jsonrpc": "2.0", "id": 1})
            assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == -32600
            huge = await http.post("/a2a/worker/", content=b"x" * 5000, headers=headers)
            assert huge.status_code == 413
            other_host = await http.post(
                "/a2a/worker/", json={}, headers={**headers, "Host": "evil.example"}
            )
            assert other_host.status_code == 400


async def test_a_remote_agent_is_a_managed_agent_of_another_service() -> None:
    remote = create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]), name="adder")
    async with remote, serving(create_app({"adder": remote})) as remote_url:
        helper = await A2AAgent.discover(f"{remote_url}/a2a/adder/")
        assert helper.name == "adder" and "double" in helper.description
        plan = (
            'ids = [submit_task("managed_agent", "adder", {"task": "add"}, task_id="r")]\n'
            "wait_for_tasks(ids)\nfinal_answer(get_task_results(ids))"
        )
        caller = create_async_agent(managed_agents=[helper], model=ScriptedModel([plan]))
        async with caller, serving(create_app({"caller": caller})) as url:
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                started = await http.post("/api/runs", json={"task": "delegate"})
                run_id = started.json()["run"]["run_id"]
                events = await read_events(http, run_id)
    assert events[-1]["event"] == "final_answer"
    assert events[-1]["data"]["answer"] == {"r": 6}
    progress = [e for e in events if e["event"] == "task_progress"]
    assert progress and any("working" in str(e["data"]) for e in progress)
