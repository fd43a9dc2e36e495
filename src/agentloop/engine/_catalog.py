"""The registered targets of one engine, and lookups that explain what went wrong."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from .._text import close_match_hint, shown, truncate
from ..core._targets import Target
from ..errors import InvalidArgumentsError, UnknownTargetError
from ..tasks import TaskType

__all__ = ["TargetCatalog"]

_NO_TARGETS: dict[str, Target] = {}


class TargetCatalog:
    """Tools and managed agents by type and name; names are unique across both."""

    def __init__(self) -> None:
        self._by_type: dict[TaskType, dict[str, Target]] = {t: {} for t in TaskType}

    def add(self, targets: Iterable[Target]) -> None:
        """Register `targets`, all or none (a clash refuses the whole batch)."""
        targets = list(targets)
        # a source's target does not count: it is renamed when its source is resolved again
        taken = self.local_names()
        for target in targets:
            if target.name in taken:
                raise InvalidArgumentsError(
                    f"a target named `{target.name}` is already registered; names must be unique "
                    "across tools and managed agents."
                )
            taken.add(target.name)
        for target in targets:
            self._by_type[target.task_type][target.name] = target

    def replace_sourced(self, targets: Iterable[Target]) -> None:
        """Swap every target that came from a source (`Target.source`) for `targets`, all at
        once: threads looking targets up meanwhile see the old set or the new one, never a mix.
        The caller has resolved name clashes (`engine._sources`)."""
        by_type: dict[TaskType, dict[str, Target]] = {
            kind: {name: t for name, t in by_name.items() if t.source is None}
            for kind, by_name in self._by_type.items()
        }
        for target in targets:
            by_type[target.task_type][target.name] = target
        self._by_type = by_type

    def local_names(self) -> set[str]:
        """Names of the targets registered by hand (not from a source)."""
        return {
            name
            for by_name in self._by_type.values()
            for name, target in by_name.items()
            if target.source is None
        }

    def names(self, task_type: TaskType) -> list[str]:
        return list(self._by_type[task_type])

    def all(self, task_type: TaskType | None = None) -> list[Target]:
        kinds = [task_type] if task_type is not None else list(TaskType)
        return [target for kind in kinds for target in self._by_type[kind].values()]

    def named(self, name: str) -> Target | None:
        """The target called `name`, whatever its type."""
        for by_name in self._by_type.values():
            if name in by_name:
                return by_name[name]
        return None

    def lookup(self, task_type: TaskType | str, name: str) -> Target:
        """The target, or an error that says what exists (and the closest name)."""
        if isinstance(task_type, str) and isinstance(name, str):  # the fast path
            found = self._by_type.get(task_type, _NO_TARGETS).get(name)  # type: ignore[call-overload]
            if found is not None:
                return found  # type: ignore[no-any-return]
        kind = checked_task_type(task_type)
        if not isinstance(name, str):
            raise InvalidArgumentsError(
                f"`target_name` must be a string, received {type(name).__name__} {shown(name)}."
            )
        target = self._by_type[kind].get(name)
        if target is not None:
            return target
        if name == "final_answer":
            raise InvalidArgumentsError(
                "`final_answer` cannot be a task target: call `final_answer(...)` directly."
            )
        other = TaskType.MANAGED_AGENT if kind is TaskType.TOOL else TaskType.TOOL
        kind_text, other_text = kind.value.replace("_", " "), other.value.replace("_", " ")
        if name in self._by_type[other]:
            raise UnknownTargetError(
                f"`{name}` is a {other_text}, not a {kind_text}: "
                f"submit it with task_type='{other.value}'."
            )
        available = list(self._by_type[kind])
        listing = ", ".join(f"`{n}`" for n in available) or "none"
        raise UnknownTargetError(
            f"unknown {kind_text} `{truncate(name, 80)}`.{close_match_hint(name, available)} "
            f"Available {kind_text}s: {listing}."
        )


def checked_task_type(task_type: TaskType | str) -> TaskType:
    if isinstance(task_type, TaskType):
        return task_type
    hint = ""
    if isinstance(task_type, str):  # checked first: the enum lookup would hash any value
        with contextlib.suppress(ValueError):
            return TaskType(task_type)
        hint = close_match_hint(task_type, [t.value for t in TaskType])
    raise InvalidArgumentsError(
        f"unknown task_type {shown(task_type)}.{hint} "
        "Use 'tool' for a registered tool or 'managed_agent' for a managed agent."
    )
