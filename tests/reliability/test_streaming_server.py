"""Streaming through a real server: uvicorn on 127.0.0.1, httpx clients reading server-sent
events, clients that leave, and many clients at once (issue 15)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agentloop import create_async_agent
from agentloop.asgi import sse_response
from agentloop.testing import FunctionModel, turn

from .helpers import uvicorn_server, within
from .test_lifecycle import Started, waiting_model


async def read_events(response: httpx.Response) -> Any:
    """Yield (kind, data) for each SSE frame of `response`."""
    kind, data = None, None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif line == "" and kind is not None:
            yield kind, data
            kind, data = None, None


async def echo(word: str) -> str:
    await asyncio.sleep(0)
    return word


def echo_model() -> FunctionModel:
    """Each run echoes its own task text through a task, then answers with it."""

    def reply(messages: list[Any]) -> str:
        task = str(messages[1].content[0]["text"]).split()[-1]
        if turn(messages) == 0:
            return f'tid = submit_task("tool", "echo", {{"word": "{task}"}})\nwait_for_tasks([tid])'
        return "final_answer(get_task_results([tid])[tid])"

    return FunctionModel(reply)


class LogRecords(logging.Handler):
    """The records a logger emits at ERROR and above (uvicorn's do not reach the root)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors() -> Iterator[LogRecords]:
    """What uvicorn logs as errors during the test (one per failed ASGI request)."""
    records = LogRecords()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def app_for(agent: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/stream")
    async def stream(task: str) -> Any:
        return sse_response(agent.astream(task))

    return app


@pytest.mark.timeout(60)
async def test_a_client_reads_events_as_they_happen_and_the_stream_ends_with_the_answer() -> None:
    agent = create_async_agent(tools=[echo], model=echo_model())
    async with agent, uvicorn_server(app_for(agent)) as url, httpx.AsyncClient() as client:
        async with client.stream("GET", f"{url}/stream", params={"task": "word hello"}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            frames = [frame async for frame in read_events(resp)]
    kinds = [kind for kind, _ in frames]
    assert kinds[0] == "run_started" and kinds[-1] == "final_answer"
    assert "task_completed" in kinds and kinds.index("task_completed") < len(kinds) - 1
    assert frames[-1][1]["answer"] == "hello"
    assert [data["seq"] for _, data in frames] == list(range(1, len(frames) + 1))


@pytest.mark.timeout(60)
async def test_a_client_leaving_mid_stream_has_its_run_cancelled_within_1s(
    server_errors: LogRecords,
) -> None:
    """The client reads until the run's four tasks run, then leaves (its reader is dropped,
    which closes the connection). It waits for the tasks through the events themselves: a
    run's first step reaches them only after a model call on the loop, so leaving after the
    first event raced the run's start."""
    probe = Started()
    agent = create_async_agent(tools=[probe.forever], model=waiting_model(), max_steps=4)
    agent.task_manager.register_tools({"blocked": probe.forever})
    async with agent, uvicorn_server(app_for(agent)) as url, httpx.AsyncClient() as client:
        async with client.stream("GET", f"{url}/stream", params={"task": "long"}) as resp:
            kinds = []
            async for kind, _ in read_events(resp):
                kinds.append(kind)
                if kinds.count("task_started") == 4:
                    break
            assert kinds[0] == "run_started"
            await probe.until(started=4)
        gone_at = time.monotonic()  # the client has closed the connection
        await within(1.0, probe.until(cancelled=4))
        cancelled_within = time.monotonic() - gone_at
        stats = agent.task_manager.get_statistics()
        assert stats["total_cancelled"] == 4
    assert cancelled_within < 1.0
    # the server saw a client leave, nothing more: no "Exception in ASGI application"
    assert [r.getMessage() for r in server_errors.records] == []


@pytest.mark.timeout(90)
async def test_fifty_concurrent_streaming_clients_each_see_only_their_own_run() -> None:
    agent = create_async_agent(tools=[echo], model=echo_model())
    async with agent, uvicorn_server(app_for(agent)) as url:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=60)) as client:

            async def one(i: int) -> list[tuple[str, Any]]:
                params = {"task": f"word w{i}"}
                async with client.stream("GET", f"{url}/stream", params=params) as resp:
                    return [frame async for frame in read_events(resp)]

            results = await within(60, asyncio.gather(*(one(i) for i in range(50))))
    for i, frames in enumerate(results):
        run_ids = {data["run_id"] for _, data in frames}
        assert len(run_ids) == 1
        assert frames[-1][1]["answer"] == f"w{i}"
        targets = [d["task_event"]["target"] for k, d in frames if k == "task_submitted"]
        assert targets == ["echo"]
    assert len({frames[0][1]["run_id"] for frames in results}) == 50


async def deploy(env: str) -> str:
    return f"deployed to {env}"


@pytest.mark.timeout(60)
async def test_a_fastapi_app_approves_through_a_second_endpoint_while_the_client_streams() -> None:
    code = 'tid = submit_task("tool", "deploy", {"env": "prod"})\nwait_for_tasks([tid])\n'
    code += "final_answer(get_task_results([tid])[tid])"
    agent = create_async_agent(
        tools=[deploy], model=FunctionModel(lambda m: code), needs_approval={"deploy"}
    )
    streams: dict[str, Any] = {}
    app = FastAPI()

    @app.get("/stream")
    async def stream(task: str, key: str) -> Any:
        streams[key] = agent.astream(task)
        return sse_response(streams[key])

    @app.post("/approve/{key}/{task_id}")
    async def approve(key: str, task_id: str) -> dict[str, str]:
        streams[key].approve(task_id)
        return {"approved": task_id}

    async with agent, uvicorn_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        params = {"task": "ship", "key": "k1"}
        kinds: list[str] = []
        async with client.stream("GET", "/stream", params=params) as resp:
            async for kind, data in read_events(resp):
                kinds.append(kind)
                if kind == "approval_requested":
                    task_id = data["task_event"]["task_id"]
                    approved = await client.post(f"/approve/k1/{task_id}")
                    assert approved.json() == {"approved": task_id}
                if kind == "final_answer":
                    answer = data["answer"]
    assert kinds.index("approval_requested") < kinds.index("task_started")
    assert answer == "deployed to prod"
