"""Copy-on-submit: a task gets a copy of its arguments, so code that mutates a dict or a list
after submitting it (model code does) changes nothing the task sees.

`copy.deepcopy` is the rule. This module only skips it where it would return the very same
values: a plain `dict` whose keys are plain `str` and whose values are plain immutable scalars
(`str`, `int`, `float`, `bool`, `bytes`, `None`), which is most of what model code submits.
`deepcopy` treats those values as atomic and returns each one itself, so a shallow copy of the
dict is exactly its result, at a sixth of the cost (0.4 us against 2.3 us for `{"a": 5, "b": 1}`;
a sequential task pays it once per submit).

The test is by exact type and identity (`type(value) is int`), never `isinstance` and never a
lookup in a set or tuple: a subclass of `int` or `str` may define `__deepcopy__`, `__reduce__` or
`__eq__`, and a class whose metaclass defines `__eq__` and `__hash__` could pass for `int` in a
`in` test. Iterating an exact `dict` runs no user code; a `Mapping` subclass (whose `keys`,
`__iter__` or `__getitem__` may be anything) always takes the deep copy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain_copy"]

_NoneType = type(None)


def plain_copy(arguments: Any) -> dict[str, Any] | None:
    """A copy of `arguments` equal to its deep copy, when a shallow one is that: an exact
    `dict` of `str` keys and immutable scalar values. None when the deep copy is needed."""
    if type(arguments) is not dict:
        return None
    for key, value in arguments.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if not (
            kind is str
            or kind is int
            or kind is float
            or kind is bool
            or kind is _NoneType
            or kind is bytes
        ):
            return None
    return dict(arguments)
