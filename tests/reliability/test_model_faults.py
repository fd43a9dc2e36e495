"""Faults in the model: it raises, times out, is rate-limited, cut off, or answers nonsense.

The litellm cases go through the real client stack (litellm → openai SDK → HTTP) against a
local OpenAI-compatible stub (`tests/cli/llm_stub.py`) or a server that cuts connections. In
every case the run ends (with an answer or an error), its tasks are cancelled and settled, its
controller thread ends, and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agentloop import AgentloopError, AsyncAgent, create_async_agent
from agentloop.testing import FunctionModel, ScriptedModel, turn

from ..cli.llm_stub import LLMStub
from .figures import Figures
from .helpers import CuttingServer, assert_all_final, uvicorn_server, within

MODEL_ID = "openai/gpt-4o-mini"

STEP_1 = """Thought: arm the fault, then start work.
<code>
wait_for_tasks([submit_task("tool", "arm", {"mode": MODE})])
quick = [submit_task("tool", "double", {"n": i}) for i in range(3)]
stuck = [submit_task("tool", "forever", {}) for _ in range(2)]
wait_for_tasks(quick)
print("started")
</code>"""
STEP_2 = """Thought: done.
<code>
final_answer(sorted(get_task_results(quick).values()))
</code>"""


async def double(n: int) -> int:
    return 2 * n


async def forever() -> None:
    await asyncio.Event().wait()


def litellm_model(base_url: str, **options: Any) -> Any:
    import litellm
    from smolagents import LiteLLMModel

    litellm.suppress_debug_info = True
    # retry=False: smolagents' own retry sleeps minutes on a 429; the openai client retries.
    return LiteLLMModel(
        model_id=MODEL_ID, api_key="sk-test", api_base=base_url, retry=False, **options
    )


async def assert_run_settled(agent: AsyncAgent, *, cancelled: int) -> dict[str, Any]:
    stats = assert_all_final(agent.task_manager)
    assert stats["total_cancelled"] == cancelled, stats
    assert stats["open_scopes"] == 0
    assert await agent._controller_threads.settle(10) == 0
    return stats


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with LLMStub() as server:
        yield server


# -- litellm through a local OpenAI-compatible stub ----------------------------------------------


@pytest.mark.timeout(60)
async def test_a_429_mid_run_is_retried_and_the_run_answers(
    stub: LLMStub, figures: Figures
) -> None:
    def arm(mode: str) -> str:
        stub.fail_first(1, 429)
        return mode

    stub.add_replies(STEP_1.replace("MODE", "'429'"), STEP_2)
    agent = create_async_agent(
        tools=[arm, double, forever], model=litellm_model(stub.base_url, max_retries=2)
    )
    async with agent:
        answer = await within(30, agent.arun("go"))
        stats = await assert_run_settled(agent, cancelled=2)
    assert answer == [0, 2, 4]
    assert [r.status for r in stub.requests] == [200, 429, 200]
    figures.tasks(stats)
    figures.survived("model answered 429", 1)


@pytest.mark.timeout(60)
async def test_a_persistent_500_ends_the_run_and_cancels_its_tasks(
    stub: LLMStub, figures: Figures
) -> None:
    def arm(mode: str) -> str:
        stub.fail_first(10, 500)
        return mode

    stub.add_replies(STEP_1.replace("MODE", "'500'"), STEP_2)
    agent = create_async_agent(
        tools=[arm, double, forever], model=litellm_model(stub.base_url, max_retries=1)
    )
    async with agent:
        with pytest.raises(Exception, match="InternalServerError"):
            await within(30, agent.arun("go"))
        stats = await assert_run_settled(agent, cancelled=2)
    assert [r.status for r in stub.requests] == [200, 500, 500]
    figures.tasks(stats)
    figures.survived("model answered 500", 2)


@pytest.mark.timeout(60)
async def test_a_slow_model_times_out_and_the_run_ends(stub: LLMStub, figures: Figures) -> None:
    def arm(mode: str) -> str:
        stub.delay = 1.0  # every later answer comes after the client's 0.3 s timeout
        return mode

    stub.add_replies(STEP_1.replace("MODE", "'slow'"), STEP_2)
    agent = create_async_agent(
        tools=[arm, double, forever],
        model=litellm_model(stub.base_url, max_retries=1, timeout=0.3),
    )
    async with agent:
        started = time.monotonic()
        with pytest.raises(Exception, match="Timeout"):
            await within(30, agent.arun("go"))
        seconds = time.monotonic() - started
        stats = await assert_run_settled(agent, cancelled=2)
    assert seconds < 10  # two 0.3 s attempts plus the client's short backoff
    figures.tasks(stats)
    figures.survived("model timed out", 2)


@pytest.mark.timeout(60)
async def test_cut_connections_end_the_run_with_an_error(figures: Figures) -> None:
    with CuttingServer() as server:
        agent = create_async_agent(
            tools=[double], model=litellm_model(server.base_url, max_retries=2, timeout=10)
        )
        async with agent:
            with pytest.raises(Exception, match="Connection"):
                await within(30, agent.arun("go"))
            stats = await assert_run_settled(agent, cancelled=0)
        assert server.connections == 3  # the first attempt and two retries, each cut
    figures.tasks(stats)
    figures.survived("model connection cut", server.connections)


@pytest.mark.timeout(60)
async def test_unparsable_answers_run_out_of_steps_and_end_cleanly(
    stub: LLMStub, figures: Figures
) -> None:
    nonsense = "I would rather not write code today."
    stub.add_replies(nonsense, nonsense, nonsense)  # two steps, then the final-answer call
    agent = create_async_agent(
        tools=[double], model=litellm_model(stub.base_url, max_retries=0), max_steps=2
    )
    async with agent:
        answer = await within(30, agent.arun("go"))
        stats = await assert_run_settled(agent, cancelled=0)
    assert answer == nonsense
    assert [r.status for r in stub.requests] == [200, 200, 200]
    figures.tasks(stats)
    figures.survived("model answered unparsable text", 2)


# -- a model or model code that raises -----------------------------------------------------------

START_WORK = 'stuck = [submit_task("tool", "forever", {}) for _ in range(3)]\nprint("started")'

RAISED: dict[str, tuple[Callable[[], BaseException], str]] = {  # fresh: no traceback is kept
    "RuntimeError": (lambda: RuntimeError("model backend down"), "model backend down"),
    "TimeoutError": (lambda: TimeoutError("model call timed out"), "model call timed out"),
    "KeyboardInterrupt": (KeyboardInterrupt, "controller raised KeyboardInterrupt"),
    "SystemExit": (lambda: SystemExit(2), "controller raised SystemExit: 2"),
}


@pytest.mark.parametrize("kind", list(RAISED))
async def test_a_model_that_raises_ends_only_its_run(kind: str, figures: Figures) -> None:
    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return START_WORK
        raise RAISED[kind][0]()

    agent = create_async_agent(tools=[forever], model=FunctionModel(reply))
    async with agent:
        with pytest.raises(Exception, match=RAISED[kind][1]) as raised:  # an Exception, always
            await within(10, agent.arun("go"))
        stats = await assert_run_settled(agent, cancelled=3)
        # the agent keeps serving
        agent.model = ScriptedModel(["final_answer('still here')"])
    assert not isinstance(raised.value, SystemExit | KeyboardInterrupt)
    async with create_async_agent(model=ScriptedModel(["final_answer(1)"])) as other:
        assert await other.arun("next") == 1
    figures.tasks(stats)
    figures.survived(f"model raised {kind}", 1)


class RunRequest(BaseModel):
    task: str


@pytest.mark.timeout(60)
@pytest.mark.parametrize("raised", ["SystemExit(3)", "KeyboardInterrupt()", "BaseException('x')"])
async def test_model_code_raising_system_exit_does_not_stop_the_server(
    raised: str, figures: Figures
) -> None:
    """`raise SystemExit` in model code ends that run with an error; the server keeps serving."""

    def reply(messages: list[object]) -> str:
        if "hostile" in str(messages[-1].content):  # type: ignore[attr-defined]
            return f"{START_WORK}\nraise {raised}"
        return "final_answer('fine')"

    agent = create_async_agent(tools=[forever], model=FunctionModel(reply))
    app = FastAPI()

    @app.post("/run")
    async def run(request: RunRequest) -> Any:
        try:
            return {"answer": await agent.arun(request.task)}
        except AgentloopError as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)

    async with agent, uvicorn_server(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            bad = await client.post("/run", json={"task": "hostile"})
            good = await client.post("/run", json={"task": "friendly"})
        stats = await assert_run_settled(agent, cancelled=3)
    assert bad.status_code == 500
    assert raised.split("(")[0] in bad.json()["error"]
    assert good.json() == {"answer": "fine"}
    figures.tasks(stats)
    figures.survived(f"model code raised {raised.split('(')[0]}", 1)


# -- the agent-level run with every tool fault at once -------------------------------------------


def test_one_run_survives_every_tool_fault_at_once(figures: Figures) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("broken __str__")

    def raises_value_error() -> None:
        raise ValueError("bad row")

    def raises_system_exit() -> None:
        raise SystemExit(4)

    async def raises_keyboard_interrupt() -> None:
        raise KeyboardInterrupt

    def raises_unprintable() -> None:
        raise Unprintable()

    async def hangs() -> None:
        await asyncio.Event().wait()

    kinds = [
        "raises_value_error",
        "raises_system_exit",
        "raises_keyboard_interrupt",
        "raises_unprintable",
    ]
    code = f"""
ids = [submit_task("tool", name, {{}}) for name in {kinds!r}]
ids.append(submit_task("tool", "hangs", {{}}, timeout=0.05))
outcome = wait_for_tasks(ids, max_wait_time=20)
statuses = [check_task(i).split()[2] for i in ids]
final_answer({{"statuses": statuses, "failures": [str(v) for v in get_task_results(ids).values()]}})
"""
    agent = create_async_agent(
        tools=[
            raises_value_error,
            raises_system_exit,
            raises_keyboard_interrupt,
            raises_unprintable,
            hangs,
        ],
        model=ScriptedModel([code]),
        max_steps=2,
    )
    try:
        answer = agent.run("survive")
        stats = assert_all_final(agent.task_manager)
    finally:
        agent.shutdown()
    assert answer["statuses"] == ["failed"] * 4 + ["timed_out"]
    assert "ValueError: bad row" in answer["failures"][0]
    assert "SystemExit: 4" in answer["failures"][1]
    assert "KeyboardInterrupt" in answer["failures"][2]
    assert "Unprintable" in answer["failures"][3]
    figures.tasks(stats)
    figures.survived("tool fault inside a run", 5)
