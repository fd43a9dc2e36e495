"""Bad calls from the model come back as observations it can correct on its next step."""

from __future__ import annotations

import pytest

from agentloop import create_async_agent
from agentloop.testing import FunctionModel, last_observation, turn


def analyze_dataset(name: str, depth: int = 1) -> str:
    """Analyse one dataset."""
    return f"{name}:{depth}"


def corrected_after(bad_code: str) -> tuple[str, str]:
    """Run `bad_code` as step 1; step 2 returns what the model was shown."""

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return bad_code
        return f"final_answer({last_observation(messages)!r})"

    agent = create_async_agent(tools=[analyze_dataset], model=FunctionModel(reply))
    try:
        observation = agent.run("go")
    finally:
        agent.shutdown()
    return observation, str(agent.task_manager.get_statistics())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            'submit_task("tool", "analyse_dataset", {"name": "a"})',
            "unknown tool `analyse_dataset`. Did you mean `analyze_dataset`?",
        ),
        (
            'submit_task("tool", "analyze_dataset", {"nmae": "a"})',
            "`analyze_dataset` has no input `nmae`. Did you mean `name`?",
        ),
        (
            'submit_task("tool", "analyze_dataset", {"name": 3})',
            "input `name` expects string, received integer `3`",
        ),
        ('wait_for_tasks(["task_404"])', "no task `task_404` in this run"),
        (
            'submit_task("tool", "analyze_dataset", {"name": "a"}, task_id="x")\n'
            'submit_task("tool", "analyze_dataset", {"name": "b"}, task_id="x")',
            "task id `x` is already used in this run",
        ),
        (
            'submit_task("tool", "final_answer", {"answer": "a"})',
            "`final_answer` cannot be a task target",
        ),
        (
            'submit_task("agent", "analyze_dataset", {"name": "a"})',
            "unknown task_type 'agent'",
        ),
        (
            'submit_task("tool", "analyze_dataset", "{\'name\': \'a\'}")',
            "not JSON",
        ),
        ('sleep("five")', "`seconds` must be a non-negative number"),
        ('check_task("nope", format="verbose")', "`format` must be 'summary' or 'detailed'"),
    ],
)
def test_bad_call_becomes_an_actionable_observation(code: str, expected: str) -> None:
    observation, _ = corrected_after(code)
    assert "Error" in observation
    assert expected in observation


def test_errors_are_raised_not_returned_as_values() -> None:
    """A failed submit must not hand the model a string it would use as a task id."""
    code = (
        'tid = submit_task("tool", "nope", {})\n'
        'print("got id", tid)'  # never reached
    )
    observation, _ = corrected_after(code)
    assert "got id" not in observation
    assert "UnknownTargetError" in observation
