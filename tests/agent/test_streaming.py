"""Streaming a run: `agent.astream` / `session.astream` give the run's events in order, and the
stream owns the run (issue 15)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import pytest

from agentloop import RunEventKind, RunStream, create_async_agent
from agentloop.testing import ScriptedModel

K = RunEventKind


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def fetch(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


async def collect(stream: RunStream) -> list[Any]:
    async with stream:
        return [event async for event in stream]


FAN_OUT = """
ids = [submit_task("tool", "fetch", {"n": i}) for i in range(3)]
wait_for_tasks(ids)
results = get_task_results(ids)
"""


async def test_a_fan_out_streams_start_tasks_steps_and_answer_in_order() -> None:
    agent = create_async_agent(
        tools=[fetch], model=ScriptedModel([FAN_OUT, "final_answer(sum(results.values()))"])
    )
    async with agent:
        stream = agent.astream("add them")
        events = await within(20, collect(stream))
        assert await stream.result() == 6
    kinds = [e.kind for e in events]
    assert kinds[0] is K.RUN_STARTED and events[0].task == "add them"
    assert kinds[-1] is K.FINAL_ANSWER and events[-1].answer == 6
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.run_id for e in events} == {stream.run_id}
    for task_id in ("fetch_1", "fetch_2", "fetch_3"):
        mine = [e.kind for e in events if e.task_event and e.task_event.task_id == task_id]
        assert mine == [K.TASK_SUBMITTED, K.TASK_STARTED, K.TASK_COMPLETED]
    completed = [e for e in events if e.kind is K.TASK_COMPLETED]
    assert sorted(e.task_event.preview for e in completed) == ["0", "2", "4"]  # type: ignore[union-attr]
    steps = [e.step for e in events if e.kind is K.STEP]
    assert [s.number for s in steps] == [1, 2]  # type: ignore[union-attr]
    assert "submit_task" in (steps[0].code or "")  # type: ignore[union-attr]
    # the step's own tasks are reported before the step itself
    assert kinds.index(K.STEP) > max(i for i, k in enumerate(kinds) if k is K.TASK_COMPLETED)


def clean(x: str) -> str:
    return x.strip()


def shout(x: str) -> str:
    return x.upper()


PIPELINE = """
a = submit_task("tool", "clean", {"x": "  hi "})
b = submit_task("tool", "shout", {"x": {"$result_of": a}})
wait_for_tasks([b])
final_answer(get_task_results([b])[b])
"""


async def test_a_pipeline_streams_its_stages_in_dependency_order() -> None:
    agent = create_async_agent(tools=[clean, shout], model=ScriptedModel([PIPELINE]))
    async with agent:
        events = await within(20, collect(agent.astream("go")))
    done = [e.task_event.target for e in events if e.kind is K.TASK_COMPLETED]  # type: ignore[union-attr]
    assert done == ["clean", "shout"] and events[-1].answer == "HI"


async def test_to_dict_is_json_and_round_trips() -> None:
    agent = create_async_agent(
        tools=[fetch], model=ScriptedModel([FAN_OUT, "final_answer({'total': 6, 'ok': True})"])
    )
    async with agent:
        events = await within(20, collect(agent.astream("go")))
    for event in events:
        data = event.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["version"] == 1 and data["kind"] == event.kind.value
    assert events[-1].to_dict()["answer"] == {"total": 6, "ok": True}
    submitted = next(e for e in events if e.kind is K.TASK_SUBMITTED)
    assert submitted.to_dict()["task_event"]["status"] == "pending"


async def test_leaving_the_stream_early_cancels_the_run_and_every_task() -> None:
    async def forever(n: int) -> None:
        await asyncio.Event().wait()

    code = """
ids = [submit_task("tool", "forever", {"n": i}) for i in range(3)]
wait_for_tasks(ids)
"""
    agent = create_async_agent(tools=[forever], model=ScriptedModel([code]))
    async with agent:
        async with agent.astream("go") as stream:
            started = 0
            async for event in stream:
                # All three must be running before we leave; the model code submits them
                # one by one from its thread, so the first start is not the last submit.
                started += event.kind is K.TASK_STARTED
                if started == 3:
                    break
        stats = agent.task_manager.get_statistics()
        assert (stats["running"], stats["pending"], stats["open_scopes"]) == (0, 0, 0)
        assert stats["total_cancelled"] == 3
        with pytest.raises(asyncio.CancelledError):
            await stream.result()


async def test_a_failing_run_ends_the_stream_with_its_error() -> None:
    agent = create_async_agent(tools=[fetch], model=ScriptedModel([FAN_OUT]))  # no 2nd step
    async with agent:
        stream = agent.astream("go")
        events = await within(20, collect(stream))
        with pytest.raises(Exception, match="ScriptedModel has 1 step"):
            await stream.result()
    assert events[-1].kind is K.RUN_FAILED and "ScriptedModel has 1 step" in (
        events[-1].error or ""
    )


async def test_a_slow_consumer_never_slows_the_run_and_learns_what_it_missed() -> None:
    code = """
ids = [submit_task("tool", "fetch", {"n": i}) for i in range(50)]
wait_for_tasks(ids)
final_answer(len(ids))
"""
    agent = create_async_agent(tools=[fetch], model=ScriptedModel([code]))
    async with agent:
        stream = agent.astream("go", max_buffered=20)
        async with stream:
            assert await within(20, stream.result()) == 50  # finished while nobody read
            events = [event async for event in stream]
    assert events[0].kind is K.EVENTS_DROPPED and events[0].dropped == stream.dropped > 100
    assert events[-1].kind is K.FINAL_ANSWER
    assert len(events) <= 22


async def test_a_session_streams_two_turns() -> None:
    agent = create_async_agent(
        tools=[fetch],
        model=ScriptedModel(
            [
                'tid = submit_task("tool", "fetch", {"n": 1})\n'
                "wait_for_tasks([tid])\nfinal_answer(1)",
                "final_answer(2)",
            ]
        ),
    )
    async with agent, agent.session() as session:
        first = await within(20, collect(session.astream("one")))
        second = await within(20, collect(session.astream("two")))
    assert (first[-1].answer, second[-1].answer) == (1, 2)
    assert first[0].run_id == second[0].run_id  # one session scope
    assert any(e.kind is K.TASK_COMPLETED for e in first)
    assert not any(e.task_event for e in second)


async def test_a_stream_cancelled_before_its_run_starts_still_ends() -> None:
    """A cancel right after entering the stream used to leave the iteration waiting forever."""
    agent = create_async_agent(tools=[fetch], model=ScriptedModel([FAN_OUT]))
    async with agent, agent.astream("go") as stream:
        stream.cancel()
        events = await within(10, asyncio.ensure_future(_all(stream)))
    assert events[-1].kind is K.RUN_FAILED


async def _all(stream: RunStream) -> list[Any]:
    return [event async for event in stream]


async def test_closing_a_stream_survives_repeated_cancellation_and_waits_for_the_run() -> None:
    """Starlette cancels a response with an anyio cancel scope, which delivers cancellation
    again at every await until the task leaves the scope. Closing the stream then must keep
    waiting for the run to end (not read an unfinished run's outcome: InvalidStateError) and
    leave with the cancellation."""
    started = asyncio.Event()
    cleaned_up: list[bool] = []

    async def slow_to_stop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(20):  # cleanup that takes a few turns of the loop
                await asyncio.sleep(0)
            cleaned_up.append(True)
            raise

    code = 'tid = submit_task("tool", "slow_to_stop")\nwait_for_tasks([tid])'
    agent = create_async_agent(tools=[slow_to_stop], model=ScriptedModel([code]))
    async with agent:
        stream = agent.astream("go")
        with anyio.CancelScope() as scope:
            async with stream:
                await within(10, started.wait())
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert cleaned_up == [True]  # the run had ended when the stream's block was left
        with pytest.raises(asyncio.CancelledError):
            await stream.result()


async def test_a_stream_dropped_while_its_run_goes_on_cancels_the_run_and_warns() -> None:
    """A bare `async for` that breaks out, and nothing closes the stream: once the stream is
    garbage, its run is cancelled (with a ResourceWarning), not left going forever."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    code = 'tid = submit_task("tool", "forever")\nwait_for_tasks([tid])'
    agent = create_async_agent(tools=[forever], model=ScriptedModel([code]))
    async with agent:
        held = [agent.astream("go")]  # the only reference to the stream
        async for event in held[0]:
            if event.kind is K.TASK_STARTED:
                break
        await within(10, started.wait())
        with pytest.warns(ResourceWarning, match="garbage-collected while its run"):
            held.clear()  # collected here: nothing else holds it (not even its run)
        await within(10, cancelled.wait())


async def test_every_event_is_strict_json_whatever_the_answer_holds() -> None:
    """NaN and Infinity are not JSON (a browser's `JSON.parse` throws on them); a dict the
    model defined may run code when iterated. Events carry strict JSON and run none of it."""
    code = """
class Sneaky(dict):
    def items(self):
        raise RuntimeError("ran model code while encoding")
final_answer({"ratio": float("nan"), "limits": [float("inf"), -float("inf")], "s": Sneaky(a=1)})
"""
    agent = create_async_agent(model=ScriptedModel([code]))
    async with agent:
        events = await within(20, collect(agent.astream("go")))
    for event in events:
        json.dumps(event.to_dict(), allow_nan=False)  # raises on NaN/Infinity
    answer = events[-1].to_dict()["answer"]
    assert answer == {"ratio": "nan", "limits": ["inf", "-inf"], "s": "<Sneaky object>"}
