"""smolagents 1.26 traps agentloop designs around (see docs/agent.md, "Executor")."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from agentloop import create_async_agent
from agentloop.testing import ScriptedModel


@pytest.mark.timeout(30)
async def test_the_executor_time_limit_is_the_one_given_and_none_by_default() -> None:
    """smolagents' executor kills code blocks after 30 s by default; agentloop's controller
    runs code without that limit (its own tools are each bounded instead). Shown in real time
    with a short limit: given 0.3 s, smolagents kills a 1 s wait; by default the same wait
    completes. (That the default really is `None`, not 30, is checked just below.)"""

    async def slow_report() -> str:
        await asyncio.sleep(1)  # the point of the test: real time passing inside model code
        return "report"

    code = """
task = submit_task("tool", "slow_report", {})
outcome = wait_for_tasks([task], max_wait_time=120)
final_answer(get_task_results([task])[task])
"""
    limited = create_async_agent(
        tools=[slow_report],
        model=ScriptedModel([code, 'final_answer("killed")']),
        executor_kwargs={"timeout_seconds": 0.3},  # a float works: a future's result timeout
    )
    unlimited = create_async_agent(tools=[slow_report], model=ScriptedModel([code]))
    async with limited, unlimited:
        assert await limited.arun("wait long") == "killed"
        assert await unlimited.arun("wait long") == "report"


def test_controller_executor_has_no_30_second_limit_but_keeps_user_settings() -> None:
    agent = create_async_agent(
        model=ScriptedModel([]), executor_kwargs={"max_print_outputs_length": 99}
    )

    async def build() -> object:
        async with agent.task_manager.scope() as scope:
            return agent._new_run(scope)._built()

    controller = asyncio.run(build())
    executor = controller.python_executor  # type: ignore[attr-defined]
    assert executor.timeout_seconds is None
    assert executor.max_print_outputs_length == 99


async def test_contextvar_reaches_tools_through_model_code() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="lost")

    def probe() -> str:
        return marker.get()

    agent = create_async_agent(tools=[probe], model=ScriptedModel([PROBE_CODE]))
    async with agent:
        marker.set("kept")
        assert await agent.arun("x") == "kept"


PROBE_CODE = """
t = submit_task("tool", "probe", {})
wait_for_tasks([t])
final_answer(get_task_results([t])[t])
"""

OPENINFERENCE_CHECK = textwrap.dedent(
    """
    import asyncio, contextvars
    from opentelemetry.sdk.trace import TracerProvider
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    SmolagentsInstrumentor().instrument(tracer_provider=TracerProvider())
    from agentloop import create_async_agent
    from agentloop.testing import ScriptedModel

    marker = contextvars.ContextVar("marker", default="lost")

    def probe() -> str:
        return marker.get()

    code = "t = submit_task('tool', 'probe', {})\\nwait_for_tasks([t])\\n" + (
        "final_answer(get_task_results([t])[t])"
    )

    async def main():
        agent = create_async_agent(tools=[probe], model=ScriptedModel([code]))
        async with agent:
            marker.set("kept")
            print(await agent.arun("x"))

    asyncio.run(main())
    """
)


def test_contextvar_reaches_tools_with_openinference_instrumentation() -> None:
    pytest.importorskip("openinference.instrumentation.smolagents")
    out = subprocess.run(
        [sys.executable, "-c", OPENINFERENCE_CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "kept"


async def test_a_spurious_ast_recursion_error_of_cpython_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython 3.11's parser can fail good code when threads parse at once (a shared
    recursion counter); the controller's executor parses again instead of showing the model
    an error for code it did not get wrong. Any other SystemError still surfaces."""
    import ast

    real_parse = ast.parse
    failures = iter([True, True, False])

    def flaky_parse(source: Any, *args: Any, **kwargs: Any) -> Any:
        in_controller = threading.current_thread().name.startswith("agentloop-controller")
        if in_controller and source == "final_answer(6)" and next(failures, False):
            raise SystemError("AST constructor recursion depth mismatch (before=42, after=38)")
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", flaky_parse)
    agent = create_async_agent(model=ScriptedModel(["final_answer(6)"]))
    async with agent:
        assert await agent.arun("go") == 6
