"""The OpenAI Agents SDK with a fake `Model`: the first response calls every tool at once, the
second ends the run.

The SDK runs a response's function calls concurrently on the loop; sync function tools go to
`asyncio.to_thread`, i.e. the loop's default executor (min(32, cpus + 4) threads), which is
also how a user raises the limit. Tracing is disabled (it would try to export to OpenAI).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._common import (
    EXECUTOR_THREADS,
    Probe,
    System,
    async_fanout,
    nap_sync,
    noops,
    wakeups,
)

__all__ = ["OPENAI_AGENTS"]


def _agent(
    tool: Callable[..., Any],
    calls: int,
    arguments: dict[str, Any],
    on_answer: Callable[[], None] | None = None,
) -> Any:
    """An agent whose model calls `tool` `calls` times in its first response, then answers."""
    from agents import Agent, function_tool
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    payload = json.dumps(arguments)

    class FakeModel(Model):
        def __init__(self) -> None:
            self.calls = 0

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            self.calls += 1
            output: list[Any]
            if self.calls == 1:
                output = [
                    ResponseFunctionToolCall(
                        id=f"call_{i}",
                        call_id=f"call_{i}",
                        type="function_call",
                        name=tool.__name__,
                        arguments=payload,
                    )
                    for i in range(calls)
                ]
            else:
                if on_answer is not None:
                    on_answer()
                text = ResponseOutputText(text="done", type="output_text", annotations=[])
                output = [
                    ResponseOutputMessage(
                        id="answer",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[text],
                    )
                ]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("the benchmark does not stream")

    return Agent(name="bench", model=FakeModel(), tools=[function_tool(tool)])


def _run(agent: Any, probe: Probe, workers: int | None = None) -> None:
    from agents import RunConfig, Runner

    async def run() -> None:
        if workers is not None:
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
        with probe:
            result = await Runner.run(
                agent, "Run the benchmark.", run_config=RunConfig(tracing_disabled=True)
            )
        if result.final_output != "done":
            raise RuntimeError(f"unexpected output {result.final_output!r}")

    asyncio.run(run())


def _sync(tools: int, seconds: float, workers: int | None) -> float:
    probe = Probe()
    _run(_agent(nap_sync, tools, {"seconds": seconds}), probe, workers)
    return probe.seconds


OPENAI_AGENTS = System(
    name="openai-agents (fake Model)",
    requires=("agents",),
    default_limit=f"{EXECUTOR_THREADS} threads",
    sync_fanout=_sync,
    async_fanout=async_fanout(_agent, _run),
    noops=noops(_agent, _run),
    wakeups=wakeups(_agent, _run),
    wake_point="the next model call (tool results handed back)",
)
