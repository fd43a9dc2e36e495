"""The run service's runs and streams over a real uvicorn server: background and waited runs,
resumable event streams (`Last-Event-ID`), approvals, cancel, and listing, with and without a
journal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentloop import create_async_agent
from agentloop.serve import create_app
from agentloop.testing import ScriptedModel

from .conftest import (
    APPROVE_PLAN,
    FAN_OUT,
    deploy,
    double,
    frames,
    gated_slow,
    read_events,
    serving,
    slow_plan,
)

pytestmark = pytest.mark.timeout(30)


def _agent(plan: str, *, journal: Any = None, runs: int = 5, **kwargs: Any) -> Any:
    return create_async_agent(
        tools=[double, deploy],
        model=ScriptedModel([plan] * runs),
        name="worker",
        journal=journal,
        **kwargs,
    )


@pytest.mark.parametrize("journaled", [False, True], ids=["memory", "journal"])
async def test_a_background_run_streams_and_a_reconnect_gets_exactly_the_rest(
    tmp_path: Path, journaled: bool
) -> None:
    agent = _agent(FAN_OUT, journal=tmp_path / "runs.sqlite" if journaled else None)
    async with agent, serving(create_app({"worker": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            started = await client.post("/api/runs", json={"agent": "worker", "task": "add"})
            assert started.status_code == 202
            run_id = started.json()["run"]["run_id"]
            whole = await read_events(client, run_id)
            ids = [f["id"] for f in whole]
            assert ids == sorted(set(ids)) and all(f["data"]["seq"] == f["id"] for f in whole)
            assert whole[0]["event"] == "run_started" and whole[-1]["event"] == "final_answer"
            assert whole[-1]["data"]["answer"] == 6
            # a client that left after three events comes back with the last id it saw
            first = await read_events(client, run_id, stop_after=3)
            rest = await read_events(client, run_id, last=first[-1]["id"])
            assert [f["id"] for f in first + rest] == ids
            shown = (await client.get(f"/api/runs/{run_id}")).json()["run"]
            assert shown["status"] == "completed" and shown["answer"] == 6
            assert shown["agent"] == "worker" and shown["principal"] == "local"
            assert {t["task_id"]: t["status"] for t in shown["tasks"]} == {
                "double_1": "completed",
                "double_2": "completed",
            }
            listed = (await client.get("/api/runs", params={"status": "completed"})).json()
            assert [r["run_id"] for r in listed["runs"]] == [run_id]


async def test_a_waited_run_answers_and_its_client_leaving_cancels_it() -> None:
    slow, _, entered = gated_slow()
    plan = slow_plan(1)
    fan = create_async_agent(tools=[double], model=ScriptedModel([FAN_OUT]))
    agent = create_async_agent(tools=[slow], model=ScriptedModel([plan]))
    async with fan, agent, serving(create_app({"fan": fan, "w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"agent": "fan", "task": "add", "wait": True}
            done = await client.post("/api/runs", json=body)
            assert done.status_code == 200 and done.json()["run"]["answer"] == 6
            body = {"agent": "w", "task": "s", "wait": True}
            waiting = asyncio.create_task(client.post("/api/runs", json=body))
            await entered.wait()
            running = (await client.get("/api/runs", params={"status": "running"})).json()["runs"]
            (run,) = running
            waiting.cancel()  # the client leaves
            with pytest.raises(asyncio.CancelledError):
                await waiting
            ended = await read_events(client, run["run_id"])
            assert ended[-1]["event"] == "run_failed"
            shown = (await client.get(f"/api/runs/{run['run_id']}")).json()["run"]
            assert shown["status"] == "cancelled"
            assert shown["tasks"][0]["status"] == "cancelled"


async def test_a_client_leaving_a_background_run_leaves_it_running() -> None:
    gate = asyncio.Event()

    async def slow(x: int) -> int:
        """Wait for the gate.

        Args:
            x: a number.
        """
        await gate.wait()
        return x

    plan = slow_plan(7)
    agent = create_async_agent(tools=[slow], model=ScriptedModel([plan]))
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run_id = (await client.post("/api/runs", json={"task": "s"})).json()["run"]["run_id"]
            seen = await read_events(client, run_id, stop_after=2)  # then the client leaves
            assert seen[0]["event"] == "run_started"
            gate.set()
            rest = await read_events(client, run_id, last=seen[-1]["id"])
            assert rest[-1]["event"] == "final_answer" and rest[-1]["data"]["answer"] == {"s": 7}


@pytest.mark.parametrize("journaled", [False, True], ids=["memory", "journal"])
async def test_approvals_are_listed_decided_once_and_the_run_goes_on(
    tmp_path: Path, journaled: bool
) -> None:
    gate = asyncio.Event()

    async def deploy(env: str) -> str:
        """Deploy, once the gate opens.

        Args:
            env: where.
        """
        await gate.wait()
        return f"deployed to {env}"

    agent = create_async_agent(
        tools=[double, deploy],
        model=ScriptedModel([APPROVE_PLAN]),
        journal=tmp_path / "runs.sqlite" if journaled else None,
        needs_approval=["deploy"],
    )
    async with agent, serving(create_app({"worker": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run_id = (await client.post("/api/runs", json={"task": "ship"})).json()["run"]["run_id"]
            asked = await read_events(client, run_id, stop_after=4)
            while not any(f["event"] == "approval_requested" for f in asked):
                asked += await read_events(client, run_id, last=asked[-1]["id"], stop_after=1)
            (pending,) = (await client.get(f"/api/runs/{run_id}/approvals")).json()["approvals"]
            assert pending["approval_id"] == "deploy" and pending["arguments"] == {"env": "prod"}
            url_ = f"/api/runs/{run_id}/approvals/deploy"
            approved = await client.post(url_, json={"approved": True, "reason": "ok"})
            assert approved.status_code == 200
            again = await client.post(url_, json={"approved": False, "reason": "late"})
            assert again.status_code == 409 and "already decided" in again.json()["error"]
            gate.set()
            rest = await read_events(client, run_id, last=asked[-1]["id"])
            assert "deployed to prod" in rest[-1]["data"]["answer"]
            assert (await client.get(f"/api/runs/{run_id}/approvals")).json()["approvals"] == []
            missing = await client.post(
                f"/api/runs/{run_id}/approvals/nope", json={"approved": True}
            )
            assert missing.status_code == 409


async def test_cancel_stops_the_run_and_its_tasks_show_cancelled() -> None:
    slow, _, entered = gated_slow()
    plan = slow_plan(7)
    agent = create_async_agent(tools=[slow], model=ScriptedModel([plan]))
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run_id = (await client.post("/api/runs", json={"task": "s"})).json()["run"]["run_id"]
            await entered.wait()
            cancelled = await client.post(f"/api/runs/{run_id}/cancel", json={})
            assert cancelled.status_code == 202
            events = await read_events(client, run_id)
            assert events[-1]["event"] == "run_failed"
            shown = (await client.get(f"/api/runs/{run_id}")).json()["run"]
            assert shown["status"] == "cancelled" and shown["tasks"][0]["status"] == "cancelled"
            again = await client.post(f"/api/runs/{run_id}/cancel", json={})
            assert again.status_code == 409


async def test_a_replica_reads_and_follows_a_run_from_the_journal(tmp_path: Path) -> None:
    """Two services on one journal: B never ran the run, and answers about it from the journal."""
    gate = asyncio.Event()

    async def slow(x: int) -> int:
        """Wait for the gate.

        Args:
            x: a number.
        """
        await gate.wait()
        return x

    plan = slow_plan(5)
    path = tmp_path / "runs.sqlite"
    a = create_async_agent(tools=[slow], model=ScriptedModel([plan]), journal=path, name="w")
    b = create_async_agent(tools=[slow], model=ScriptedModel([]), journal=path, name="w")
    async with a, b, serving(create_app({"w": a})) as url_a:
        async with serving(create_app({"w": b}, poll_interval=0.02)) as url_b:
            async with (
                httpx.AsyncClient(base_url=url_a) as ca,
                httpx.AsyncClient(base_url=url_b) as cb,
            ):
                run_id = (await ca.post("/api/runs", json={"task": "s"})).json()["run"]["run_id"]
                seen = await read_events(ca, run_id, stop_after=2)
                shown = (await cb.get(f"/api/runs/{run_id}")).json()["run"]
                assert shown["status"] == "running" and shown["holder"]["pid"] > 0
                refused = await cb.post(f"/api/runs/{run_id}/cancel", json={})
                assert refused.status_code == 409 and "send this to the replica" in refused.text
                following = asyncio.create_task(read_events(cb, run_id, last=seen[-1]["id"]))
                gate.set()
                rest = await following
                whole = await read_events(ca, run_id)
                assert [f["id"] for f in seen + rest] == [f["id"] for f in whole]
                assert rest[-1]["data"]["answer"] == {"s": 5}


async def test_strict_json_everywhere_even_for_nan() -> None:
    plan = 'final_answer({"x": float("nan"), "big": 10**400})'
    agent = create_async_agent(tools=[double], model=ScriptedModel([plan]))
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            done = await client.post("/api/runs", json={"task": "n", "wait": True})
            assert "NaN" not in done.text
            body = ""
            async with client.stream(
                "GET", f"/api/runs/{done.json()['run']['run_id']}/events"
            ) as r:
                async for chunk in r.aiter_text():
                    body += chunk
            assert "NaN" not in body and frames(body)[-1]["event"] == "final_answer"


async def test_a_parked_run_is_decided_over_http_and_resumes(tmp_path: Path) -> None:
    agent = create_async_agent(
        tools=[double, deploy],
        model=ScriptedModel([APPROVE_PLAN]),
        journal=tmp_path / "runs.sqlite",
        needs_approval=["deploy"],
        park_after=0.05,
    )
    async with agent, serving(create_app({"worker": agent}, poll_interval=0.02)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run_id = (await client.post("/api/runs", json={"task": "ship"})).json()["run"]["run_id"]
            seen = await read_events(client, run_id, stop_after=1)
            while seen[-1]["event"] != "run_parked":
                seen += await read_events(client, run_id, last=seen[-1]["id"], stop_after=1)
            shown = (await client.get(f"/api/runs/{run_id}")).json()["run"]
            assert shown["status"] == "parked" and shown["holder"] is None
            (pending,) = (await client.get(f"/api/runs/{run_id}/approvals")).json()["approvals"]
            assert pending["task_id"] == "deploy" and pending["arguments"] == {"env": "prod"}
            following = asyncio.create_task(read_events(client, run_id, last=seen[-1]["id"]))
            decided = await client.post(
                f"/api/runs/{run_id}/approvals/deploy", json={"approved": True}
            )
            assert decided.status_code == 200
            rest = await following
            assert rest[0]["event"] == "run_resumed" and rest[-1]["event"] == "final_answer"
            assert "deployed to prod" in rest[-1]["data"]["answer"]
            again = await client.post(
                f"/api/runs/{run_id}/approvals/deploy", json={"approved": True}
            )
            assert again.status_code == 409


async def test_two_replicas_recovering_one_run_resume_it_once(tmp_path: Path) -> None:
    """A run handed back (its agent shut down mid-run) is found by two replicas at once: one
    resumes it, the other leaves it and its clients follow it from the journal."""
    slow, gate, entered = gated_slow()

    path = tmp_path / "runs.sqlite"

    def agent() -> Any:
        return create_async_agent(
            tools=[slow], model=ScriptedModel([slow_plan(3)]), journal=path, name="w",
            idempotent=["slow"],
        )  # fmt: skip

    first = agent()
    async with first, serving(create_app({"w": first}, recover_interval=None)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run_id = (await client.post("/api/runs", json={"task": "s"})).json()["run"]["run_id"]
            seen = await read_events(client, run_id, stop_after=1)
            await entered.wait()
    # the first service stopped mid-run: the run is handed back, unfinished
    b, c = agent(), agent()
    app_b = create_app({"w": b}, recover_interval=None, poll_interval=0.02)
    app_c = create_app({"w": c}, recover_interval=None, poll_interval=0.02)
    async with b, c, serving(app_b) as url_b, serving(app_c) as url_c:
        found = await asyncio.gather(app_b.state.runs.recover(), app_c.state.runs.recover())
        assert run_id in found[0] + found[1]  # both may try: the journal's claim picks one
        gate.set()
        async with httpx.AsyncClient(base_url=url_b) as cb, httpx.AsyncClient(base_url=url_c) as cc:
            via_b = await read_events(cb, run_id, last=seen[-1]["id"])
            via_c = await read_events(cc, run_id, last=seen[-1]["id"])
    assert [f["id"] for f in via_b] == [f["id"] for f in via_c]
    assert via_b[-1]["event"] == "final_answer" and via_b[-1]["data"]["answer"] == {"s": 3}
    assert [f["event"] for f in via_b].count("run_resumed") == 1
