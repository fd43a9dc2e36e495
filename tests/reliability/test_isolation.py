"""Isolation: runs and sessions cannot touch each other's tasks; managed-agent copies share no
state; a per-target limit holds under a flood (abandoned threads included)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import pytest
from smolagents import CodeAgent, tool

from agentloop import Limits, TaskRegistry, TaskStatus, UnknownTaskError, create_async_agent
from agentloop.testing import FunctionModel, task_text, turn

from .figures import STRESS, Figures, Sizes
from .helpers import Concurrency, ThreadSampler, assert_all_final, registry_probe, within

PROBE = """
me = TAG
mine = [submit_task("tool", "tagged", {"tag": me}) for _ in range(3)]
shared = submit_task("tool", "tagged", {"tag": me}, task_id="shared")
held = submit_task("tool", "hold", {"tag": me}, task_id="hold_" + me)  # `hold` is the tool
wait_for_tasks(mine + [shared])
errors = []
for other in OTHERS:
    theirs = "hold_" + other
    for attempt in ["check", "results", "wait", "cancel"]:
        try:
            if attempt == "check":
                check_task(theirs)
            elif attempt == "results":
                get_task_results([theirs])
            elif attempt == "wait":
                wait_for_tasks([theirs], max_wait_time=0)
            else:
                cancel_task(theirs)
            errors.append("REACHED " + theirs)
        except Exception as e:
            errors.append(str(e)[:60])
guessed = get_task_results(["tagged_1", "tagged_2", "tagged_3", "shared"])
listing = list_tasks(limit=100)
wait_for_tasks([submit_task("tool", "attempted", {})])
wait_for_tasks([held], max_wait_time=60)
final_answer({"errors": errors, "guessed": guessed, "listing": listing,
              "hold": str(get_task_results([held])[held])})
"""


@pytest.mark.timeout(120)
async def test_runs_and_sessions_cannot_reach_each_others_tasks_even_by_guessing(
    figures: Figures,
) -> None:
    participants = Sizes.isolation_runs
    tags = [f"r{i}" for i in range(participants - 1)] + ["s0"]  # the last one is a session
    attempted = 0
    release = asyncio.Event()

    async def tagged(tag: str) -> str:
        return tag

    async def hold(tag: str) -> str:
        await release.wait()  # until every participant has tried to reach the others'
        return f"held {tag}"

    async def record_attempt() -> int:
        nonlocal attempted
        attempted += 1
        if attempted == participants:
            release.set()
        return attempted

    def reply(messages: list[object]) -> str:
        me = task_text(messages).split()[-1]
        others = [t for t in tags if t != me]
        return f"TAG = {me!r}\nOTHERS = {others!r}\n" + PROBE

    agent = create_async_agent(
        tools={"tagged": tagged, "hold": hold, "attempted": record_attempt},
        model=FunctionModel(reply),
        max_workers=2,
        max_concurrent_runs=participants,  # all must be in at once: holds wait for everyone
        max_steps=2,
    )
    async with agent:
        async with agent.session() as session:
            answers = await within(
                90,
                asyncio.gather(
                    *(agent.arun(f"probe {tag}") for tag in tags[:-1]),
                    session.arun("probe s0"),
                ),
            )
            # the registry's own scope sees none of them either
            for tag in tags:
                with pytest.raises(UnknownTaskError):
                    agent.task_manager.get(f"hold_{tag}")
        stats = assert_all_final(agent.task_manager)

    attempts = 0
    for tag, answer in zip(tags, answers, strict=True):
        others = [t for t in tags if t != tag]
        assert len(answer["errors"]) == 4 * len(others)
        expected_targets = [o for o in others for _ in range(4)]
        for error, other in zip(answer["errors"], expected_targets, strict=True):
            assert error.startswith(f"no task `hold_{other}` in this run"), error
        attempts += len(answer["errors"])
        # the ids every run has are its own tasks, never another run's
        assert list(answer["guessed"].values()) == [tag] * 4
        assert all(f"'{other}'" not in answer["listing"] for other in others)
        assert answer["hold"] == f"held {tag}"  # nobody else could cancel it
    assert stats["total_cancelled"] == 0
    figures.tasks(stats)
    figures.survived("cross-run access attempts refused", attempts)
    figures.measured("isolation", participants=participants, cross_run_attempts=attempts)


# -- managed-agent copies ------------------------------------------------------------------------


def copy_name(messages: list[object]) -> str:
    """The copy's name, from the task smolagents wraps in its managed-agent prompt."""
    found = re.search(r"COPY-(\w+)", task_text(messages))
    assert found is not None
    return found.group(1)


def make_expert(barrier: threading.Barrier, seen: list[Any]) -> CodeAgent:
    """A smolagents CodeAgent whose copies meet at a barrier (so they overlap) and report what
    state they started with."""

    @tool
    def meet() -> str:
        """Wait until every copy is inside at the same time.

        Returns:
            str: a greeting.
        """
        barrier.wait(timeout=30)
        return "met"

    def remember(step: Any, agent: Any = None) -> None:
        seen.append(agent)

    def reply(messages: list[object]) -> str:
        if turn(messages) == 0:
            return (
                "notes = []\n"
                "try:\n"
                "    notes.append(mine)\n"
                "except Exception as e:\n"
                "    notes.append('fresh')\n"
                f"mine = {copy_name(messages)!r}\n"
                "met = meet()\n"
                "print(mine)"
            )
        return "final_answer({'before': notes, 'mine': mine, 'met': met})"

    return CodeAgent(
        tools=[meet],
        model=FunctionModel(reply),
        name="expert",
        description="Answers with what it remembers.",
        max_steps=3,
        verbosity_level=-1,
        step_callbacks=[remember],
    )


@pytest.mark.timeout(120)
async def test_managed_agent_copies_share_no_memory_or_state(figures: Figures) -> None:
    copies = Sizes.copies
    seen: list[Any] = []
    original = make_expert(threading.Barrier(copies), seen)
    original.state["owner"] = "original"
    async with TaskRegistry(managed_agents=[original], max_workers=copies) as registry:
        for round_ in range(2):  # the second round proves nothing was carried over
            ids = [
                await registry.submit("managed_agent", "expert", {"task": f"COPY-{round_}{i}"})
                for i in range(copies)
            ]
            outcome = await within(60, registry.wait(ids))
            assert outcome.all_completed, outcome
            answers = list((await registry.results(ids)).values())
            for i, answer in enumerate(answers):  # smolagents wraps a managed agent's answer
                assert f"{{'before': ['fresh'], 'mine': '{round_}{i}', 'met': 'met'}}" in answer
        stats = assert_all_final(registry)

    runs = {id(agent): agent for agent in seen}.values()
    assert len(runs) == 2 * copies and original not in runs
    for attribute in ("memory", "state", "python_executor", "monitor", "tools", "step_callbacks"):
        objects = [getattr(agent, attribute) for agent in runs] + [getattr(original, attribute)]
        assert len({id(o) for o in objects}) == len(objects), f"shared {attribute}"
    executor_states = [agent.python_executor.state for agent in runs]
    assert len({id(s) for s in executor_states}) == len(executor_states)
    assert all("owner" not in agent.state for agent in runs)
    # the original never ran: no memory, no executor variables, its own state untouched
    assert original.memory.steps == [] and original.state == {"owner": "original"}
    assert "mine" not in original.python_executor.state
    figures.tasks(stats)
    figures.measured("isolation", managed_agent_copies=2 * copies)


# -- the per-target limit under a flood ----------------------------------------------------------


@pytest.mark.timeout(300 if STRESS else 60)
async def test_per_target_limit_holds_under_a_flood(figures: Figures) -> None:
    in_db = Concurrency()
    in_sync = Concurrency()
    fetching = Concurrency()
    limits = Limits(
        max_workers=4, target_limits={"query_db": 2, "fetch": 3}, retry_backoff=0, thread_grace=10
    )

    def query_db(n: int) -> int:
        with in_db.inside_call(), in_sync.inside_call():
            time.sleep(0.004 if n % 5 == 0 else 0.0005)  # every fifth outlives its timeout
            return n

    def other(n: int) -> int:
        with in_sync.inside_call():
            time.sleep(0.0005)
            return n

    async def fetch(n: int) -> int:
        with fetching.inside_call():
            await asyncio.sleep(0.001)
            return n

    total = Sizes.flood_tasks
    registry = TaskRegistry(tools=[query_db, other, fetch], limits=limits)
    async with registry:
        with ThreadSampler(probe=registry_probe(registry)) as sampler:
            ids = []
            for i in range(total):
                name = ("query_db", "other", "fetch")[i % 3]
                timeout = 0.002 if name == "query_db" and i % 5 == 0 else None
                ids.append(await registry.submit("tool", name, {"n": i}, timeout=timeout))
            cancelled = [await registry.cancel(t) for t in ids[7::50]]
            await within(240, registry.wait(ids))
            assert await registry._engine.runner.settle(10) == 0
        infos = [registry.get(t) for t in ids]
        stats = assert_all_final(registry)

    assert in_db.peak == 2  # reached, never passed: abandoned (timed-out) threads included
    assert fetching.peak <= 3
    assert in_sync.peak <= 4
    assert sampler.peaks["workers_in_use"] <= 4
    assert sampler.peak_workers <= 4
    assert any(info.status is TaskStatus.TIMED_OUT for info in infos)
    assert all(c.status.is_final for c in cancelled)
    figures.tasks(stats)
    figures.bounds(
        "per-target flood",
        sync=(in_sync.peak, limits.max_workers),
        threads=(sampler.peak_workers, limits.max_workers),
    )
    figures.measured(
        "per-target flood",
        tasks=total,
        query_db_peak=in_db.peak,
        query_db_limit=2,
        fetch_peak=fetching.peak,
        fetch_limit=3,
        timed_out=stats["total_timed_out"],
        cancelled=stats["total_cancelled"],
    )
