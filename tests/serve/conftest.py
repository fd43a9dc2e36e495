"""The run service under a real uvicorn server on 127.0.0.1 (on the test's loop, a free port),
with real httpx clients over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn

APPROVE_PLAN = """
ids = [submit_task("tool", "deploy", {"env": "prod"}, task_id="deploy"),
       submit_task("tool", "double", {"x": 4}, task_id="double_4")]
wait_for_tasks(ids)
final_answer(str(get_task_results(ids)))
"""

FAN_OUT = """
ids = [submit_task("tool", "double", {"x": x}, task_id=f"double_{x}") for x in (1, 2)]
wait_for_tasks(ids)
final_answer(sum(get_task_results(ids).values()))
"""


def slow_plan(x: int) -> str:
    """A run of one `slow` task (task id `s`) that answers `{"s": x}`."""
    return (
        f'ids = [submit_task("tool", "slow", {{"x": {x}}}, task_id="s")]\n'
        "wait_for_tasks(ids)\nfinal_answer(get_task_results(ids))"
    )


def gated_slow() -> tuple[Callable[[int], Awaitable[int]], asyncio.Event, asyncio.Event]:
    """The `slow` tool of `slow_plan`, its gate and the event it sets once it began."""
    gate, entered = asyncio.Event(), asyncio.Event()

    async def slow(x: int) -> int:
        """Wait for the gate.

        Args:
            x: a number.
        """
        entered.set()
        await gate.wait()
        return x

    return slow, gate, entered


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


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """`app` under uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)  # uvicorn has no started event to wait on
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def frames(body: str) -> list[dict[str, Any]]:
    """The SSE frames of `body`: {"id": int|None, "event": str, "data": dict}."""
    found = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            event_id = int(fields["id"]) if "id" in fields else None
            found.append(
                {"id": event_id, "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return found


async def read_events(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    last: int | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """The run's event stream until it ends (or `stop_after` frames: then the client leaves)."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    body = ""
    async with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_text():
            body += chunk
            if stop_after is not None and len(frames(body)) >= stop_after:
                break
    found = frames(body)
    return found[:stop_after] if stop_after is not None else found


@pytest.fixture
def post_json() -> Any:
    async def post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(url, json=body)

    return post
