"""smolagents: `ToolCallingAgent` (parallel tool calls per step) and plain `CodeAgent`.

`ToolCallingAgent` runs one reply's tool calls in a `ThreadPoolExecutor(max_tool_threads)`
(default: the executor's min(32, cpus + 4) threads); its tools are sync, so a coroutine function
is run with `asyncio.run` in its worker thread. `CodeAgent` calls tools from the model's code,
one at a time. Both run with `verbosity_level=OFF` (the default prints a panel per tool call).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from ._common import EXECUTOR_THREADS, BatchRun, Probe, System, wakeups

__all__ = ["CODE_AGENT", "TOOL_CALLING", "batch_code_agent", "batch_tool_calling"]

Call = tuple[str, dict[str, Any]]
_JSON_TYPES = {"float": "number", "int": "integer", "str": "string"}


def smol_tool(function: Callable[..., Any]) -> Any:
    """A smolagents `Tool` around a plain function (a coroutine function runs in `asyncio.run`)."""
    from smolagents import Tool

    parameters = inspect.signature(function).parameters

    class Adapter(Tool):  # type: ignore[misc]
        skip_forward_signature_validation = True

        def __init__(self) -> None:
            self.name = function.__name__
            self.description = (function.__doc__ or function.__name__).strip()
            self.inputs = {
                p: {"type": _JSON_TYPES.get(str(v.annotation), "object"), "description": p}
                for p, v in parameters.items()
            }
            self.output_type = "any"
            super().__init__()

        def forward(self, **kwargs: Any) -> Any:
            result = function(**kwargs)
            return asyncio.run(result) if inspect.iscoroutine(result) else result

    return Adapter()


def _tool_calling_model(
    steps: Sequence[Sequence[Call]], *, delay: float, on_call: Callable[[int], None]
) -> Any:
    """A model whose n-th reply makes the calls `steps[n]`; `on_call(n)` runs as it is asked."""
    from smolagents.models import (
        ChatMessage,
        ChatMessageToolCall,
        ChatMessageToolCallFunction,
        MessageRole,
        Model,
    )
    from smolagents.monitoring import TokenUsage

    class ToolCallModel(Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(model_id="bench/tool-calls")
            self.calls = 0

        def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> ChatMessage:
            on_call(self.calls)
            self.calls += 1
            if delay:
                time.sleep(delay)  # simulated model latency
            calls = [
                ChatMessageToolCall(
                    id=f"call_{self.calls}_{i:03d}",
                    type="function",
                    function=ChatMessageToolCallFunction(name=name, arguments=arguments),
                )
                for i, (name, arguments) in enumerate(steps[self.calls - 1])
            ]
            return ChatMessage(
                role=MessageRole.ASSISTANT,
                content=None,
                tool_calls=calls,
                token_usage=TokenUsage(input_tokens=0, output_tokens=0),
            )

    return ToolCallModel()


def _ignore(_: int) -> None:
    pass


def _tool_calling_agent(
    tools: list[Callable[..., Any]],
    steps: Sequence[Sequence[Call]],
    *,
    threads: int | None = None,
    delay: float = 0.0,
    on_call: Callable[[int], None] = _ignore,
) -> Any:
    from smolagents import ToolCallingAgent
    from smolagents.monitoring import LogLevel

    return ToolCallingAgent(
        tools=[smol_tool(t) for t in tools],
        model=_tool_calling_model(steps, delay=delay, on_call=on_call),
        max_tool_threads=threads,
        verbosity_level=LogLevel.OFF,
    )


def _fan_then_answer(name: str, calls: int, arguments: dict[str, Any]) -> list[list[Call]]:
    return [[(name, arguments)] * calls, [("final_answer", {"answer": "done"})]]


def _run(agent: Any, probe: Probe) -> None:
    with probe:
        answer = agent.run("Run the benchmark.")
    if answer != "done":
        raise RuntimeError(f"unexpected answer {answer!r}")


def nap_sync(seconds: float) -> None:
    """Sleep."""
    time.sleep(seconds)


def noop() -> None:
    """Do nothing."""


def _sync(tools: int, seconds: float, workers: int | None) -> float:
    probe = Probe()
    steps = _fan_then_answer("nap_sync", tools, {"seconds": seconds})
    _run(_tool_calling_agent([nap_sync], steps, threads=workers), probe)
    return probe.seconds


def _noops(tools: int, probe: Probe) -> None:
    _run(_tool_calling_agent([noop], _fan_then_answer("noop", tools, {})), probe)


def _fan_agent(
    tool: Callable[..., Any],
    calls: int,
    arguments: dict[str, Any],
    on_next: Callable[[], None] | None,
) -> Any:
    """A `MakeAgent`: the first reply makes `calls` calls of `tool`, the second answers."""

    def on_call(n: int) -> None:
        if n == 1 and on_next is not None:
            on_next()

    steps = _fan_then_answer(tool.__name__, calls, arguments)
    return _tool_calling_agent([tool], steps, on_call=on_call)


TOOL_CALLING = System(
    name="smolagents ToolCallingAgent",
    requires=("smolagents",),
    default_limit=f"{EXECUTOR_THREADS} threads",
    sync_fanout=_sync,
    noops=_noops,
    wakeups=wakeups(_fan_agent, _run, blocking=True),
    wake_point="the next model call (tool results handed back)",
    notes={"w2": "no async tools"},
)


def _code_noops(tools: int, probe: Probe) -> None:
    from smolagents import CodeAgent
    from smolagents.monitoring import LogLevel

    from agentloop.testing import ScriptedModel

    code = f'for _ in range({tools}):\n    noop()\nfinal_answer("done")'
    agent = CodeAgent(
        tools=[smol_tool(noop)], model=ScriptedModel([code]), verbosity_level=LogLevel.OFF
    )
    _run(agent, probe)


CODE_AGENT = System(
    name="smolagents CodeAgent",
    requires=("smolagents",),
    default_limit="1 at a time",
    noops=_code_noops,
    notes={
        "w1": "sequential (not run)",
        "w2": "no async tools",
        "w4": "no wait: a tool call blocks the code until it returns",
    },
)

# -- W5: 10 files x (clean -> analyse -> chart) -----------------------------------------------


def _cleaned(path: str) -> dict[str, Any]:
    """What `clean_file` returns for `path` (a real model copies it from the observation)."""
    return {"path": path, "rows": 1000 + len(path) * 7}


def _stats(path: str) -> dict[str, Any]:
    """What `analyze_data` returns for `path`."""
    return {"path": path, "mean": round(_cleaned(path)["rows"] / 97, 2)}


def batch_tool_calling(
    tools: list[Callable[..., Any]], files: list[str], failing: str, delay: float
) -> BatchRun:
    """One step per stage (10 parallel calls each, 10 threads); the chart that fails is asked
    for again on the next step, then the final answer: 5 model calls."""
    steps: list[list[Call]] = [
        [("clean_file", {"path": p}) for p in files],
        [("analyze_data", {"data": _cleaned(p)}) for p in files],
        [("make_chart", {"stats": _stats(p)}) for p in files],
        [("make_chart", {"stats": _stats(failing)})],
        [("final_answer", {"answer": f"{len(files)} files charted"})],
    ]
    charts, counted = _counting(tools)
    agent = _tool_calling_agent(counted, steps, threads=len(files), delay=delay)
    start = perf_counter()
    agent.run("Clean, analyse and chart the 10 files.")
    return BatchRun(
        seconds=perf_counter() - start, model_calls=agent.model.calls, charts=len(charts)
    )


def batch_code_agent(
    tools: list[Callable[..., Any]], files: list[str], failing: str, delay: float
) -> BatchRun:
    """One tool call per line, file after file; the failing chart ends the first step, and the
    second redoes it, finishes the last file and answers: 2 model calls."""
    from smolagents import CodeAgent
    from smolagents.monitoring import LogLevel

    from agentloop.testing import ScriptedModel

    def lines(i: int) -> list[str]:
        return [
            f'cleaned_{i + 1:02d} = clean_file(path="{files[i]}")',
            f"stats_{i + 1:02d} = analyze_data(data=cleaned_{i + 1:02d})",
            f"chart_{i + 1:02d} = make_chart(stats=stats_{i + 1:02d})",
        ]

    stop = files.index(failing)
    first = [line for i in range(len(files)) for line in lines(i)]
    second = [lines(stop)[2], *(line for i in range(stop + 1, len(files)) for line in lines(i))]
    second.append(f"final_answer([{', '.join(f'chart_{i + 1:02d}' for i in range(len(files)))}])")
    model = ScriptedModel(["\n".join(first), "\n".join(second)], delay=delay)
    made, counted = _counting(tools)
    agent = CodeAgent(
        tools=[smol_tool(t) for t in counted], model=model, verbosity_level=LogLevel.OFF
    )
    start = perf_counter()
    agent.run("Clean, analyse and chart the 10 files.")
    return BatchRun(seconds=perf_counter() - start, model_calls=model.calls, charts=len(made))


def _counting(tools: list[Callable[..., Any]]) -> tuple[set[str], list[Callable[..., Any]]]:
    """The tools, with `make_chart` also recording each chart it makes."""
    charts: set[str] = set()
    by_name = {t.__name__: t for t in tools}
    chart = by_name["make_chart"]

    async def make_chart(stats: dict[str, Any]) -> str:
        made = str(await chart(stats=stats))
        charts.add(made)
        return made

    make_chart.__doc__ = chart.__doc__
    return charts, [by_name["clean_file"], by_name["analyze_data"], make_chart]
