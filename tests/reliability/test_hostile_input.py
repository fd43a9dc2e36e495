"""Hostile or sloppy input: any value of any type, in any parameter of every agent-facing tool.

The tools are called the way model code calls them: from a plain thread, while the registry's
event loop runs in its own thread. Each call must give a correct result or raise an
`AgentloopError` whose message is bounded and says what is valid; never hang, never reach the
loop (it must stay responsive), never leave a task in a non-final state once the run ends.

The values are plain data (hypothesis' own strategies), extreme values (a 5000-digit int, NaN,
a 100 kB string, 10 000-deep nesting), and objects whose special methods raise (`__repr__`,
`__str__`, `__hash__`, `__eq__`, `__bool__`, `__len__`, `__iter__`, `__deepcopy__`).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentloop import (
    AgentloopError,
    Limits,
    QuotaExceededError,
    RunScope,
    TaskFailure,
    TaskRegistry,
    ToolSettings,
    WaitOutcome,
    create_async_agent,
)
from agentloop.agent.tools import task_tools
from agentloop.core._bridge import LoopBridge
from agentloop.testing import FunctionModel, last_observation, turn

from .figures import STRESS, Figures, Sizes
from .helpers import LoopThread, assert_all_final

pytestmark = pytest.mark.timeout(300 if STRESS else 60)

SETTINGS = ToolSettings(
    max_sleep=0.01, default_wait=0.02, max_wait=0.02, max_output_chars=500, call_timeout=5
)
MAX_MESSAGE = 1500
"""No error message a model reads is longer than this, whatever it was given."""
USEFUL = re.compile(
    r"must|expect|valid|available|did you mean|no task|unknown|limit|already used|cannot|"
    r"missing|has no input|closed|submit it with|use |choose|omit",
    re.IGNORECASE,
)
"""An error message says what was wrong and what would be valid."""
NO_HANG = 3.0
"""Seconds any single tool call may take (waits and sleeps are capped far below)."""


# -- hostile values ------------------------------------------------------------------------------


class Hostile:
    """Base for objects whose special methods raise."""

    def __init__(self, label: str) -> None:
        self.label = label


class BrokenRepr(Hostile):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


class BrokenStr(Hostile):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    __repr__ = __str__


class BrokenHash(Hostile):
    def __hash__(self) -> int:
        raise RuntimeError("__hash__ is broken")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ is broken")


class BrokenBool(Hostile):
    def __bool__(self) -> bool:
        raise RuntimeError("__bool__ is broken")

    def __len__(self) -> int:
        raise RuntimeError("__len__ is broken")


class BrokenIter(Hostile):
    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("__iter__ is broken")


class BrokenCopy(Hostile):
    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        raise RuntimeError("__deepcopy__ is broken")


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


EXTREMES: list[Any] = [
    10**5000,
    -(10**5000),
    2**63,
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    1e308,
    "",
    " ",
    "x" * 100_000,
    "\x00",
    "tool\n",
    "💥",
    b"tool",
    bytearray(b"ba"),
    complex(1, 2),
    Decimal("1.5"),
    Fraction(1, 3),
    object(),
    threading.Lock(),
    lambda: 1,
    range(3),
    type,
    Ellipsis,
    NotImplemented,
    nested_list(10_000),
    nested_dict(2_000),
    "[" * 100_000 + "]" * 100_000,
    '{"value": ' + "1" * 5000 + "}",
    '{"a": 1e999999}',
    {"$result_of": "known"},
    {"$result_of": 5},
    {"$result_of": "known", "$path": "nope"},
    {"$result_of": "nowhere"},
    BrokenRepr("r"),
    BrokenStr("s"),
    BrokenHash("h"),
    BrokenBool("b"),
    BrokenIter("i"),
    BrokenCopy("c"),
]


def extreme(index: int) -> Any:
    return EXTREMES[index]


KNOWN_IDS = ["known", "failed", "live", "live_2"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=10),
    # by index: hypothesis must not repr the values themselves when it describes the strategy
    st.sampled_from(range(len(EXTREMES))).map(extreme),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    ),
    max_leaves=6,
)
task_id = st.one_of(st.sampled_from(KNOWN_IDS), st.text(max_size=12), anything)
task_ids = st.one_of(st.lists(task_id, max_size=5), task_id)
json_text = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
).map(json.dumps)
arguments = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"value": anything, "a": anything, "b": anything, "text": anything}
    ),
    json_text,
    anything,
)
PLAUSIBLE_ARGUMENTS = {
    "echo": st.fixed_dictionaries({}, optional={"value": anything}),
    "add": st.fixed_dictionaries(
        {"a": st.one_of(st.integers(), anything)}, optional={"b": st.integers()}
    ),
    "shout": st.fixed_dictionaries({"text": st.one_of(st.text(max_size=20), anything)}),
    "hold": st.just({}),
    "boom": st.just({}),
}
plausible_submit = st.sampled_from(sorted(PLAUSIBLE_ARGUMENTS)).flatmap(
    lambda name: st.fixed_dictionaries(
        {
            "task_type": st.just("tool"),
            "target_name": st.just(name),
            "arguments": PLAUSIBLE_ARGUMENTS[name],
        },
        optional={
            "task_id": st.text(min_size=1, max_size=12),
            "depends_on": st.lists(st.sampled_from(KNOWN_IDS), max_size=2),
            "timeout": st.floats(0.01, 5),
            "retries": st.integers(0, 3),
        },
    )
)
"""Well-formed submissions (with any values inside the arguments), so that half the
examples exercise the path where a task really starts, runs and ends."""
hostile_submit = st.fixed_dictionaries(
    {
        "task_type": st.one_of(st.sampled_from(["tool", "managed_agent", "agent"]), anything),
        "target_name": st.one_of(
            st.sampled_from(["echo", "add", "shout", "hold", "boom", "ech0", "final_answer"]),
            anything,
        ),
    },
    optional={
        "arguments": arguments,
        "task_id": task_id,
        "depends_on": task_ids,
        "timeout": st.one_of(st.floats(0.01, 5), anything),
        "retries": st.one_of(st.integers(-2, 12), anything),
    },
)

HYPOTHESIS = settings(
    max_examples=Sizes.hypothesis_examples,
    deadline=None,
    derandomize=not STRESS,  # the default run is reproducible; stress explores further
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the run under test --------------------------------------------------------------------------


async def echo(value: Any = None) -> Any:
    return value


async def add(a: int, b: int = 1) -> int:
    return a + b


def shout(text: str) -> str:
    return text.upper()


async def hold() -> None:
    await asyncio.Event().wait()


def boom() -> None:
    raise ValueError("boom")


class Run:
    """One run's seven tools, called from this thread; the loop runs in another."""

    def __init__(self, server: LoopThread) -> None:
        self.server = server

        async def setup() -> tuple[TaskRegistry, RunScope, LoopBridge]:
            registry = TaskRegistry(
                tools=[echo, add, shout, hold, boom],
                limits=Limits(max_workers=2, max_tasks_per_scope=100_000, retry_backoff=0),
            )
            scope = registry.open_scope("hostile")
            await scope.submit("tool", "echo", {"value": 1}, task_id="known")
            await scope.submit("tool", "boom", task_id="failed")
            await scope.submit("tool", "hold", task_id="live")
            await scope.submit("tool", "hold", task_id="live_2")
            await scope.wait(["known", "failed"])
            return registry, scope, LoopBridge(asyncio.get_running_loop(), name="hostile run")

        self.registry, self.scope, self.bridge = server.call(setup)
        self.tools = {tool.name: tool for tool in task_tools(self.scope, self.bridge, SETTINGS)}
        self.calls = 0
        self.errors = 0

    def call(self, name: str, **kwargs: Any) -> tuple[bool, Any]:
        """Call one tool; returns (True, result) or (False, the AgentloopError's message)."""
        started = time.monotonic()
        refused: AgentloopError | None = None
        try:
            result = self.tools[name](**kwargs)
        except AgentloopError as exc:  # anything else fails the example, as it should
            refused, result = exc, None
        took = time.monotonic() - started
        assert took < NO_HANG, f"{name} took {took:.1f}s"
        if refused is None:
            outcome: tuple[bool, Any] = (True, result)
        else:
            message = str(refused)
            assert message, f"{type(refused).__name__} without a message"
            assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:300]}..."
            assert USEFUL.search(message), f"not actionable: {message}"
            self.errors += 1
            outcome = (False, message)
        self.calls += 1
        self.assert_healthy()
        return outcome

    def assert_healthy(self) -> None:
        assert self.server.responsive(), "the event loop stopped answering"
        # both read in one loop turn, so no task can finish in between
        stats, live = self.on_loop(
            lambda: (
                self.registry.get_statistics(),
                sum(not info.status.is_final for info in self.scope.list()),
            )
        )
        assert stats["pending"] + stats["running"] == live, stats
        assert stats["workers_in_use"] <= 2, stats

    def on_loop(self, function: Any) -> Any:
        async def run() -> Any:
            return function()

        return self.server.call(run, timeout=10)

    def info(self, task_id: str) -> Any:
        return self.on_loop(lambda: self.scope.get(task_id))

    def close(self) -> dict[str, Any]:
        async def close() -> dict[str, Any]:
            self.bridge.close()
            await self.registry.aclose()
            return assert_all_final(self.registry)

        return self.server.call(close)


@pytest.fixture
def run(figures: Figures) -> Iterator[Run]:
    with LoopThread() as server:
        harness = Run(server)
        try:
            yield harness
        finally:
            stats = harness.close()
            figures.tasks(stats)
            assert harness.server.responsive()


def record(figures: Figures, tool: str, ok: bool) -> None:
    figures.examples[tool] += 1
    figures.example_outcomes["answered" if ok else "refused with an AgentloopError"] += 1


def unique(ids: Any) -> list[Any]:
    if isinstance(ids, str):
        return [ids]
    return list(dict.fromkeys(ids))


# -- one property per tool -----------------------------------------------------------------------


@HYPOTHESIS
@given(st.one_of(plausible_submit, hostile_submit))
def test_submit_task_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("submit_task", **kwargs)
    record(figures, "submit_task", ok)
    if ok:
        assert isinstance(value, str)
        if isinstance(kwargs.get("task_id"), str):
            assert value == kwargs["task_id"]
        info = run.info(value)
        assert info.target_name == kwargs["target_name"]


@HYPOTHESIS
@given(
    st.fixed_dictionaries(
        {"task_ids": st.one_of(task_ids, anything)},
        optional={
            "max_wait_time": st.one_of(st.floats(0, 0.05), anything),
            "return_when": st.one_of(st.sampled_from(["all", "any", "ALL"]), anything),
        },
    )
)
def test_wait_for_tasks_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("wait_for_tasks", **kwargs)
    record(figures, "wait_for_tasks", ok)
    if ok:
        assert isinstance(value, WaitOutcome)
        seen = [*value.completed, *value.failed, *value.pending]
        assert sorted(seen) == sorted(unique(kwargs["task_ids"]))
        assert len(str(value)) <= 20_000


@HYPOTHESIS
@given(st.fixed_dictionaries({"task_ids": st.one_of(task_ids, anything)}))
def test_get_task_results_with_any_values(
    run: Run, figures: Figures, kwargs: dict[str, Any]
) -> None:
    ok, value = run.call("get_task_results", **kwargs)
    record(figures, "get_task_results", ok)
    if ok:
        assert isinstance(value, dict)
        assert list(value) == unique(kwargs["task_ids"])
        for key, result in value.items():
            info = run.info(key)
            if info.status == "completed":
                assert result is info.result
            else:
                assert isinstance(result, TaskFailure) and not result


@HYPOTHESIS
@given(
    st.fixed_dictionaries(
        {"task_id": task_id},
        optional={"format": st.one_of(st.sampled_from(["summary", "detailed", "full"]), anything)},
    )
)
def test_check_task_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("check_task", **kwargs)
    record(figures, "check_task", ok)
    if ok:
        assert isinstance(value, str)
        assert kwargs["task_id"] in value
        assert len(value) <= 3 * SETTINGS.max_output_chars


@HYPOTHESIS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "status_filter": st.one_of(
                st.sampled_from(["pending", "running", "completed", "failed", "done"]), anything
            ),
            "limit": st.one_of(st.integers(-3, 50), anything),
        },
    )
)
def test_list_tasks_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("list_tasks", **kwargs)
    record(figures, "list_tasks", ok)
    if ok:
        assert isinstance(value, str)
        assert len(value) <= SETTINGS.max_output_chars + 100


@HYPOTHESIS
@given(st.fixed_dictionaries({"task_id": task_id}))
def test_cancel_task_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("cancel_task", **kwargs)
    record(figures, "cancel_task", ok)
    if ok:
        assert isinstance(value, str)
        assert run.info(kwargs["task_id"]).status.is_final


@HYPOTHESIS
@given(
    st.fixed_dictionaries(
        {"seconds": st.one_of(st.floats(0, 0.05), anything)},
        optional={"reason": st.one_of(st.text(max_size=20), anything)},
    )
)
def test_sleep_with_any_values(run: Run, figures: Figures, kwargs: dict[str, Any]) -> None:
    ok, value = run.call("sleep", **kwargs)
    record(figures, "sleep", ok)
    if ok:
        assert isinstance(value, str) and value.startswith("slept ")
        assert len(value) <= SETTINGS.max_output_chars + 100


# -- a runaway model ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_model_code_that_submits_forever_hits_the_quota_and_the_run_ends(
    figures: Figures,
) -> None:
    async def noop() -> None:
        return None

    observations: list[str] = []

    def reply(messages: list[object]) -> str:
        if turn(messages):
            observations.append(last_observation(messages))
        return 'while True:\n    submit_task("tool", "noop", {})'  # every step, never learning

    quota = Sizes.runaway_quota
    agent = create_async_agent(
        tools=[noop],
        model=FunctionModel(reply),
        limits=Limits(max_tasks_per_scope=quota),
        max_steps=3,
    )
    async with agent:
        answer = await asyncio.wait_for(agent.arun("loop forever"), 60)
        stats = assert_all_final(agent.task_manager)
    assert "submit_task" in str(answer)  # the last reply, returned as the final answer
    assert stats["total_submitted"] == quota  # the first step used up the whole quota
    *steps, last = observations  # what each code step ran into, then the final-answer prompt
    assert len(steps) == 2 and "provide an answer" in last
    assert all(QuotaExceededError.__name__ in step for step in steps)
    assert all(f"reached its limit of {quota} tasks" in step for step in steps)
    figures.tasks(stats)
    figures.survived("runaway submit loop hit the quota", 3)
