"""Stress only (`nox -s stress`, AGENTLOOP_STRESS=1): longer, mixed loads and storms.

Bounded by counts, not by wall-clock soaking; each test has its own timeout.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from agentloop import Limits, RegistryClosedError, TaskRegistry, TaskStatus, create_async_agent
from agentloop.testing import FunctionModel, task_text, turn

from .figures import Figures
from .helpers import (
    Concurrency,
    ThreadSampler,
    assert_all_final,
    registry_probe,
    uvicorn_server,
    within,
)

pytestmark = pytest.mark.stress


@pytest.mark.timeout(300)
async def test_soak_a_hundred_thousand_tasks_across_forty_concurrent_scopes(
    figures: Figures,
) -> None:
    """Mixed async/sync/failing/timing-out/cancelled tasks, with dependencies, in 40 scopes."""
    scopes, per_scope, max_workers = 40, 2_500, 4
    inside = Concurrency()

    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        return n

    def crunch(n: int) -> int:
        with inside.inside_call():
            time.sleep(0.002 if n % 11 == 0 else 0)  # every 11th outlives its timeout
            if n % 13 == 0:
                raise ValueError(f"bad {n}")
            return n

    async def forever() -> None:
        await asyncio.Event().wait()

    limits = Limits(
        max_workers=max_workers, retry_backoff=0, thread_grace=10, max_tasks_per_scope=None
    )
    registry = TaskRegistry(tools=[fetch, crunch, forever], limits=limits)

    async def one_scope(index: int) -> list[TaskStatus]:
        rng = random.Random(index)
        async with registry.scope() as scope:
            # two tasks that never end by themselves: closing the scope cancels them (few, as
            # each holds one of the `max_async_tasks` slots while it waits)
            ids = [await scope.submit("tool", "forever") for _ in range(2)]
            finite: list[str] = []  # tasks that end by themselves; dependents pick from these
            for n in range(per_scope):
                roll = rng.random()
                if roll < 0.55:
                    task_id = await scope.submit("tool", "fetch", {"n": n})
                elif roll < 0.9:
                    timeout = 0.001 if n % 11 == 0 else None
                    task_id = await scope.submit(
                        "tool", "crunch", {"n": n}, timeout=timeout, retries=n % 2
                    )
                elif finite:
                    upstream = finite[rng.randrange(len(finite))]
                    task_id = await scope.submit("tool", "fetch", {"n": {"$result_of": upstream}})
                else:
                    task_id = await scope.submit("tool", "fetch", {"n": n})
                finite.append(task_id)
                ids.append(task_id)
                if n % 200 == 199:
                    await scope.cancel(ids[rng.randrange(len(ids))])
            outcome = await scope.wait(finite, timeout=240)
            assert not outcome.timed_out
            # leaving the block cancels the `forever` tasks
        return [scope.get(t).status for t in ids]

    async with registry:
        with ThreadSampler(probe=registry_probe(registry)) as sampler:
            started = time.perf_counter()
            statuses = await within(280, asyncio.gather(*(one_scope(i) for i in range(scopes))))
            seconds = time.perf_counter() - started
            assert await registry._engine.runner.settle(10) == 0
        stats = assert_all_final(registry)

    total = scopes * (per_scope + 2)
    assert sum(len(s) for s in statuses) == total == stats["total_submitted"]
    assert all(status.is_final for per in statuses for status in per)
    assert inside.peak == max_workers
    assert sampler.peaks["workers_in_use"] <= max_workers
    assert sampler.peak_workers <= max_workers
    figures.tasks(stats)
    figures.bounds(
        "soak, 40 scopes",
        sync=(inside.peak, max_workers),
        threads=(sampler.peak_workers, max_workers),
    )
    figures.measured(
        "soak",
        scopes=scopes,
        tasks=total,
        seconds=round(seconds, 1),
        tasks_per_s=round(total / seconds),
        completed=stats["total_completed"],
        failed=stats["total_failed"],
        timed_out=stats["total_timed_out"],
        cancelled=stats["total_cancelled"],
        retries=stats["total_retries"],
    )


class RunRequest(BaseModel):
    task: str


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@pytest.mark.timeout(180)
async def test_disconnect_storm(figures: Figures) -> None:
    """60 clients at once; every other one goes away while its run waits on its tasks."""
    clients = 60
    started_tags: set[str] = set()
    all_started = asyncio.Event()
    cancelled: list[str] = []
    ended: dict[str, float] = {}
    settled = asyncio.Event()
    leavers = clients // 2

    def check_settled() -> None:
        if len(ended) == clients and len(cancelled) == 3 * leavers:
            settled.set()

    async def work(tag: str, n: int) -> str:
        if n == 0:
            started_tags.add(tag)
            if len(started_tags) == clients:
                all_started.set()
        if tag.startswith("leave"):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(tag)
                check_settled()
                raise
        await all_started.wait()
        return tag

    def reply(messages: list[object]) -> str:
        tag = task_text(messages).split()[-1]
        if turn(messages) == 0:
            return (
                f'ids = [submit_task("tool", "work", {{"tag": "{tag}", "n": i}}) '
                "for i in range(3)]\n"
                "wait_for_tasks(ids, max_wait_time=120)\n"
                "final_answer(list(get_task_results(ids).values()))"
            )
        return "final_answer('unexpected')"

    agent = create_async_agent(tools=[work], model=FunctionModel(reply), max_concurrent_runs=64)
    app = FastAPI()

    @app.post("/run")
    async def run(body: RunRequest, request: Request) -> Any:
        running = asyncio.ensure_future(agent.arun(body.task))
        gone = asyncio.ensure_future(_until_disconnected(request))
        await asyncio.wait({running, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        running.cancel()
        await asyncio.wait({running})
        ended[body.task.split()[-1]] = time.monotonic()
        check_settled()
        if running.cancelled():
            return Response(status_code=499)
        return {"answer": running.result()}

    async def client(url: str, tag: str) -> tuple[str, float | None, bytes]:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        payload = json.dumps({"task": f"job {tag}"}).encode()
        writer.write(
            b"POST /run HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        if tag.startswith("leave"):
            await all_started.wait()
            gone_at = time.monotonic()
            writer.close()
            return tag, gone_at, b""
        answer = await reader.read()
        writer.close()
        return tag, None, answer

    tags = [("leave" if i % 2 else "stay") + str(i) for i in range(clients)]
    async with agent, uvicorn_server(app) as url:
        outcomes = await within(120, asyncio.gather(*(client(url, tag) for tag in tags)))
        # every departed client's run ends, and its tasks are cancelled, within a second
        await within(5, settled.wait())
        stats = assert_all_final(agent.task_manager)
        assert stats["open_scopes"] == 0
    gone_at = {tag: gone for tag, gone, _ in outcomes if gone is not None}
    assert len(gone_at) == leavers
    slowest = max(ended[tag] - gone for tag, gone in gone_at.items())
    assert slowest < 1.0, f"a departed client's run ended {slowest:.2f}s after it left"
    for tag, gone, answer in outcomes:
        if gone is None:
            assert f'"answer":["{tag}","{tag}","{tag}"]'.encode() in answer, answer
    assert stats["total_cancelled"] == 3 * leavers
    figures.tasks(stats)
    figures.survived("client disconnected mid-request", leavers)
    figures.measured(
        "disconnect storm",
        clients=clients,
        disconnected=leavers,
        slowest_cancel_s=round(slowest, 3),
    )


@pytest.mark.timeout(180)
async def test_shutdown_storm(figures: Figures) -> None:
    """Twenty agents, each shut down with ten runs in flight: bounded, final, silent."""
    rounds, runs = 20, 10
    slowest = 0.0
    for round_ in range(rounds):
        took, stats = await _shut_down_with_runs_in_flight(round_, runs)
        slowest = max(slowest, took)
        figures.tasks(stats)
    assert slowest < 2.0
    figures.survived("aclose() with runs in flight", rounds * runs)
    figures.measured(
        "shutdown storm", agents=rounds, runs=rounds * runs, slowest_s=round(slowest, 3)
    )


async def _shut_down_with_runs_in_flight(round_: int, runs: int) -> tuple[float, dict[str, Any]]:
    started = asyncio.Event()
    count = 0

    async def forever(n: int) -> None:
        nonlocal count
        count += 1
        if count == 2 * runs:
            started.set()
        await asyncio.Event().wait()

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return (
                'ids = [submit_task("tool", "forever", {"n": i}) for i in range(2)]\n'
                "wait_for_tasks(ids, max_wait_time=600)"
            )
        return "print('still going')"

    model = FunctionModel(reply)
    agent = create_async_agent(tools=[forever], model=model, max_steps=20)
    in_flight = [asyncio.create_task(agent.arun(f"{round_}-{i}")) for i in range(runs)]
    await within(30, started.wait())
    calls = model.calls
    began = time.monotonic()
    await within(10, agent.aclose())
    took = time.monotonic() - began
    outcomes = await within(10, asyncio.gather(*in_flight, return_exceptions=True))
    assert all(isinstance(o, RegistryClosedError) for o in outcomes), outcomes
    assert model.calls == calls
    assert await agent._controller_threads.settle(5) == 0
    stats = assert_all_final(agent.task_manager)
    assert stats["total_cancelled"] == 2 * runs
    return took, stats
