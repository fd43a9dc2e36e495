"""References to an upstream task's result inside another task's arguments.

A pipeline (clean -> analyse -> chart) should run without a model round trip between steps, so
an argument may stand for the result of an earlier task. The syntax is a dict whose only keys
are `"$result_of"` (a task id) and, optionally, `"$path"` (keys or indexes into that result)::

    submit_task("tool", "analyze", {"data": {"$result_of": clean_id}})
    submit_task("tool", "chart", {"stats": {"$result_of": a_id, "$path": ["summary"]}})

A `$`-prefixed key is not something a model writes by accident, and the dict is JSON, so it
survives arguments given as a JSON string. `result_of(task_id, *path)` builds one. A task whose
arguments hold references depends on those tasks automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._text import shown
from ..errors import InvalidArgumentsError

__all__ = ["REFERENCE_KEY", "find_references", "is_reference", "resolve_references", "result_of"]

REFERENCE_KEY = "$result_of"
PATH_KEY = "$path"


def result_of(task_id: str, *path: str | int) -> dict[str, Any]:
    """Build a reference to the result of `task_id`, optionally to an item inside it."""
    reference: dict[str, Any] = {REFERENCE_KEY: task_id}
    if path:
        reference[PATH_KEY] = list(path)
    return reference


def is_reference(value: Any) -> bool:
    return type(value) is dict and REFERENCE_KEY in value


def find_references(value: Any) -> Iterator[str]:
    """Yield the task ids referenced anywhere inside `value` (dicts, lists and tuples)."""
    if is_reference(value):
        _check_shape(value)
        yield value[REFERENCE_KEY]
    elif isinstance(value, dict):
        for item in value.values():
            yield from find_references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from find_references(item)


def resolve_references(value: Any, result: Callable[[str], Any]) -> Any:
    """Return `value` with every reference replaced by the referenced result (or item of it)."""
    if is_reference(value):
        resolved = result(value[REFERENCE_KEY])
        for step in value.get(PATH_KEY, ()):
            try:
                resolved = resolved[step]
            except Exception as exc:  # any result type: its `__getitem__` may raise anything
                raise InvalidArgumentsError(
                    f"reference to `{value[REFERENCE_KEY]}` has path {shown(value[PATH_KEY])}, "
                    f"but step {shown(step)} does not exist in the result ({shown(exc, 200)})."
                ) from exc
        return resolved
    if isinstance(value, dict):
        return {key: resolve_references(item, result) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item, result) for item in value]
    if isinstance(value, tuple):
        return tuple(resolve_references(item, result) for item in value)
    return value


def _check_shape(reference: dict[str, Any]) -> None:
    extra = set(reference) - {REFERENCE_KEY, PATH_KEY}
    task_id = reference[REFERENCE_KEY]
    path = reference.get(PATH_KEY, [])
    if extra or not isinstance(task_id, str) or not isinstance(path, (list, tuple)):
        raise InvalidArgumentsError(
            f"malformed result reference {shown(reference)}: expected "
            '{"$result_of": "<task id>"} with an optional "$path": [key, ...].'
        )
