"""Copy-on-submit: the shallow copy that stands in for `deepcopy` gives exactly what it gave.

`plain_copy` skips the deep copy for a plain dict of plain scalars. Each value below would be
handled wrongly by a looser test (`isinstance`, a set of types, any `Mapping`): a subclass of
`str` or `int` may define `__deepcopy__` or `__reduce_ex__`, a key may be such a subclass too,
a dict subclass may answer its items differently, and a nested list must not be shared with
the code that submitted it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentloop import TaskRegistry
from agentloop.engine._copy_on_submit import plain_copy


async def keep(value: Any = None, **extra: Any) -> Any:
    """Return what the task received.

    Args:
        value: anything.
    """
    return value if not extra else {"value": value, **extra}


class CopiedStr(str):
    """A `str` whose deep copy is marked: a copy that skipped `deepcopy` keeps the original."""

    def __deepcopy__(self, memo: dict[int, Any]) -> CopiedStr:
        return CopiedStr(f"copied:{self}")


class ReducedInt(int):
    """An `int` whose copy (through `__reduce_ex__`) is another number."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (int, (int(self) + 1000,))


class LoudKey(str):
    """A key whose deep copy is marked."""

    def __deepcopy__(self, memo: dict[int, Any]) -> LoudKey:
        return LoudKey(f"copied_{self}")


async def _received(arguments: Any) -> Any:
    async with TaskRegistry(tools=[keep]) as registry:
        task_id = await registry.submit("tool", "keep", arguments)
        await registry.wait(task_id)
        return await registry.result(task_id)


async def test_a_str_subclass_is_deep_copied_through_its_own_deepcopy() -> None:
    received = await _received({"value": CopiedStr("x")})
    assert received == "copied:x"
    assert type(received) is CopiedStr


async def test_an_int_subclass_is_copied_through_its_reduce() -> None:
    assert await _received({"value": ReducedInt(1)}) == 1001


async def test_a_str_subclass_key_is_deep_copied_too() -> None:
    received = await _received({LoudKey("value"): 1})  # deepcopy renames the key
    assert received == {"value": None, "copied_value": 1}


async def test_a_dict_subclass_is_deep_copied_as_before() -> None:
    class Shouting(dict[str, Any]):
        pass

    arguments = Shouting(value="x")
    assert plain_copy(arguments) is None
    received = await _received(arguments)
    assert received == "x"


async def test_a_mutation_after_submit_changes_nothing_the_task_sees() -> None:
    async with TaskRegistry(tools=[keep]) as registry:
        flat = {"value": "before"}
        nested = {"value": ["before"]}
        flat_id = await registry.submit("tool", "keep", flat)
        nested_id = await registry.submit("tool", "keep", nested)
        flat["value"] = "after"
        nested["value"].append("after")
        await registry.wait([flat_id, nested_id])
        assert await registry.result(flat_id) == "before"
        assert await registry.result(nested_id) == ["before"]


@pytest.mark.parametrize(
    "value",
    ["text", "", 0, -7, 2**80, 1.5, float("inf"), True, False, None, b"\x00bytes"],
)
def test_plain_scalars_are_copied_shallowly_and_equal_the_deep_copy(value: Any) -> None:
    arguments = {"value": value, "other": "x"}
    copied = plain_copy(arguments)
    assert copied is not None and copied is not arguments
    deep = copy.deepcopy(arguments)
    assert list(copied) == list(deep)
    assert all(copied[key] is deep[key] for key in deep)  # deepcopy returns scalars themselves


@pytest.mark.parametrize(
    "arguments",
    [
        {"value": CopiedStr("x")},
        {"value": ReducedInt(1)},
        {LoudKey("value"): 1},
        {"value": [1, 2]},
        {"value": (1, 2)},
        {"value": {"$result_of": "t1"}},
        {"value": object()},
        {1: "a non-string key"},
    ],
    ids=lambda arguments: "-".join(type(part).__name__ for part in next(iter(arguments.items()))),
)
def test_anything_but_plain_scalars_takes_the_deep_copy(arguments: dict[Any, Any]) -> None:
    assert plain_copy(arguments) is None


def test_the_empty_dict_is_a_fresh_dict() -> None:
    arguments: dict[str, Any] = {}
    copied = plain_copy(arguments)
    assert copied == {} and copied is not arguments
