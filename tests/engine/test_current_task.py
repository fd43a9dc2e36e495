"""`agentloop.current_task()`: a tool reads its task's identity and idempotency key, in async
tools on the loop and in sync tools in worker threads; retries keep the key and count on;
outside a task it explains itself."""

from __future__ import annotations

import threading

import pytest

from agentloop import (
    AgentloopError,
    Limits,
    TaskContext,
    TaskRegistry,
    create_async_agent,
    current_task,
)
from agentloop.core._effects import idempotency_key
from agentloop.testing import ScriptedModel, code_reply


async def test_async_and_sync_tools_read_their_task() -> None:
    seen: dict[str, tuple[TaskContext, int]] = {}

    async def on_loop() -> None:
        seen["on_loop"] = (current_task(), threading.get_ident())

    def in_thread() -> None:
        seen["in_thread"] = (current_task(), threading.get_ident())

    async with TaskRegistry(tools=[on_loop, in_thread]) as registry, registry.scope("r1") as run:
        ids = [await run.submit("tool", "on_loop"), await run.submit("tool", "in_thread")]
        assert (await run.wait(ids)).all_completed
    loop_task, loop_thread = seen["on_loop"]
    thread_task, worker_thread = seen["in_thread"]
    assert worker_thread != loop_thread  # the sync tool really ran in a worker thread
    assert (loop_task.run_id, loop_task.task_id, loop_task.target) == ("r1", ids[0], "on_loop")
    assert (thread_task.task_id, thread_task.target, thread_task.attempt) == (
        ids[1],
        "in_thread",
        1,
    )
    assert loop_task.idempotency_key != thread_task.idempotency_key
    assert thread_task.idempotency_key.startswith("al1-") and len(thread_task.idempotency_key) == 36


async def test_retries_keep_the_key_and_count_attempts() -> None:
    seen: list[TaskContext] = []

    def flaky() -> str:
        seen.append(current_task())
        if len(seen) < 3:
            raise ConnectionError("try again")
        return "ok"

    limits = Limits(retry_backoff=0.001, retry_backoff_max=0.001)
    async with TaskRegistry(tools=[flaky], limits=limits) as registry:
        task_id = await registry.submit("tool", "flaky", retries=2)
        await registry.wait(task_id)
        assert await registry.result(task_id) == "ok"
    assert [t.attempt for t in seen] == [1, 2, 3]
    assert len({t.idempotency_key for t in seen}) == 1


async def test_runs_without_a_journal_never_share_keys() -> None:
    """Two agents' first runs are both `run_1`, and the same task id in each: a service that
    deduplicates on the key must still see two different charges."""
    keys: list[str] = []

    async def charge() -> str:
        keys.append(current_task().idempotency_key)
        return "charged"

    code = code_reply("final_answer(charge())")
    for _ in range(2):
        agent = create_async_agent(tools=[charge], model=ScriptedModel([code]))
        async with agent:
            result = await agent.arun("charge", return_full_result=True)
        assert result.run_id == "run_1"
    assert len(set(keys)) == 2


def test_outside_a_task_it_says_where_it_works() -> None:
    with pytest.raises(AgentloopError, match=r"outside a task: call it from a tool"):
        current_task()


async def test_a_thread_the_tool_starts_itself_does_not_see_it() -> None:
    """Documented: a plain thread gets a fresh context (copy it with `copy_context()`)."""
    outcome: list[object] = []

    def tool() -> None:
        def inner() -> None:
            try:
                outcome.append(current_task())
            except AgentloopError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=inner)
        thread.start()
        thread.join()

    async with TaskRegistry(tools=[tool]) as registry:
        await registry.wait(await registry.submit("tool", "tool"))
    assert isinstance(outcome[0], AgentloopError)


def test_the_key_format_is_documented() -> None:
    """`al1-` + the first 32 hex digits of SHA-256 over run id, NUL, task id."""
    import hashlib

    expected = "al1-" + hashlib.sha256(b"order-42\0charge_1").hexdigest()[:32]
    assert idempotency_key("order-42", "charge_1") == expected


async def test_an_async_agent_as_managed_agent_gives_its_tools_their_own_task() -> None:
    """docs/durability.md: the managed agent's tools see their task in the inner run."""
    seen: list[TaskContext] = []

    async def probe() -> str:
        """Probe."""
        seen.append(current_task())
        return "probed"

    inner = create_async_agent(
        tools=[probe],
        model=ScriptedModel([code_reply("final_answer(probe())")]),
        name="inner",
        description="An inner agent.",
    )
    delegate = 'tid = submit_task("managed_agent", "inner", {"task": "go"})\nwait_for_tasks([tid])'
    outer = create_async_agent(
        managed_agents=[inner],
        model=ScriptedModel(
            [code_reply(f"{delegate}\nfinal_answer(get_task_results([tid])[tid])")]
        ),
    )
    async with outer, inner:
        assert await outer.arun("delegate") == "probed"
    assert (seen[0].task_id, seen[0].target) == ("probe_1", "probe")
