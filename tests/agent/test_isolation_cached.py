"""Runs stay isolated now that what is the same for every run is built once per agent.

The controller factory shares prompt templates, the rendered system prompt and a silent logger
between runs; everything a run writes to (memory, monitor, executor state and tools, the task
scope) must still be its own. Two runs of one agent execute the same script at the same time:
the same variable names, the same task id.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from smolagents import CodeAgent

from agentloop import create_async_agent
from agentloop.testing import ScriptedModel

STEP_1 = """
secret = "secret-" + me
if me == "a":
    only_in_a = 1
tid = submit_task("tool", "meet", {"me": me}, task_id="same-id")
wait_for_tasks([tid], max_wait_time=20)
"""
STEP_2 = """
final_answer({"me": me, "secret": secret, "met": get_task_results([tid])[tid],
              "tasks": list_tasks()})
"""


async def test_concurrent_runs_with_the_same_names_share_nothing() -> None:
    arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def meet(me: str) -> str:
        """Return once the other run has reached this point too (both are mid-run at once).

        Args:
            me: which run is calling.
        """
        arrived[me].set()
        other = "b" if me == "a" else "a"
        await asyncio.wait_for(arrived[other].wait(), timeout=10)
        return f"{me} met {other}"

    controllers: dict[int, Any] = {}
    lock = threading.Lock()

    def record(step: object, agent: Any) -> None:
        with lock:
            controllers[id(agent)] = agent

    model = ScriptedModel([STEP_1, STEP_2])
    agent = create_async_agent(tools=[meet], model=model, step_callbacks=[record])
    async with agent:
        a, b = await asyncio.wait_for(
            asyncio.gather(
                agent.arun("run a", additional_args={"me": "a"}),
                agent.arun("run b", additional_args={"me": "b"}),
            ),
            timeout=30,
        )
        stats = agent.task_manager.get_statistics()

    # Each run read back its own variables and its own task, under the same names.
    assert (a["me"], a["secret"], a["met"]) == ("a", "secret-a", "a met b")
    assert (b["me"], b["secret"], b["met"]) == ("b", "secret-b", "b met a")
    assert "same-id" in str(a["tasks"]) and "same-id" in str(b["tasks"])
    assert stats["total_submitted"] == 2 and (stats["pending"], stats["running"]) == (0, 0)

    # Two controllers, and nothing a run writes to is shared between them.
    assert len(controllers) == 2
    first, second = controllers.values()
    for attribute in ("memory", "monitor", "python_executor", "state", "tools", "step_callbacks"):
        assert getattr(first, attribute) is not getattr(second, attribute), attribute
    states = {c.python_executor.state["me"]: c.python_executor.state for c in (first, second)}
    assert states["a"]["secret"] == "secret-a" and states["b"]["secret"] == "secret-b"
    assert "only_in_a" in states["a"] and "only_in_a" not in states["b"]
    assert first.python_executor.static_tools is not second.python_executor.static_tools
    for name in ("submit_task", "wait_for_tasks", "get_task_results"):
        assert first.tools[name] is not second.tools[name], name
    tasks = {
        c.python_executor.state["me"]: [s.task for s in c.memory.steps[:1]]
        for c in controllers.values()
    }
    assert tasks == {"a": [tasks["a"][0]], "b": [tasks["b"][0]]}
    assert "run a" in tasks["a"][0] and "run b" in tasks["b"][0]

    # What is built once is shared: one prompt, rendered once, the same text in both runs,
    # and the text smolagents itself renders from its template.
    assert first.system_prompt == second.system_prompt
    assert first.system_prompt == CodeAgent.initialize_system_prompt(second)
    assert isinstance(first, CodeAgent) and type(first).__name__ == "CodeAgent"
    assert first.prompt_templates is second.prompt_templates


async def test_a_tool_registered_later_shows_in_the_next_runs_prompt() -> None:
    """The cached prompt is keyed on what it is rendered from, so it cannot go stale."""

    async def first_tool() -> str:
        """The tool every run has."""
        return "one"

    async def added_later() -> str:
        """A tool registered after the first run."""
        return "two"

    prompts: list[str] = []

    def record(step: object, agent: Any) -> None:
        prompts.append(agent.system_prompt)

    model = ScriptedModel(['final_answer("ok")'])
    agent = create_async_agent(tools=[first_tool], model=model, step_callbacks=[record])
    async with agent:
        await agent.arun("one")
        agent.task_manager.register_tools([added_later])
        await agent.arun("two")
    assert "added_later" not in prompts[0]
    assert "added_later" in prompts[1]
