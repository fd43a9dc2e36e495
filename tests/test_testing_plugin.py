"""The public test doubles and the pytest plugin behave as documented."""

from __future__ import annotations

import pytest

from agentloop import TaskRegistry
from agentloop.testing import FunctionModel, ScriptedModel, assert_no_leaks, code_reply

pytest_plugins = ["pytester"]


def test_leak_check_fixture_fails_a_test_that_leaves_a_thread_running(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import threading

        stop = threading.Event()

        def test_leaks(agentloop_leak_check):
            threading.Thread(target=stop.wait, name="leaky-thread", daemon=True).start()

        def test_clean(agentloop_leak_check):
            pass

        def teardown_module():
            stop.set()
        """
    )
    # the plugin loads through its entry point; the leak is reported at teardown
    result = pytester.runpytest(
        "-q",
        "-o",
        "agentloop_thread_grace=0.2",
        "-o",
        "asyncio_default_fixture_loop_scope=function",  # as a user's config would say
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test left 1 thread(s) running: leaky-thread*"])


async def test_assert_no_leaks_reports_running_tasks() -> None:
    import asyncio

    async def forever() -> None:
        await asyncio.Event().wait()

    async with TaskRegistry(tools=[forever]) as registry:
        task_id = await registry.submit("tool", "forever")
        with pytest.raises(AssertionError, match="left tasks behind: 1 pending, 0 running"):
            assert_no_leaks(registry)
        await registry.cancel(task_id)
        assert_no_leaks(registry)


def test_scripted_model_counts_turns_per_conversation_and_names_the_missing_step() -> None:
    from smolagents.models import ChatMessage, MessageRole

    model = ScriptedModel(["x = 1", "final_answer(x)"])
    first = model.generate([ChatMessage(role=MessageRole.USER, content="task")])
    assert first.content == code_reply("x = 1")
    history = [
        ChatMessage(role=MessageRole.USER, content="task"),
        ChatMessage(role=MessageRole.ASSISTANT, content="..."),
        ChatMessage(role=MessageRole.ASSISTANT, content="..."),
    ]
    with pytest.raises(RuntimeError, match="has 2 step\\(s\\) but the agent asked for step 3"):
        model.generate(history)
    assert model.calls == 2


def test_function_model_passes_the_messages() -> None:
    from smolagents.models import ChatMessage, MessageRole

    model = FunctionModel(lambda messages: f"final_answer({len(messages)})")
    reply = model.generate([ChatMessage(role=MessageRole.USER, content="task")])
    assert "final_answer(1)" in str(reply.content)
