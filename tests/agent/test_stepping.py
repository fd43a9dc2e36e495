"""How a run's steps are driven: its code in a controller thread, its model awaited on the
loop. A run waiting for an async model holds no thread; a run waiting for its turn under
`max_concurrent_runs` holds none either, and turns come in order; a run cancelled while it
waits for its model ends there, cleanly; which path a model takes is decided by its class."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from typing import Any

import pytest
from smolagents.models import ChatMessage, LiteLLMModel, MessageRole
from smolagents.monitoring import TokenUsage

from agentloop import create_async_agent
from agentloop.agent._model_calls import awaited_reply
from agentloop.testing import FunctionModel, ScriptedModel, code_reply, task_text, turn


async def within(seconds: float, awaitable: Any) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


class GatedModel:
    """An async model whose replies wait for `gate`; it counts the calls waiting on it."""

    model_id = "test/gated"

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.gate = asyncio.Event()
        self.waiting = 0
        self.arrived = asyncio.Condition()
        self.cancelled = 0
        self.asked: list[str] = []
        """The tasks of the runs that called it, in the order they did."""

    def generate(self, messages: Any, **kwargs: Any) -> ChatMessage:
        raise AssertionError("an async model is awaited, never called in a thread")

    async def agenerate(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.asked.append(task_text(messages))
        async with self.arrived:
            self.waiting += 1
            self.arrived.notify_all()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.waiting -= 1
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=code_reply(self.reply(messages)),
            token_usage=TokenUsage(input_tokens=1, output_tokens=1),
        )

    async def until_waiting(self, count: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: self.waiting >= count)


def answer_with_task_text(messages: Any) -> str:
    return f"final_answer({task_text(messages).split()[-1]!r})"


async def test_runs_waiting_for_an_async_model_hold_no_controller_thread() -> None:
    model = GatedModel(answer_with_task_text)
    agent = create_async_agent(model=model, max_controller_threads=2)
    runs = 50
    async with agent:
        pending = [asyncio.ensure_future(agent.arun(f"answer {i}")) for i in range(runs)]
        await within(30, model.until_waiting(runs))  # 50 runs in a model call, at 2 threads
        assert agent._limiters.threads.borrowed_tokens == 0
        assert agent._controller_threads.live == 0
        model.gate.set()
        answers = await within(30, asyncio.gather(*pending))
    assert answers == [str(i) for i in range(runs)]  # each run got its own reply


async def test_runs_over_the_limit_wait_their_turn_in_order_without_a_thread() -> None:
    model = GatedModel(answer_with_task_text)
    # one thread: each admitted run's first step reaches the model in the order it was admitted
    agent = create_async_agent(model=model, max_concurrent_runs=2, max_controller_threads=1)
    async with agent:
        first = [asyncio.ensure_future(agent.arun(f"answer {i}")) for i in range(2)]
        await within(30, model.until_waiting(2))
        queued = []
        for i in range(2, 6):  # queued in this order, while both slots are held
            queued.append(asyncio.ensure_future(agent.arun(f"answer {i}")))
            await asyncio.sleep(0)
        assert agent._limiters.runs.borrowed_tokens == 2
        assert agent._controller_threads.live == 0  # 2 in the model, 4 queued: no thread
        model.gate.set()
        answers = await within(30, asyncio.gather(*first, *queued))
    assert answers == [str(i) for i in range(6)]
    assert [task.split()[-1] for task in model.asked[2:]] == ["2", "3", "4", "5"]  # FIFO


async def test_a_run_cancelled_while_it_waits_for_its_model_ends_there() -> None:
    model = GatedModel(answer_with_task_text)
    steps: list[Any] = []
    agent = create_async_agent(model=model, step_callbacks=[lambda step, agent: steps.append(step)])
    unraisable: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        async with agent:
            run = asyncio.ensure_future(agent.arun("answer 1"))
            await within(30, model.until_waiting(1))
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            assert model.cancelled == 1 and model.waiting == 0
            assert len(steps) == 1 and steps[0].model_output is None  # its step ended there
            assert agent._controller_threads.live == 0
            model.gate.set()
            assert await within(30, agent.arun("answer 2")) == "2"  # the agent goes on
        del run
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []  # no generator left suspended for the collector to close


async def test_a_run_whose_code_runs_when_it_is_cancelled_stops_at_its_next_model_call() -> None:
    entered, release = threading.Event(), threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(30)
        return "held"

    calls: list[int] = []

    def reply(messages: Any) -> str:
        calls.append(turn(messages))
        return "x = hold()" if turn(messages) == 0 else "final_answer(x)"

    agent = create_async_agent(model=FunctionModel(reply), tools=[hold])
    async with agent:
        run = asyncio.ensure_future(agent.arun("go"))
        await within(30, asyncio.to_thread(entered.wait, 30))
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        release.set()
        assert await agent._controller_threads.settle(10) == 0  # the thread ended the run
    assert calls == [0]  # and asked the model nothing more


class Subclassed(ScriptedModel):
    """Changes how replies are made in `generate`: its inherited `agenerate` would skip it."""

    def generate(self, messages: Any, **kwargs: Any) -> ChatMessage:
        reply = super().generate(messages, **kwargs)
        reply.content = code_reply("final_answer('from generate')")
        return reply


async def test_a_model_that_overrides_generate_is_called_through_it_in_a_thread() -> None:
    assert awaited_reply(ScriptedModel([])) is not None
    assert awaited_reply(Subclassed([])) is None
    agent = create_async_agent(model=Subclassed(["final_answer('from agenerate')"]))
    async with agent:
        assert await agent.arun("go") == "from generate"


def test_which_models_are_awaited() -> None:
    class OwnAsync:
        def generate(self, messages: Any, **kwargs: Any) -> Any: ...

        async def agenerate(self, messages: Any, **kwargs: Any) -> Any: ...

    class SyncOnly:
        def generate(self, messages: Any, **kwargs: Any) -> Any: ...

    class NotACoroutine(SyncOnly):
        def agenerate(self, messages: Any, **kwargs: Any) -> Any: ...

    class OverridesLiteLLM(LiteLLMModel):  # type: ignore[misc]
        def generate(self, *args: Any, **kwargs: Any) -> Any:
            return super().generate(*args, **kwargs)

    assert awaited_reply(OwnAsync()) is not None
    assert awaited_reply(SyncOnly()) is None
    assert awaited_reply(NotACoroutine()) is None
    assert awaited_reply(LiteLLMModel("openai/x", api_base="http://127.0.0.1:9")) is not None
    assert awaited_reply(OverridesLiteLLM("openai/x", api_base="http://127.0.0.1:9")) is None


async def test_max_steps_final_answer_is_a_model_call_from_the_thread_through_the_loop() -> None:
    """smolagents asks for a final answer after `max_steps` with a blocking `generate`: it
    reaches the model through the loop, charged and traced like every other call."""
    model = ScriptedModel(["x = 1", "x = 2", "'the answer after max steps'"])
    agent = create_async_agent(model=model, max_steps=2)
    async with agent:
        answer = await agent.arun("go")
        stats = agent.task_manager.get_statistics()
    assert "the answer after max steps" in str(answer)
    assert model.calls == 3 and stats["model_calls"] == 3


async def test_a_step_builds_no_display_at_verbosity_off_and_shows_it_when_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """smolagents renders each streamed delta as Markdown for a live display; agentloop's
    controller builds it only when a console renders it (0.15 ms a call otherwise)."""
    import rich.markdown
    from rich.console import Console
    from smolagents.monitoring import AgentLogger, LogLevel

    built: list[str] = []
    original = rich.markdown.Markdown.__init__

    def counting(self: Any, markup: str, *args: Any, **kwargs: Any) -> None:
        built.append(markup)
        original(self, markup, *args, **kwargs)

    monkeypatch.setattr(rich.markdown.Markdown, "__init__", counting)
    model = ScriptedModel(["x = 6 * 7", "final_answer(x)"])
    async with create_async_agent(model=model) as quiet:
        assert await quiet.arun("go") == 42
    assert built == []
    console = Console(record=True, width=100, force_terminal=False)
    logger = AgentLogger(level=LogLevel.INFO, console=console)
    async with create_async_agent(model=model, logger=logger) as shown:
        assert await shown.arun("go") == 42
    assert "x = 6 * 7" in console.export_text()  # the model's reply, rendered when shown


@pytest.mark.parametrize(
    "option", ["max_concurrent_runs", "max_controller_threads", "max_model_threads"]
)
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "8", None])
def test_the_run_and_thread_bounds_must_be_positive_ints(option: str, value: Any) -> None:
    from agentloop import InvalidArgumentsError

    with pytest.raises(InvalidArgumentsError, match=f"`{option}` must be a positive int"):
        create_async_agent(model=ScriptedModel([]), **{option: value})
