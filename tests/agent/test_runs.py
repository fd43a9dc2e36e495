"""AsyncAgent runs: concurrency, isolation, cancellation, sessions, sync faces."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time

import pytest

from agentloop import (
    AsyncAgent,
    InvalidArgumentsError,
    RegistryClosedError,
    WouldBlockLoopError,
    create_async_agent,
)
from agentloop.testing import FunctionModel, ScriptedModel, task_text, turn

FAN_OUT = """
ids = [submit_task("tool", "work", {"n": i}) for i in range(5)]
outcome = wait_for_tasks(ids, max_wait_time=30)
results = get_task_results(ids)
final_answer(sorted(results.values()))
"""


class Intervals:
    """Records when each call ran, to count overlap without relying on wall-clock budgets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans: list[tuple[float, float]] = []

    def record(self, start: float, end: float) -> None:
        with self._lock:
            self.spans.append((start, end))

    def peak(self) -> int:
        edges = sorted([(s, 1) for s, _ in self.spans] + [(e, -1) for _, e in self.spans])
        depth = peak = 0
        for _, step in edges:
            depth += step
            peak = max(peak, depth)
        return peak


@pytest.mark.parametrize(("max_workers", "waves"), [(5, 1), (2, 3)])
async def test_sync_tools_run_in_waves_of_max_workers(max_workers: int, waves: int) -> None:
    intervals = Intervals()

    def work(n: int) -> int:
        start = time.monotonic()
        time.sleep(0.2)
        intervals.record(start, time.monotonic())
        return n

    agent = create_async_agent(
        tools=[work], model=ScriptedModel([FAN_OUT]), max_workers=max_workers
    )
    async with agent:
        started = time.monotonic()
        assert await agent.arun("five") == [0, 1, 2, 3, 4]
        elapsed = time.monotonic() - started
    assert intervals.peak() == max_workers
    assert waves * 0.2 <= elapsed < waves * 0.2 + 0.5


async def test_the_event_loop_stays_responsive_during_a_run() -> None:
    def work(n: int) -> int:
        time.sleep(0.3)
        return n

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    agent = create_async_agent(tools=[work], model=ScriptedModel([FAN_OUT]), max_workers=5)
    async with agent:
        ticking = asyncio.create_task(ticker())
        await agent.arun("five")
        ticking.cancel()
    assert ticks >= 10  # ~30 expected in 0.3 s; a blocked loop would give ~0


async def test_concurrent_runs_are_fast_and_isolated() -> None:
    async def fetch(tag: str) -> str:
        await asyncio.sleep(1.0)
        return tag

    def reply(messages: list[object]) -> str:
        me = task_text(messages).split()[-1]
        other = str((int(me) + 1) % 12)
        if turn(messages) == 0:
            return (
                f'mine = submit_task("tool", "fetch", {{"tag": "r{me}"}}, task_id="job")\n'
                "wait_for_tasks([mine])\n"
                "value = get_task_results([mine])[mine]\n"
                f'peek = submit_task("tool", "fetch", {{"tag": "x"}}, task_id="probe-{me}")\n'
                f'get_task_results(["probe-{other}"])'  # another run's id: must be unknown
            )
        return "cancel_task(peek)\nfinal_answer(value)"

    agent = create_async_agent(tools=[fetch], model=FunctionModel(reply), max_workers=1)
    async with agent:
        started = time.monotonic()
        answers = await asyncio.gather(*(agent.arun(f"run {i}") for i in range(12)))
        elapsed = time.monotonic() - started
        stats = agent.task_manager.get_statistics()
    assert answers == [f"r{i}" for i in range(12)]
    assert elapsed < 3.0  # 12 one-second tools ran concurrently, not in sequence
    assert (stats["pending"], stats["running"]) == (0, 0)


async def test_cancelling_arun_cancels_its_tasks_promptly() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    running = 0

    async def forever(n: int) -> None:
        nonlocal running
        running += 1
        if running == 3:
            started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            running -= 1
            if running == 0:
                cancelled.set()
            raise

    code = """
ids = [submit_task("tool", "forever", {"n": i}) for i in range(3)]
wait_for_tasks(ids, max_wait_time=600)
final_answer("unreachable")
"""
    agent = create_async_agent(tools=[forever], model=ScriptedModel([code]))
    async with agent:
        run = asyncio.create_task(agent.arun("hang"))
        await asyncio.wait_for(started.wait(), 5)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 5)
        await asyncio.wait_for(cancelled.wait(), 1)
        stats = agent.task_manager.get_statistics()
        assert (stats["running"], stats["pending"], stats["total_cancelled"]) == (0, 0, 3)
        # the controller thread was woken and ended, nothing is left behind
        assert await agent._controller_threads.settle(5) == 0


async def test_run_failure_still_settles_its_tasks() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    model = ScriptedModel(['submit_task("tool", "forever", {})'])  # then the script runs out
    agent = create_async_agent(tools=[forever], model=model)
    async with agent:
        with pytest.raises(Exception, match="ScriptedModel has 1 step"):
            await agent.arun("fail")
        stats = agent.task_manager.get_statistics()
    assert (stats["running"], stats["total_cancelled"]) == (0, 1)


def test_run_and_shutdown_from_a_plain_script() -> None:
    def work(n: int) -> int:
        return n * 10

    agent = create_async_agent(tools=[work], model=ScriptedModel([FAN_OUT]))
    assert agent.run_with_async_guidance("five") == [0, 10, 20, 30, 40]
    assert agent.run("again") == [0, 10, 20, 30, 40]
    assert agent.task_manager.get_statistics()["total_completed"] == 10
    agent.shutdown()
    with pytest.raises(RegistryClosedError, match="was shut down"):
        agent.run("more")


def test_with_statement_shuts_down() -> None:
    with create_async_agent(model=ScriptedModel(["final_answer(1)"])) as agent:
        assert agent.run("one") == 1
    with pytest.raises(RegistryClosedError, match="was shut down"):
        agent.run("two")


async def test_blocking_faces_refuse_to_run_inside_an_event_loop() -> None:
    agent = create_async_agent(model=ScriptedModel(["final_answer(1)"]))
    with pytest.raises(WouldBlockLoopError, match=r"await agent\.arun"):
        agent.run("x")
    with pytest.raises(WouldBlockLoopError, match=r"await agent\.aclose"):
        agent.shutdown()
    await agent.aclose()


def test_sync_and_async_twins_take_the_same_parameters() -> None:
    pairs = [
        (AsyncAgent.run, AsyncAgent.arun),
        (AsyncAgent.run_with_async_guidance, AsyncAgent.arun_with_async_guidance),
    ]
    for sync, async_ in pairs:
        assert inspect.signature(sync) == inspect.signature(async_), sync.__name__


def test_agent_created_without_a_loop_binds_lazily() -> None:
    agent = create_async_agent(model=ScriptedModel(["final_answer(7)"]))
    assert agent.task_manager.loop is None
    assert asyncio.run(agent.arun("x")) == 7
    assert asyncio.run(agent.arun("y")) == 7  # a later loop may take over an idle agent


async def test_extra_imports_are_merged_not_a_type_error() -> None:
    code = "import math\nimport json\nfinal_answer(json.dumps(math.floor(2.5)))"
    agent = create_async_agent(
        model=ScriptedModel([code]), additional_authorized_imports=["math"], max_steps=3
    )
    async with agent:
        assert await agent.arun("x") == "2"


def test_unknown_codeagent_option_is_refused_with_a_suggestion() -> None:
    with pytest.raises(
        InvalidArgumentsError,
        match=r"unknown option `max_step` for the controller CodeAgent\. Did you mean `max_steps`",
    ):
        create_async_agent(model=ScriptedModel([]), max_step=3)
    with pytest.raises(InvalidArgumentsError, match="`executor` is not supported"):
        create_async_agent(model=ScriptedModel([]), executor=object())


def test_model_is_required() -> None:
    with pytest.raises(InvalidArgumentsError, match="`model` is required"):
        create_async_agent(tools=[])


async def test_session_shares_memory_variables_and_tasks() -> None:
    async def fetch(tag: str) -> str:
        return tag.upper()

    model = ScriptedModel(
        [
            'first = submit_task("tool", "fetch", {"tag": "a"})\nfinal_answer(first)',
            "wait_for_tasks([first])\nfinal_answer(get_task_results([first])[first])",
        ]
    )
    agent = create_async_agent(tools=[fetch], model=model)
    async with agent, agent.session() as session:
        task_id = await session.arun("start")
        assert await session.arun("continue") == "A"  # same variables, same task scope
        assert session.scope.get(task_id).result == "A"


async def test_session_tasks_are_cancelled_when_it_closes() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    model = ScriptedModel(['t = submit_task("tool", "forever", {})\nfinal_answer(t)'])
    agent = create_async_agent(tools=[forever], model=model)
    async with agent:
        async with agent.session() as session:
            task_id = await session.arun("start")
            assert agent.task_manager.get_statistics()["running"] == 1
        assert session.scope.get(task_id).status == "cancelled"


async def test_contextvar_set_around_arun_is_visible_in_tools_called_from_model_code() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    async def seen_async() -> str:
        return request_id.get()

    def seen_sync() -> str:
        return request_id.get()

    code = """
ids = [submit_task("tool", "seen_async", {}), submit_task("tool", "seen_sync", {})]
wait_for_tasks(ids)
final_answer(list(get_task_results(ids).values()))
"""
    agent = create_async_agent(tools=[seen_async, seen_sync], model=ScriptedModel([code]))
    async with agent:

        async def handle(value: str) -> object:
            request_id.set(value)
            return await agent.arun("x")

        answers = await asyncio.gather(handle("req-1"), handle("req-2"))
    assert answers == [["req-1", "req-1"], ["req-2", "req-2"]]


def test_limits_max_workers_is_not_overridden_by_the_default() -> None:
    """Regression: `create_async_agent(limits=Limits(max_workers=100))` ran with 3 workers."""
    from agentloop import Limits

    model = ScriptedModel([])
    assert create_async_agent(model=model).task_manager.limits.max_workers == 3
    with_limits = create_async_agent(model=model, limits=Limits(max_workers=100))
    assert with_limits.task_manager.limits.max_workers == 100
    both = create_async_agent(model=model, max_workers=7, limits=Limits(max_workers=100))
    assert both.task_manager.limits.max_workers == 7
