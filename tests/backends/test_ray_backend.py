"""The acceptance scenarios of the local backend, on a local Ray instance."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import pytest

from .conftest import ENABLED, SKIP_REASON

if not ENABLED:  # before importing Ray (1.5 s)
    pytest.skip(SKIP_REASON, allow_module_level=True)

import anyio
import anyio.to_thread
from smolagents import CodeAgent

from agentloop import InvalidArgumentsError, TaskRegistry, TaskStatus, create_async_agent
from agentloop.backends.ray import RayBackend
from agentloop.testing import ScriptedModel

from ..tracing.conftest import Spans
from .tools import broken, nap, nap_announced, spin, where

pytestmark = pytest.mark.usefixtures("ray_cluster")


def backend() -> RayBackend:
    return RayBackend(shutdown_on_close=False)  # the session fixture owns the instance


async def test_fan_out_runs_in_worker_processes() -> None:
    async with TaskRegistry(tools=[where, nap], backend=backend(), max_workers=4) as registry:
        ids = [await registry.submit("tool", "where", {"n": i}) for i in range(6)]
        ids += [await registry.submit("tool", "nap", {"seconds": 0.05}) for _ in range(3)]
        outcome = await registry.wait(ids, timeout=60)
        results = await registry.results(ids)
    assert outcome.all_completed, outcome
    pids = {value["pid"] for value in list(results.values())[:6]}
    assert os.getpid() not in pids
    assert [value["n"] for value in list(results.values())[:6]] == list(range(6))


async def test_failure_keeps_the_targets_own_error() -> None:
    async with TaskRegistry(tools=[broken], backend=backend()) as registry:
        task_id = await registry.submit("tool", "broken")
        await registry.wait(task_id, timeout=60)
        info = registry.get(task_id)
    assert info.status is TaskStatus.FAILED
    assert info.error == "ValueError: bad row 7"


async def test_timeout_and_cancel_reach_ray_and_slots_wait_for_the_work(tmp_path: Path) -> None:
    started = tmp_path / "nap-started"
    os.mkfifo(started)
    tools = [spin, nap_announced]
    async with TaskRegistry(tools=tools, backend=backend(), max_workers=2) as registry:
        late = await registry.submit("tool", "spin", {"seconds": 30}, timeout=1)
        stopped = await registry.submit(
            "tool", "nap_announced", {"seconds": 30, "started": str(started)}
        )
        await registry.wait(late, timeout=60)
        assert registry.get(late).status is TaskStatus.TIMED_OUT
        with anyio.fail_after(30):  # the gate: the async actor runs the nap (another process)
            await anyio.to_thread.run_sync(started.read_bytes, abandon_on_cancel=True)
        info = await registry.cancel(stopped)
        assert info.status is TaskStatus.CANCELLED
        # ray.cancel stops the remote work; the keeper sees it end and frees the slots
        assert await registry.backend.settle(20) == 0
        stats = registry.get_statistics()
        assert (stats["running"], stats["workers_in_use"], stats["async_in_use"]) == (0, 0, 0)


async def test_managed_agent_runs_on_a_fresh_copy_per_task() -> None:
    expert = CodeAgent(
        tools=[],
        model=ScriptedModel(["import os\nfinal_answer(os.getpid())"]),
        name="expert",
        description="Reports its process id.",
        additional_authorized_imports=["os"],
        verbosity_level=-1,
    )
    async with TaskRegistry(managed_agents=[expert], backend=backend()) as registry:
        ids = [await registry.submit("managed_agent", "expert", {"task": "pid?"}) for _ in range(2)]
        outcome = await registry.wait(ids, timeout=60)
        results = await registry.results(ids)
    assert outcome.all_completed, outcome
    for value in results.values():
        assert str(os.getpid()) not in value
    assert expert.memory.steps == []


async def test_an_agent_run_on_ray_is_unchanged_for_the_model() -> None:
    code = """
ids = [submit_task("tool", "where", {"n": i}) for i in range(3)]
wait_for_tasks(ids, max_wait_time=60)
final_answer(sorted(v["n"] for v in get_task_results(ids).values()))
"""
    agent = create_async_agent(tools=[where], model=ScriptedModel([code]), backend=backend())
    async with agent:
        assert await agent.arun("fan out on ray") == [0, 1, 2]


async def test_unpicklable_arguments_and_targets_fail_at_submit() -> None:
    lock = threading.Lock()

    class ProcessLocal:
        """Copies fine within this process, but cannot travel to another."""

        def __deepcopy__(self, memo: dict[int, object]) -> ProcessLocal:
            return self

        def __reduce__(self) -> tuple[object, ...]:
            raise TypeError("a process-local handle")

    def holds_a_lock(x: int) -> int:
        with lock:
            return x

    async with TaskRegistry(tools=[where, holds_a_lock], backend=backend()) as registry:
        with pytest.raises(InvalidArgumentsError, match="cannot be sent to Ray"):
            await registry.submit("tool", "where", {"n": ProcessLocal()})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgumentsError, match="`holds_a_lock` cannot be sent to Ray"):
            await registry.submit("tool", "holds_a_lock", {"x": 1})
        assert registry.list() == []


def spans_with_parent(
    path: Path, parent_span_id: str, within: float = 10.0
) -> list[dict[str, str]]:
    """The worker spans (written by another process, as they end) under `parent_span_id`."""
    deadline = time.monotonic() + within
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        found = [s for s in map(json.loads, lines) if s["parent_span_id"] == parent_span_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)  # polling a file another process appends to


async def test_worker_spans_join_the_runs_trace(worker_span_file: Path) -> None:
    spans = Spans()
    async with TaskRegistry(
        tools=[where], backend=backend(), tracer_provider=spans.provider
    ) as registry:
        task_id = await registry.submit("tool", "where", {"n": 1})
        await registry.wait(task_id, timeout=60)
    task_span = spans.named("execute_tool where")[0]
    task_span_id = f"{task_span.context.span_id:016x}"
    trace_id = f"{task_span.context.trace_id:032x}"
    worker_spans = await asyncio.to_thread(spans_with_parent, worker_span_file, task_span_id)
    (worker_span,) = worker_spans
    assert worker_span["name"] == "inside worker"
    assert worker_span["trace_id"] == trace_id
    assert worker_span["pid"] != os.getpid()
