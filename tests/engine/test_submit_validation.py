"""Bad input at submit gets an actionable AgentloopError and leaves no half-made task."""

from __future__ import annotations

import pytest

from agentloop import (
    DuplicateTaskIdError,
    InvalidArgumentsError,
    TaskRegistry,
    UnknownTargetError,
    UnknownTaskError,
)


async def test_misspelled_target_suggests_the_close_match(registry: TaskRegistry) -> None:
    with pytest.raises(UnknownTargetError, match=r"unknown tool `mull`. Did you mean `mul`\?"):
        await registry.submit("tool", "mull", {"a": 1, "b": 2})
    assert registry.get_statistics()["total_submitted"] == 0


async def test_unknown_target_lists_what_is_available(registry: TaskRegistry) -> None:
    with pytest.raises(UnknownTargetError, match="Available tools: `add`, `mul`"):
        await registry.submit("tool", "zzz")


async def test_tool_submitted_as_managed_agent_says_which_type_to_use(
    registry: TaskRegistry,
) -> None:
    with pytest.raises(UnknownTargetError, match="task_type='tool'"):
        await registry.submit("managed_agent", "add", {"a": 1})


async def test_bad_task_type_is_refused(registry: TaskRegistry) -> None:
    with pytest.raises(
        InvalidArgumentsError, match=r"unknown task_type 'tools'\. Did you mean `tool`"
    ):
        await registry.submit("tools", "add", {"a": 1})


async def test_unknown_argument_name_suggests_the_close_match(registry: TaskRegistry) -> None:
    with pytest.raises(InvalidArgumentsError, match=r"no input `aa`. Did you mean `a`\?"):
        await registry.submit("tool", "mul", {"aa": 1, "b": 2})


async def test_missing_required_argument(registry: TaskRegistry) -> None:
    with pytest.raises(InvalidArgumentsError, match=r"missing required input\(s\) `b`"):
        await registry.submit("tool", "mul", {"a": 1})


async def test_obviously_wrong_type(registry: TaskRegistry) -> None:
    with pytest.raises(InvalidArgumentsError, match="expects integer, received string `'3'`"):
        await registry.submit("tool", "mul", {"a": "3", "b": 2})


async def test_arguments_must_be_a_mapping(registry: TaskRegistry) -> None:
    with pytest.raises(InvalidArgumentsError, match="must be a dict"):
        await registry.submit("tool", "mul", [1, 2])  # type: ignore[arg-type]


async def test_optional_argument_may_be_omitted(registry: TaskRegistry) -> None:
    task_id = await registry.submit("tool", "add", {"a": 41})
    await registry.wait(task_id)
    assert await registry.result(task_id) == 42


async def test_final_answer_is_never_a_target(registry: TaskRegistry) -> None:
    with pytest.raises(InvalidArgumentsError, match="`final_answer` cannot be a task target"):
        await registry.submit("tool", "final_answer", {"answer": 1})


def test_final_answer_cannot_be_registered() -> None:
    def final_answer(answer: str) -> str:
        return answer

    with pytest.raises(InvalidArgumentsError, match="cannot be a task target"):
        TaskRegistry(tools=[final_answer])


def test_duplicate_target_names_are_refused() -> None:
    def tool() -> None: ...

    with pytest.raises(InvalidArgumentsError, match="already registered"):
        TaskRegistry(tools={"a": tool, "b": tool}).register_tools({"a": tool})


async def test_duplicate_task_id_is_refused_and_the_first_task_kept(
    registry: TaskRegistry,
) -> None:
    await registry.submit("tool", "add", {"a": 1}, task_id="one")
    with pytest.raises(DuplicateTaskIdError, match="task id `one` is already used"):
        await registry.submit("tool", "mul", {"a": 1, "b": 2}, task_id="one")
    await registry.wait("one")
    assert await registry.result("one") == 2


async def test_unknown_id_is_named_in_the_error(registry: TaskRegistry) -> None:
    with pytest.raises(UnknownTaskError, match="no task `nope`"):
        registry.get("nope")
    with pytest.raises(UnknownTaskError, match="no task `nope`"):
        await registry.wait(["nope"])


async def test_unknown_dependency_is_refused_before_anything_is_created(
    registry: TaskRegistry,
) -> None:
    with pytest.raises(UnknownTaskError, match="no task `ghost`"):
        await registry.submit("tool", "add", {"a": 1}, depends_on=["ghost"])
    assert registry.list() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "`timeout` must be a positive number"),
        ({"timeout": "soon"}, "`timeout` must be a positive number"),
        ({"retries": -1}, "`retries` must be an integer from 0 to 10"),
        ({"retries": 1.5}, "`retries` must be an integer"),
        ({"task_id": ""}, "`task_id` must be a non-empty string"),
        ({"task_id": "x" * 500}, "the limit is 128"),
    ],
)
async def test_bad_options_are_refused(
    registry: TaskRegistry, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentsError, match=message):
        await registry.submit("tool", "add", {"a": 1}, **kwargs)  # type: ignore[arg-type]
    assert registry.get_statistics()["total_submitted"] == 0


async def test_arguments_are_deep_copied_at_submit(gate) -> None:  # type: ignore[no-untyped-def]
    seen: list[list[int]] = []

    def record(items: list[int]) -> None:
        gate.pass_through()
        seen.append(list(items))

    async with TaskRegistry(tools=[record]) as registry:
        items = [1, 2]
        task_id = await registry.submit("tool", "record", {"items": items})
        items.append(3)
        await gate.wait_entered(1)
        gate.open()
        await registry.wait(task_id)
    assert seen == [[1, 2]]


async def test_uncopyable_arguments_are_refused_clearly() -> None:
    import threading

    def use(lock: object) -> None: ...

    async with TaskRegistry(tools=[use]) as registry:
        with pytest.raises(InvalidArgumentsError, match="cannot be copied"):
            await registry.submit("tool", "use", {"lock": threading.Lock()})


async def test_smolagents_tool_inputs_are_validated() -> None:
    from smolagents import Tool

    class Greeter(Tool):  # type: ignore[misc]
        name = "greet"
        description = "Greets someone."
        inputs = {"who": {"type": "string", "description": "name"}}
        output_type = "string"

        def forward(self, who: str) -> str:
            return f"hello {who}"

    async with TaskRegistry(tools=[Greeter()]) as registry:
        with pytest.raises(InvalidArgumentsError, match="`greet` input `who` expects string"):
            await registry.submit("tool", "greet", {"who": 3})
        task_id = await registry.submit("tool", "greet", {"who": "ada"})
        await registry.wait(task_id)
        assert await registry.result(task_id) == "hello ada"
