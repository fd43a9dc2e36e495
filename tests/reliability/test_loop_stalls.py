"""One run must not stall the others: nothing a task tool is given or returns makes the event
loop do unbounded work (issue 12, defects 4-7). Each test measures the loop's worst lag with a
probe while hostile model code runs, and holds it under 100 ms."""

from __future__ import annotations

import logging
import time

import pytest

from agentloop import Limits, TaskRegistry, create_async_agent
from agentloop.testing import ScriptedModel

from .helpers import LoopLagProbe, within

MAX_LAG = 0.1


async def run_and_probe(agent_code: str, **options: object) -> tuple[object, float]:
    agent = create_async_agent(model=ScriptedModel([agent_code]), **options)  # type: ignore[arg-type]
    async with agent:
        async with LoopLagProbe() as probe:
            answer = await within(60, agent.arun("go"))
    return answer, probe.worst


async def test_a_huge_task_id_costs_the_loop_nothing() -> None:
    """Defect 4: `check_task("q" * 8_000_000)` ran a did-you-mean lookup on the loop (1.2 s)."""
    code = """
try:
    check_task("q" * 8_000_000)
    said = "no error"
except Exception as exc:
    said = str(exc)[:60]
final_answer(said)
"""
    answer, lag = await run_and_probe(code)
    assert "at most 128 characters" in str(answer)
    assert lag < MAX_LAG, f"loop stalled {lag:.3f}s"


class SlowRepr:
    def __repr__(self) -> str:
        time.sleep(0.5)
        return "SlowRepr()"


def slow_result() -> SlowRepr:
    return SlowRepr()


class SlowMessage(Exception):
    def __str__(self) -> str:
        time.sleep(0.5)
        return "slow message"


def slow_failure() -> None:
    raise SlowMessage()


async def test_rendering_results_and_errors_happens_off_the_loop() -> None:
    """Defect 5: `list_tasks()` called a result's `__repr__` on the loop, and a failing sync
    tool's `str(exception)` ran there too."""
    code = """
ids = [submit_task("tool", "slow_result"), submit_task("tool", "slow_failure")]
wait_for_tasks(ids)
final_answer([list_tasks(), check_task(ids[0], format="detailed"), check_task(ids[1])])
"""
    answer, lag = await run_and_probe(code, tools=[slow_result, slow_failure])
    listing, detail, failure = answer  # type: ignore[misc]
    assert "SlowRepr()" in listing and "SlowRepr()" in detail
    assert "slow message" in failure
    assert lag < MAX_LAG, f"loop stalled {lag:.3f}s"


def consume(items: list[dict[str, int]]) -> int:
    return len(items)


def noop() -> None:
    return None


async def test_copying_a_huge_argument_does_not_hold_the_loop() -> None:
    """Defect 6: `submit_threadsafe` held the scope's lock through deepcopy and checks, and
    the loop took the same lock to start tasks: a 300k-item argument lagged it 22 s."""
    code = """
items = [{"n": i} for i in range(300_000)]
first = submit_task("tool", "noop")  # the loop is woken to start it while the next one copies
big = submit_task("tool", "consume", {"items": items})
wait_for_tasks([first, big])
final_answer(get_task_results([first, big])[big])
"""
    answer, lag = await run_and_probe(code, tools=[consume, noop])
    assert answer == 300_000
    assert lag < MAX_LAG, f"loop stalled {lag:.3f}s"


async def test_an_async_tool_that_blocks_the_loop_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect 7: `time.sleep` inside `async def` went unnoticed."""

    async def blocks_the_loop() -> str:
        time.sleep(0.4)  # noqa: ASYNC251 - the defect under test
        return "done"

    caplog.set_level(logging.WARNING, logger="agentloop")
    async with TaskRegistry(tools=[blocks_the_loop], limits=Limits(loop_lag_warning=0.2)) as reg:
        await reg.wait(await reg.submit("tool", "blocks_the_loop"))
        stats = reg.get_statistics()
    warnings = [r.getMessage() for r in caplog.records if "event loop was blocked" in r.message]
    assert warnings and "`blocks_the_loop`" in warnings[0]
    assert stats["worst_loop_lag_ms"] >= 300
