"""Runs as AG-UI streams over a real uvicorn server: every event validated by `ag_ui.core`'s
discriminated `Event` union (and written byte for byte as its `EventEncoder` writes it), a
run with a background task, a direct call, an approval interrupt and its resume, the answer;
a reconnect that gets exactly the rest; malformed inputs refused with the protocol's error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentloop import create_async_agent
from agentloop.serve import create_app
from agentloop.testing import ScriptedModel

from ._agui_client import agui_frames, post_agui, run_input
from .conftest import serving

pytestmark = pytest.mark.timeout(30)

STEP_1 = """
bg = submit_task("tool", "slow", {"x": 3}, task_id="bg")
y = double(x=5)
submit_task("tool", "deploy", {"env": "prod"}, task_id="deploy")
print("direct", y)
"""
STEP_2 = """
wait_for_tasks(["bg", "deploy"])
final_answer(get_task_results(["bg", "deploy"]))
"""
URL = "/api/agents/w/agui"


async def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number.
    """
    return 2 * x


async def deploy(env: str) -> str:
    """Deploy.

    Args:
        env: where.
    """
    return f"deployed to {env}"


def _agent(gate: asyncio.Event, *, journal: Any = None) -> Any:
    async def slow(x: int) -> int:
        """Wait for the gate.

        Args:
            x: a number.
        """
        await gate.wait()
        return x

    return create_async_agent(
        tools=[double, slow, deploy],
        model=ScriptedModel([STEP_1, STEP_2]),
        needs_approval=["deploy"],
        journal=journal,
    )


def _apply(state: dict[str, Any], patch: list[dict[str, Any]]) -> None:
    """RFC 6902 `add` / `replace` on object members (all the mapping sends)."""
    for op in patch:
        *parents, key = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
        node = state
        for part in parents:
            node = node[part]
        assert op["op"] == "add" or key in node, op
        node[key] = op["value"]


def _check_run(events: list[dict[str, Any]]) -> None:
    """One AG-UI run: opened once, closed once, steps and messages balanced, tool calls
    started, given their arguments and ended in order."""
    kinds = [e["type"] for e in events]
    assert kinds[0] == "RUN_STARTED" and kinds.count("RUN_STARTED") == 1
    assert kinds[-1] in ("RUN_FINISHED", "RUN_ERROR") and kinds.count(kinds[-1]) == 1
    open_steps: list[str] = []
    open_message = None
    for event in events:
        kind = event["type"]
        if kind == "STEP_STARTED":
            assert not open_steps
            open_steps.append(event["stepName"])
        elif kind == "STEP_FINISHED":
            assert open_steps == [event["stepName"]]
            open_steps.clear()
        elif kind == "TEXT_MESSAGE_START":
            assert open_message is None
            open_message = event["messageId"]
        elif kind in ("TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"):
            assert event["messageId"] == open_message
            if kind == "TEXT_MESSAGE_END":
                open_message = None
        elif kind == "TOOL_CALL_START":
            assert open_message is None  # a call never opens inside a text message
    assert not open_steps and open_message is None


async def test_a_run_streams_as_ag_ui_with_an_interrupt_its_resume_and_the_answer() -> None:
    gate = asyncio.Event()
    agent = _agent(gate)
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            first = [f["event"] for f in await post_agui(client, URL, run_input("t1", "r1"))]
            _check_run(first)
            assert first[0] == {**first[0], "threadId": "t1", "runId": "r1"}
            started = {e["toolCallName"]: e for e in first if e["type"] == "TOOL_CALL_START"}
            assert set(started) == {"slow", "double", "deploy"}  # background, direct, gated
            args = {e["toolCallId"]: e["delta"] for e in first if e["type"] == "TOOL_CALL_ARGS"}
            assert args[started["double"]["toolCallId"]] == '{"x":5}'
            results = {e["toolCallId"]: e for e in first if e["type"] == "TOOL_CALL_RESULT"}
            assert results[started["double"]["toolCallId"]]["content"] == "10"  # the direct call
            assert started["slow"]["toolCallId"] not in results  # still running: the gate
            end = first[-1]
            assert end["type"] == "RUN_FINISHED" and end["outcome"]["type"] == "interrupt"
            (interrupt,) = end["outcome"]["interrupts"]
            assert interrupt["id"] == "deploy" and interrupt["reason"] == "approval"
            assert interrupt["toolCallId"] == started["deploy"]["toolCallId"]
            assert interrupt["metadata"]["arguments"] == {"env": "prod"}
            # the agentloop run goes on meanwhile: it waits for the decision and the gate
            shown = (await client.get("/api/runs/t1.1")).json()["run"]
            assert shown["status"] == "running" and shown["pending_approvals"] == 1

            gate.set()
            yes = {"approved": True}
            resume = [{"interruptId": "deploy", "status": "resolved", "payload": yes}]
            second = [
                f["event"]
                for f in await post_agui(client, URL, run_input("t1", "r2", None, resume=resume))
            ]
            _check_run(second)
            assert second[0]["runId"] == "r2"
            results.update({e["toolCallId"]: e for e in second if e["type"] == "TOOL_CALL_RESULT"})
            # the background task's result arrives in a later AG-UI run than its call
            assert results[started["slow"]["toolCallId"]]["content"] == "3"
            assert results[started["deploy"]["toolCallId"]]["content"] == "'deployed to prod'"
            answer = second[-1]
            assert answer["outcome"] == {"type": "success"}
            assert answer["result"] == {"bg": 3, "deploy": "deployed to prod"}
            said = [e["delta"] for e in second if e["type"] == "TEXT_MESSAGE_CONTENT"]
            assert said[-1] == '{"bg":3,"deploy":"deployed to prod"}'

            # the task table: a snapshot, then JSON Patches, ends with every task completed
            state: dict[str, Any] = {}
            for event in first + second:
                if event["type"] == "STATE_SNAPSHOT":
                    assert not state or event["snapshot"] == state  # the resume starts as it was
                    state = event["snapshot"]
                elif event["type"] == "STATE_DELTA":
                    _apply(state, event["delta"])
            assert {k: v["status"] for k, v in state["tasks"].items()} == {
                "bg": "completed",
                "double_1": "completed",
                "deploy": "completed",
            }
            # the service lists it like any run, finished
            shown = (await client.get("/api/runs/t1.1")).json()["run"]
            assert shown["status"] == "completed" and shown["session_id"] == "t1"


async def test_a_rejected_interrupt_fails_the_gated_call(tmp_path: Path) -> None:
    gate = asyncio.Event()
    gate.set()
    agent = _agent(gate)
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            first = await post_agui(client, URL, run_input("t2", "r1"))
            assert first[-1]["event"]["outcome"]["type"] == "interrupt"
            resume = [{"interruptId": "deploy", "status": "cancelled"}]
            second = [
                f["event"]
                for f in await post_agui(client, URL, run_input("t2", "r2", None, resume=resume))
            ]
            rejected = [
                e for e in second if e["type"] == "TOOL_CALL_RESULT" and "deploy" in e["toolCallId"]
            ]
            assert rejected and rejected[0]["content"].startswith("failed:")
            assert second[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR")


@pytest.mark.parametrize("journaled", [False, True], ids=["memory", "journal"])
async def test_a_reconnect_mid_stream_gets_exactly_the_rest(
    tmp_path: Path, journaled: bool
) -> None:
    gate = asyncio.Event()
    gate.set()
    agent = _agent(gate, journal=tmp_path / "runs.sqlite" if journaled else None)
    url_ = URL + "?deltas=0"  # the model's words as written are live only: leave them out
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            body = run_input("t3", "r1")
            whole = await post_agui(client, url_, body)
            with_ids = [i for i, f in enumerate(whole) if f["id"] is not None]
            cut = with_ids[len(with_ids) // 2]
            # a client that left after that frame comes back with the same input and its id
            rest = await post_agui(client, url_, body, last=whole[cut]["id"])
            assert [f["event"] for f in rest] == [f["event"] for f in whole[cut + 1 :]]
            assert rest[-1]["event"]["outcome"]["type"] == "interrupt"
            # and the whole run, watched as AG-UI, is one stream with the approval as CUSTOM
            async with client.stream("GET", "/api/runs/t3.1/agui") as response:
                assert response.status_code == 200
                resume = [{"interruptId": "deploy", "status": "resolved", "payload": True}]
                await post_agui(client, url_, run_input("t3", "r2", None, resume=resume))
                text = "".join([chunk async for chunk in response.aiter_text()])
    watched = [f["event"] for f in agui_frames(text)]
    _check_run(watched)
    assert "agentloop.approval_requested" in [e.get("name") for e in watched]
    assert watched[-1]["type"] == "RUN_FINISHED" and watched[-1]["outcome"]["type"] == "success"


async def test_malformed_inputs_get_the_protocols_error_never_a_traceback() -> None:
    gate = asyncio.Event()
    agent = _agent(gate)
    async with agent, serving(create_app({"w": agent})) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"content-type": "application/json"}
            cases: list[tuple[Any, int, str]] = [
                (b"{not json", 400, "not JSON"),
                ({"threadId": "t", "messages": []}, 422, "runId"),
                ({"threadId": "t", "runId": "r", "messages": [{"role": "robot"}]}, 422, "messages"),
                (run_input("t", "r", None), 400, "no user message"),
                (run_input("", "r"), 422, "threadId"),
                (run_input("t", "r", None, resume=[{"interruptId": "x", "status": "resolved"}]),
                 409, "no interrupted run"),
            ]  # fmt: skip
            for body, status, words in cases:
                if isinstance(body, bytes):
                    answer = await client.post(URL, content=body, headers=headers)
                else:
                    answer = await client.post(URL, json=body)
                assert answer.status_code == status, (body, answer.text)
                assert words in answer.json()["error"], answer.text
                assert "Traceback" not in answer.text
            unknown = await client.post("/api/agents/nope/agui", json=run_input("t", "r"))
            assert unknown.status_code == 404
            form = await client.post(URL, content=b"a=1", headers={"content-type": "text/plain"})
            assert form.status_code == 415
            # a bad decision in a resume is refused before anything is decided
            first = await post_agui(client, URL, run_input("t4", "r1"))
            assert first[-1]["event"]["outcome"]["type"] == "interrupt"
            resume = [{"interruptId": "deploy", "status": "resolved", "payload": "yes"}]
            bad = await client.post(URL, json=run_input("t4", "r2", None, resume=resume))
            assert bad.status_code == 422 and "approved" in bad.json()["error"]
            pending = (await client.get("/api/runs/t4.1/approvals")).json()["approvals"]
            assert [p["approval_id"] for p in pending] == ["deploy"]
            gate.set()
            await client.post("/api/runs/t4.1/cancel", json={})


def test_the_example_plays_a_client_through_an_interrupt_to_the_answer() -> None:
    """examples/agui_app.py, run as a user runs it."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "examples/agui_app.py"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["run r1"].startswith("RUN_STARTED") and lines["run r1"].endswith("RUN_FINISHED")
    assert "`publish` needs approval" in lines["interrupt"]
    assert lines["run r2"].count("TOOL_CALL_RESULT") == 3
    assert '"published": {"publish": "published: findings"}' in lines["answer"]
