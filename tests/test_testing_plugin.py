"""The public test doubles and the pytest plugin behave as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentloop import TaskRegistry
from agentloop.testing import FunctionModel, ScriptedModel, assert_no_leaks, code_reply

pytest_plugins = ["pytester"]

TESTING_DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


def test_the_first_example_of_the_testing_doc_passes_verbatim_in_a_fresh_project(
    pytester: pytest.Pytester,
) -> None:
    """Copied into an empty project (no pytest configuration, its own process), as a newcomer
    does: it must pass as written, async test included."""
    first = re.search(r"```python\n(.*?)```", TESTING_DOC.read_text(), re.DOTALL)
    assert first is not None
    pytester.makepyfile(test_from_docs=first[1])

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_leak_check_fixture_fails_a_test_that_leaves_a_thread_running(
    pytester: pytest.Pytester,
) -> None:
    """A leak is the test's failure (FAILED, counted once), not a teardown ERROR beside a pass;
    threads a fixture stops in its own teardown are not leaks."""
    pytester.makepyfile(
        test_leaky="""
        import threading

        import pytest

        stop = threading.Event()  # ends the leaked threads after the run

        @pytest.fixture
        def worker():
            done = threading.Event()
            thread = threading.Thread(target=done.wait, name="fixture-thread", daemon=True)
            thread.start()
            yield done
            done.set()  # shut down by the fixture, after the test body
            thread.join()

        def leak(name):
            threading.Thread(target=stop.wait, name=name, daemon=True).start()

        def test_leaks(agentloop_leak_check):
            leak("leaky-thread")

        def test_clean(agentloop_leak_check):
            pass

        def test_fixture_thread(agentloop_leak_check, worker):
            assert not worker.is_set()

        def test_fails_and_leaks(agentloop_leak_check):
            leak("second-leak")
            assert False, "the test's own failure"

        def teardown_module():
            stop.set()
        """
    )
    # the plugin loads through its entry point
    result = pytester.runpytest(
        "-vv",  # the short summary's messages in full, whatever the terminal width
        "-ra",
        "-o",
        "agentloop_thread_grace=0.2",
        "-o",
        "asyncio_default_fixture_loop_scope=function",  # as a user's config would say
    )
    result.assert_outcomes(passed=2, failed=2, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "*::test_leaks FAILED*",
            "*::test_clean PASSED*",
            "*::test_fixture_thread PASSED*",
            "FAILED *::test_leaks - *test left 1 thread(s) running: leaky-thread",
            "FAILED *::test_fails_and_leaks - AssertionError: the test's own failure*",
            # a leak on top of a failure stays the usual teardown error
            "ERROR *::test_fails_and_leaks - *test left 1 thread(s) running: second-leak",
        ]
    )
    result.stdout.no_fnmatch_line("ERROR *::test_leaks*")


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
