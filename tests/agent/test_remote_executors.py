"""Remote executors are refused when the agent is created, saying why and what to use instead
(issue 23, point 7): accepted, `executor_type="docker"` crashed every run at its first step."""

from __future__ import annotations

import typing

import pytest
from smolagents import CodeAgent

from agentloop import InvalidArgumentsError, create_async_agent
from agentloop.testing import ScriptedModel


def smolagents_executor_types() -> list[str]:
    """Every `executor_type` this smolagents' CodeAgent accepts (its annotation's values)."""
    hints = typing.get_type_hints(CodeAgent.__init__)
    return sorted(typing.get_args(hints["executor_type"]))


REMOTE = [kind for kind in smolagents_executor_types() if kind != "local"]


def test_smolagents_offers_remote_executors() -> None:
    assert "local" in smolagents_executor_types()
    assert "docker" in REMOTE  # the one the issue names; the others come and go by version


@pytest.mark.parametrize("executor_type", REMOTE)
def test_each_remote_executor_is_refused_at_creation(executor_type: str) -> None:
    with pytest.raises(InvalidArgumentsError) as refused:
        create_async_agent(model=ScriptedModel(["x"]), executor_type=executor_type)
    message = str(refused.value)
    assert f"`executor_type={executor_type!r}` is not supported" in message
    assert "this process's event loop" in message  # why
    assert 'Use `executor_type="local"`' in message and 'backend="ray"' in message  # instead


async def test_the_local_executor_runs() -> None:
    agent = create_async_agent(
        model=ScriptedModel(['final_answer("ok")']),
        executor_type="local",
        executor_kwargs={"timeout_seconds": 30},
    )
    async with agent:
        assert await agent.arun("go") == "ok"
