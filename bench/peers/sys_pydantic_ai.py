"""pydantic-ai with a `FunctionModel`: the first reply calls every tool at once, the second ends.

pydantic-ai runs a reply's tool calls concurrently on the loop; sync tools go to a worker thread
through `anyio.to_thread.run_sync` (anyio's default limiter: 40 threads).
`Agent.using_thread_executor` is its documented way to give them another pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._common import Probe, System, async_fanout, nap_sync, noops, wakeups

__all__ = ["PYDANTIC_AI"]


def _agent(
    tool: Callable[..., Any],
    calls: int,
    arguments: dict[str, Any],
    on_answer: Callable[[], None] | None = None,
) -> Any:
    """An agent whose model calls `tool` `calls` times in its first reply, then answers."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) > 1:
            if on_answer is not None:
                on_answer()
            return ModelResponse(parts=[TextPart("done")])
        name = tool.__name__
        return ModelResponse(
            parts=[ToolCallPart(name, arguments, tool_call_id=f"call_{i}") for i in range(calls)]
        )

    return Agent(FunctionModel(reply), tools=[tool])


def _run(agent: Any, probe: Probe, executor: ThreadPoolExecutor | None = None) -> None:
    from pydantic_ai import Agent

    async def run() -> None:
        with probe:
            result = await agent.run("Run the benchmark.")
        if result.output != "done":
            raise RuntimeError(f"unexpected output {result.output!r}")

    with Agent.using_thread_executor(executor) if executor else contextlib.nullcontext():
        asyncio.run(run())


def _sync(tools: int, seconds: float, workers: int | None) -> float:
    probe = Probe()
    agent = _agent(nap_sync, tools, {"seconds": seconds})
    if workers is None:
        _run(agent, probe)
    else:
        with ThreadPoolExecutor(workers) as executor:
            _run(agent, probe, executor)
    return probe.seconds


PYDANTIC_AI = System(
    name="pydantic-ai (FunctionModel)",
    requires=("pydantic_ai",),
    default_limit="40 threads",
    sync_fanout=_sync,
    async_fanout=async_fanout(_agent, _run),
    noops=noops(_agent, _run),
    wakeups=wakeups(_agent, _run),
    wake_point="the next model call (tool results handed back)",
)
