"""A typed run's final answer as plain data, read without running any code the model chose.

The model's code makes the value it passes to `final_answer`, and it may define classes with
any dunder method: an `__eq__` that lies, a `__repr__` that hangs, a `__reduce__` that runs a
command, a `dict` subclass whose `items` returns something else. Validation therefore never
sees the model's objects: `plain_answer` walks the value by its *exact* type, calling only
builtin code on it, and rebuilds it from `None`, bools, ints, floats, strings, lists and dicts
(plus the stdlib values pydantic validates as they are: bytes, dates and times, `Decimal`,
`UUID`). Subclasses of `str`, `int` and `float` (smolagents' `AgentText`) are read through the
base type's own method, so an override never runs.

An object of a class the output type itself names (its pydantic models, dataclasses and
enums, found by walking its annotations: the application's classes, e.g. an `Invoice` a tool
returned) is read as its fields, then walked again. Anything else is refused with a message
that names its type (never its repr). The walk is bounded like the journal's (`MAX_DEPTH`,
`MAX_VALUES`, `MAX_SIZE`): a typed answer must fit in a journal anyway.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import typing
import uuid
import zoneinfo
from typing import Any

from .._text import truncate
from ..journal._codec import MAX_DEPTH, MAX_SIZE, MAX_VALUES

__all__ = ["AnswerProblem", "answer_classes", "plain_answer"]

_MAX_CLASSES = 200
"""Most classes collected from one output type's annotations."""
_MAX_INT_BITS = 4000
"""Ints beyond this many bits are refused (their text is beyond Python's int-to-str limit)."""
_KEPT = frozenset(
    {bytes, datetime.date, datetime.datetime, datetime.time, datetime.timedelta}
    | {decimal.Decimal, uuid.UUID}
)
"""Immutable stdlib values pydantic validates as they are (exact types only)."""


class AnswerProblem(Exception):
    """A final answer that is not of the output type; `str()` is what the model is told."""


def answer_classes(output_type: Any) -> frozenset[type]:
    """The pydantic models, dataclasses and enums `output_type` names, at any depth: the
    classes whose objects `plain_answer` reads as their fields."""
    found: set[type] = set()
    pending = [output_type]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_CLASSES:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        pending.extend(typing.get_args(current))
        origin = typing.get_origin(current)
        if origin is not None:
            pending.append(origin)
        if origin is not None or not isinstance(current, type):  # `list[int]` is no class
            continue
        has_fields = _is_model(current) or dataclasses.is_dataclass(current)
        if has_fields or issubclass(current, enum.Enum):
            found.add(current)
        if has_fields or typing.is_typeddict(current):
            try:
                pending.extend(typing.get_type_hints(current).values())
            except Exception:  # an unresolved forward reference: its fields' classes are missed
                continue
    return frozenset(found)


def plain_answer(value: Any, classes: frozenset[type]) -> Any:
    """`value` rebuilt from plain data (see the module docstring); raises `AnswerProblem`."""
    return _Walk(classes).value(value, 0)


def _is_model(cls: type) -> bool:
    """Whether `cls` is a pydantic model (without importing pydantic for the question)."""
    return any(
        base.__name__ == "BaseModel" and base.__module__.startswith("pydantic")
        for base in cls.__mro__
    )


class _Walk:
    def __init__(self, classes: frozenset[type]) -> None:
        self._classes = classes
        self._values = 0
        self._chars = 0

    def value(self, value: Any, depth: int) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise AnswerProblem(f"the answer holds more than {MAX_VALUES:,} values; too big.")
        cls = type(value)
        if cls is str:
            return self._text(value)
        if value is None or cls is bool or cls is float:
            return value
        if cls is int:
            return self._int(value)
        if issubclass(cls, str):  # `AgentText`: the plain text, through str's own method
            return self._text(str.__str__(value))
        if issubclass(cls, int) and not issubclass(cls, enum.Enum):
            return self._int(int.__int__(value))
        if issubclass(cls, float) and not issubclass(cls, enum.Enum):
            return float.__float__(value)
        if depth >= MAX_DEPTH:
            raise AnswerProblem(f"the answer is nested more than {MAX_DEPTH} levels deep.")
        if cls is dict:
            return {self._key(k): self.value(item, depth + 1) for k, item in dict.items(value)}
        if cls is list or cls is tuple or cls is set or cls is frozenset:
            return [self.value(item, depth + 1) for item in value]
        if cls in _KEPT:
            return self._kept(value)
        if cls in self._classes:
            return self.value(_fields(value), depth + 1)
        raise AnswerProblem(
            f"the answer holds a `{_type_name(cls)}` object, which is not plain data: pass "
            "dicts, lists, strings, numbers, booleans and None (or objects of the output "
            "type's own classes) instead."
        )

    def _text(self, text: str) -> str:
        self._chars += len(text)
        if self._chars > MAX_SIZE:
            raise AnswerProblem(f"the answer holds more than {MAX_SIZE:,} characters; too big.")
        return text

    def _int(self, number: int) -> int:
        if number.bit_length() > _MAX_INT_BITS:
            raise AnswerProblem(f"the answer holds an int of more than {_MAX_INT_BITS} bits.")
        return number

    def _key(self, key: Any) -> Any:
        cls = type(key)
        if cls is str:
            return self._text(key)
        if key is None or cls is bool or cls is int or cls is float:
            return key
        if issubclass(cls, str):
            return self._text(str.__str__(key))
        raise AnswerProblem(
            f"the answer has a dict key of type `{_type_name(cls)}`; use strings (or numbers)."
        )

    def _kept(self, value: Any) -> Any:
        tzinfo = getattr(value, "tzinfo", None)  # the attribute of an exact stdlib type
        if tzinfo is not None and type(tzinfo) not in (datetime.timezone, zoneinfo.ZoneInfo):
            raise AnswerProblem(
                f"the answer holds a time zone of type `{_type_name(type(tzinfo))}`; use "
                "datetime.timezone, or an ISO 8601 string."
            )
        if type(value) is bytes:
            self._chars += len(value)
            if self._chars > MAX_SIZE:
                raise AnswerProblem(f"the answer holds more than {MAX_SIZE:,} bytes; too big.")
        return value


def _fields(value: Any) -> Any:
    """An object of one of the output type's own classes (application code), as data."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return type(value).model_dump(value)  # a pydantic model: its own serializer


def _type_name(cls: type) -> str:
    """A class's name for a message: `type.__name__` is always a str, but may be long."""
    return truncate(cls.__name__, 80)
