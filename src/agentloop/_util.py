"""Small helpers every layer shares: the "not given" sentinel, a safe context-variable reset,
and reporting public objects under their public module.

Kept apart from `_text` (bounded text) and `errors` because they are neither: each is a few
lines that two or more packages would otherwise write again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar, Token
from typing import Any, Final

__all__ = ["UNSET", "Unset", "report_as", "reset_context_var"]


class Unset:
    """The type of `UNSET`: a keyword argument that was not given (where `None` means
    something, such as "no limit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


def reset_context_var(var: ContextVar[Any], token: Token[Any]) -> None:
    """`var.reset(token)`, except where there is nothing to undo: a coroutine closed by the
    garbage collector (its loop gone) runs its `finally` in another context, where the reset
    would raise."""
    with contextlib.suppress(ValueError):
        var.reset(token)


def report_as(module: str, namespace: MutableMapping[str, Any], names: Iterable[str]) -> None:
    """Make the classes and functions `names` of `namespace` (a public face's globals) report
    `module` as theirs, so reprs, docs and pickles name the public path, not a private one.

    Only agentloop's own objects are touched, and only those not already reported under a
    shorter public path (`agentloop` wins over `agentloop.journal`)."""
    for name in names:
        obj = namespace.get(name)
        if not isinstance(obj, type) and not callable(obj):
            continue
        current = getattr(obj, "__module__", "")
        if not current.startswith("agentloop") or current == "agentloop":
            continue
        if getattr(obj, "__qualname__", name) != name:
            continue
        obj.__module__ = module
