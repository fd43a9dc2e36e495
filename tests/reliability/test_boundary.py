"""The run scope as a boundary against hostile model code (issue 12, defects 1-3).

smolagents' interpreter blocks only `__dunder__` attributes: model code may read any other
attribute of any object it reaches, call `setattr`, `type` and `getattr`. So nothing reachable
from the task tools, their attributes, methods, classes, or the values they return may lead
to a registry, a scope, a bridge, an event loop, a limit or another run's records.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentloop import Limits, RunScope, TaskRegistry, ToolSettings, create_async_agent
from agentloop import Limits as LimitsType
from agentloop._util import WrapperModel
from agentloop.agent.tools import direct_call_tools, task_tools
from agentloop.core._bridge import LoopBridge
from agentloop.testing import ScriptedModel

from .helpers import within

FORBIDDEN: tuple[type, ...] = (
    TaskRegistry,
    RunScope,
    LoopBridge,
    LimitsType,
    asyncio.AbstractEventLoop,
    asyncio.Task,
    asyncio.Future,
    type(threading.Lock()),
    WrapperModel,  # the controller's model (metered, traced, replaying): the agent's, shared
)
SHARED_NAMES = ("TaskEngine", "TaskTable", "TaskRecord", "TaskRunner", "ThreadKeeper", "Lease")
LEAVES = (str, bytes, int, float, bool, type(None), complex)


def _forbidden(value: Any) -> bool:
    if isinstance(value, FORBIDDEN):
        return True
    return type(value).__name__ in SHARED_NAMES


def reachable(roots: list[Any], depth: int = 4) -> list[tuple[str, Any]]:
    """Every object model code can reach from `roots` by non-dunder attribute reads (and
    `type(x)`), breadth first, `depth` steps deep, with the path that reaches it."""
    seen: set[int] = set()
    found: list[tuple[str, Any]] = []
    queue: deque[tuple[str, Any, int]] = deque((f"root{i}", r, 0) for i, r in enumerate(roots))
    while queue:
        path, value, level = queue.popleft()
        if id(value) in seen:
            continue
        seen.add(id(value))
        found.append((path, value))
        if level >= depth or isinstance(value, LEAVES):
            continue
        children: list[tuple[str, Any]] = [(f"type({path})", type(value))]
        if isinstance(value, dict):
            children += [(f"{path}[{k!r}]", v) for k, v in list(value.items())[:50]]
        elif isinstance(value, (list, tuple, set, frozenset)):
            children += [(f"{path}[{i}]", v) for i, v in enumerate(list(value)[:50])]
        for name in dir(value):
            if name.startswith("__") and name.endswith("__"):
                continue  # the interpreter refuses these
            try:
                children.append((f"{path}.{name}", getattr(value, name)))
            except Exception:
                continue
        queue.extend((p, v, level + 1) for p, v in children)
    return found


def assert_no_path_to_shared_state(roots: list[Any]) -> None:
    leaks = [path for path, value in reachable(roots) if _forbidden(value)]
    assert not leaks, f"model code reaches shared state: {leaks[:10]}"


async def test_no_attribute_path_from_the_task_tools_leads_to_shared_state() -> None:
    """The seven task tools and the direct-call tools (one per registered target)."""
    async with TaskRegistry(tools=[echo]) as registry:
        scope = registry.open_scope()
        bridge, settings = LoopBridge(asyncio.get_running_loop()), ToolSettings()
        tools = [
            *task_tools(scope, bridge, settings),
            *direct_call_tools(scope, bridge, settings, registry.targets()),
        ]
        try:
            assert_no_path_to_shared_state(list(tools))
        finally:
            await scope.aclose()


def echo(x: int) -> int:
    return x


CALL_EVERY_TOOL = """
a = submit_task("tool", "echo", {"x": 1})
b = submit_task("tool", "echo", {"x": 2}, task_id="mine")
outcome = wait_for_tasks([a, b])
results = get_task_results([a, b])
final_answer([outcome, results, check_task(a), check_task(a, format="detailed"),
              list_tasks(), cancel_task(b), sleep(0), submit_task.forward, type(submit_task),
              echo(3), echo.forward, type(echo)])
"""


async def test_no_path_from_what_the_tools_return_leads_to_shared_state() -> None:
    async with create_async_agent(tools=[echo], model=ScriptedModel([CALL_EVERY_TOOL])) as agent:
        returned = await within(20, agent.arun("go"))
    assert len(returned) == 12
    assert_no_path_to_shared_state(returned)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ids=st.lists(st.sampled_from(["echo_1", "mine", "nope", "x" * 300]), min_size=1, max_size=3),
    status=st.sampled_from([None, "completed", "failed", "pending", "bogus"]),
    detailed=st.booleans(),
)
def test_whatever_model_code_asks_for_returns_nothing_that_leads_to_shared_state(
    ids: list[str], status: str | None, detailed: bool
) -> None:
    """Property: for any inputs a model passes, each tool's result (or the error it raises)
    reaches no shared state."""

    async def scenario() -> list[Any]:
        async with TaskRegistry(tools=[echo]) as registry:
            scope = registry.open_scope()
            bridge = LoopBridge(asyncio.get_running_loop())
            tools = {t.name: t for t in task_tools(scope, bridge, ToolSettings())}

            def model_code() -> list[Any]:
                out: list[Any] = []
                calls = [
                    lambda: tools["submit_task"]("tool", "echo", {"x": 1}),
                    lambda: tools["submit_task"]("tool", "echo", {"x": 2}, task_id="mine"),
                    lambda: tools["wait_for_tasks"](ids, max_wait_time=5),
                    lambda: tools["get_task_results"](ids),
                    lambda: tools["check_task"](ids[0], "detailed" if detailed else None),
                    lambda: tools["list_tasks"](status, 5),
                    lambda: tools["cancel_task"](ids[-1]),
                ]
                for call in calls:
                    try:
                        out.append(call())
                    except Exception as exc:  # an error is a value model code can read too
                        out.append(exc)
                return out

            try:
                return await asyncio.to_thread(model_code)
            finally:
                await scope.aclose()

    returned = asyncio.run(scenario())
    assert_no_path_to_shared_state(returned)


READ_PRIVATE_STATE = """
reached = []
for name in ["_scope", "_bridge", "_settings", "_registry", "_on_loop"]:
    if getattr(submit_task, name, None) is not None:  # the interpreter's getattr has a default
        reached.append(name)
final_answer(reached)
"""


async def test_model_code_cannot_read_another_runs_tasks_or_the_tools_state() -> None:
    """Defect 1: `submit_task._scope._registry._scopes[...]` read every other run's records."""
    async with create_async_agent(model=ScriptedModel([READ_PRIVATE_STATE])) as agent:
        assert await within(20, agent.arun("go")) == []


LIFT_QUOTA = """
try:
    submit_task._scope._max_tasks = None
except Exception as exc:
    pass
ids = []
for i in range(8):
    try:
        ids.append(submit_task("tool", "echo", {"x": i}))
    except Exception as exc:
        ids.append("refused: " + str(exc)[:40])
final_answer(ids)
"""


async def test_model_code_cannot_lift_its_own_quota() -> None:
    """Defect 2: `submit_task._scope._max_tasks = None` lifted the run's quota."""
    agent = create_async_agent(
        tools=[echo],
        model=ScriptedModel([LIFT_QUOTA]),
        limits=Limits(max_tasks_per_scope=5),
    )
    async with agent:
        ids = await within(20, agent.arun("go"))
    assert [i.startswith("refused: scope") for i in ids] == [False] * 5 + [True] * 3


STOP_THE_LOOP = """
try:
    submit_task._bridge.loop.stop()
    outcome = "stopped"
except Exception as exc:
    outcome = "refused"
final_answer(outcome)
"""


async def test_model_code_cannot_stop_the_shared_event_loop() -> None:
    """Defect 3: `submit_task._bridge.loop.stop()` stopped the loop every run shares."""
    async with create_async_agent(model=ScriptedModel([STOP_THE_LOOP])) as agent:
        assert await within(20, agent.arun("go")) == "refused"
        assert await within(20, agent.arun("again")) == "refused"  # the loop still serves


@pytest.mark.parametrize("attribute", ["_scope", "_bridge", "_settings"])
async def test_task_tools_carry_no_run_state_as_attributes(attribute: str) -> None:
    async with TaskRegistry() as registry, registry.scope() as scope:
        for tool in task_tools(scope, LoopBridge(asyncio.get_running_loop()), ToolSettings()):
            assert not hasattr(tool, attribute)
            tool.validate_arguments()  # what smolagents would check, had we run its __init__
