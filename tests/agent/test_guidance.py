"""The controller's guidance is generated from what is registered; snapshot-tested.

Update the snapshot after an intended change with `AGENTLOOP_UPDATE_SNAPSHOTS=1 pytest`.
"""

from __future__ import annotations

import os
from pathlib import Path

from smolagents import CodeAgent

from agentloop import Limits, create_async_agent
from agentloop.agent._guidance import TASK_HINT
from agentloop.testing import ScriptedModel

SNAPSHOT = Path(__file__).parent.parent / "snapshots" / "guidance.md"


def analyze_dataset(dataset: str, depth: int = 1) -> dict[str, float]:
    """Compute summary statistics of one dataset (takes 3-5 seconds)."""
    return {}


async def query_db(sql: str) -> list[dict[str, object]]:
    """Run a read-only SQL query against the warehouse."""
    return []


def make_agent() -> object:
    expert = CodeAgent(
        tools=[],
        model=ScriptedModel([]),
        name="ml_expert",
        description="A machine-learning specialist: trains and evaluates models.",
        verbosity_level=-1,
    )
    return create_async_agent(
        tools=[analyze_dataset, query_db],
        managed_agents=[expert],
        model=ScriptedModel([]),
        max_workers=4,
        instructions="You are a careful project manager.",
        limits=Limits(max_workers=4, max_tasks_per_scope=200),
    )


def test_guidance_matches_the_snapshot() -> None:
    rendered = make_agent().guidance()  # type: ignore[attr-defined]
    if os.environ.get("AGENTLOOP_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(rendered + "\n")
    assert rendered + "\n" == SNAPSHOT.read_text()


def test_guidance_names_the_real_targets_and_limits() -> None:
    rendered = make_agent().guidance()  # type: ignore[attr-defined]
    assert "tool `analyze_dataset(dataset: string, depth: integer = 1)`" in rendered
    assert "managed_agent `ml_expert(task: string, additional_args: object = None)`" in rendered
    assert "Limits: 4 sync tool calls" in rendered
    assert "at most 200 tasks per run" in rendered
    assert 'submit_task("tool", "analyze_dataset", {"dataset": "..."})' in rendered
    assert rendered.rstrip().endswith("You are a careful project manager.")


def test_the_example_in_the_guidance_runs() -> None:
    """The example the model is shown must be valid code against the real tools."""

    def analyze_dataset(dataset: str) -> str:
        return dataset.upper()

    agent = create_async_agent(tools=[analyze_dataset], model=ScriptedModel([]))
    rendered = agent.guidance()
    example = rendered.split("```py\n", 1)[1].split("```", 1)[0]
    example = example.replace('"..."', '"sales"')
    agent = create_async_agent(
        tools=[analyze_dataset],
        model=ScriptedModel([example + "final_answer(results)"]),
    )
    with agent:
        results = agent.run("x")
    assert list(results.values()) == ["SALES"] * 3


def test_async_guidance_adds_the_task_hint() -> None:
    seen: list[str] = []

    def reply(messages: list[object]) -> str:
        from agentloop.testing import task_text

        seen.append(task_text(messages))
        return "final_answer('ok')"

    from agentloop.testing import FunctionModel

    with create_async_agent(model=FunctionModel(reply)) as agent:
        agent.run_with_async_guidance("Analyse 5 datasets.")
        agent.run("Plain.")
    assert TASK_HINT.strip() in seen[0]
    assert TASK_HINT.strip() not in seen[1]
