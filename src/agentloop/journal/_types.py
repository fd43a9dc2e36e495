"""The types a journal may store beyond plain data: agentloop's own, and those the app registers.

A journal stores values as tagged JSON (`_codec`), and a value of a class is stored only when
that exact class is in a `JournalTypes` registry: agentloop's task value types, plus the
dataclasses, pydantic models and enums an application passes as
`create_async_agent(..., journal_types=[Invoice])`. The stored form names the class, and
decoding looks the name up here and nowhere else: a journal can name only classes the
application chose, and builds them with their own constructor (app code), never with code a
value brought along (which is what unpickling does).

Names are `module.qualname`, read when the type is registered; agentloop's own types have fixed
names (`agentloop.TaskFailure`), since their `__module__` is rewritten by the public face.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentsError
from ..tasks import (
    TaskEvent,
    TaskEventKind,
    TaskFailure,
    TaskInfo,
    TaskProgress,
    TaskStatus,
    TaskType,
    WaitOutcome,
)

__all__ = ["BUILTIN_TYPES", "JournalTypes", "TypeKind", "registry", "type_name"]


class TypeKind(enum.Enum):
    """How a registered type is taken apart and built again."""

    DATACLASS = "dataclass"
    """Its init fields, read by name; built again by calling the class."""
    PYDANTIC = "pydantic"
    """Its fields (by alias) and extras; built again by `Model.model_validate`."""
    ENUM = "enum"
    """Its member's value; built again by `Enum(value)`."""


@dataclass(frozen=True, slots=True)
class JournalTypes:
    """Exact type → (name, kind), and name → type: the classes a journal may store and build."""

    kinds: Mapping[type, tuple[str, TypeKind]] = field(default_factory=dict)
    by_name: Mapping[str, type] = field(default_factory=dict)

    def with_types(self, types: Iterable[object]) -> JournalTypes:
        """This registry plus `types` (each checked: a dataclass, a pydantic model or an enum,
        named uniquely), or `InvalidArgumentsError` naming the one that is not."""
        if isinstance(types, (str, type)):
            raise InvalidArgumentsError(
                f"`journal_types` must be a list of classes, received {_named(types)}; "
                f"write [{_named(types)}] for one."
            )
        try:
            chosen = list(types)
        except TypeError:
            raise InvalidArgumentsError(
                f"`journal_types` must be a list of classes, received {_named(types)}."
            ) from None
        kinds = dict(self.kinds)
        by_name = dict(self.by_name)
        for cls in chosen:
            kind = _kind_of(cls)
            assert isinstance(cls, type)  # _kind_of refused anything else
            name = type_name(cls)
            known = by_name.get(name)
            if known is not None and known is not cls:
                raise InvalidArgumentsError(
                    f"`journal_types` has two classes named `{name}`; a journal names a stored "
                    "value's class by `module.qualname`, so each must be unique (define the "
                    "class at module level, not inside a function)."
                )
            kinds[cls] = (name, kind)
            by_name[name] = cls
        return JournalTypes(kinds, by_name)

    def names(self) -> list[str]:
        return sorted(self.by_name)


def type_name(cls: type) -> str:
    """`module.qualname`, how a journal names a registered class (app code: its own names)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _kind_of(cls: object) -> TypeKind:
    if isinstance(cls, type):
        if issubclass(cls, enum.Enum):
            return TypeKind.ENUM
        pydantic = sys.modules.get("pydantic")  # a model class means pydantic is imported
        if pydantic is not None and issubclass(cls, pydantic.BaseModel):
            return TypeKind.PYDANTIC
        if dataclasses.is_dataclass(cls):
            return TypeKind.DATACLASS
    raise InvalidArgumentsError(
        f"`journal_types` accepts dataclasses, pydantic models and enums, received "
        f"{_named(cls)}. Register the classes your tools and answers return, or return plain "
        "data (dicts, lists, strings, numbers)."
    )


def _named(value: object) -> str:
    if isinstance(value, type):
        return f"the class `{type_name(value)}`"
    if isinstance(value, str):
        return f"the string {value!r:.60}"
    return f"a {type(value).__name__}"


_BUILTINS: dict[type, str] = {
    TaskStatus: "agentloop.TaskStatus",
    TaskType: "agentloop.TaskType",
    TaskEventKind: "agentloop.TaskEventKind",
    TaskFailure: "agentloop.TaskFailure",
    TaskInfo: "agentloop.TaskInfo",
    TaskProgress: "agentloop.TaskProgress",
    TaskEvent: "agentloop.TaskEvent",
    WaitOutcome: "agentloop.WaitOutcome",
}

BUILTIN_TYPES = JournalTypes(
    {cls: (name, _kind_of(cls)) for cls, name in _BUILTINS.items()},
    {name: cls for cls, name in _BUILTINS.items()},
)
"""agentloop's own value types that model code can return (a dict of `get_task_results`
holds `TaskFailure`s, `wait_for_tasks` returns a `WaitOutcome`): always known."""


def registry(types: Iterable[Any] = ()) -> JournalTypes:
    """agentloop's types plus the application's (checked)."""
    return BUILTIN_TYPES.with_types(types)
