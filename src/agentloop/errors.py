"""The one error tree of agentloop.

Every error a user or a model can cause is an `AgentloopError`. Messages follow one pattern: name
the thing in backticks, show what was received, and say what would be valid. The agent-facing
tools let these propagate, so smolagents shows the text to the model as an observation and the
model can correct itself on its next step.
"""

from __future__ import annotations

import difflib
import itertools
import reprlib
from collections.abc import Iterable

__all__ = [
    "AgentloopError",
    "DependencyFailedError",
    "DuplicateTaskIdError",
    "InvalidArgumentsError",
    "QuotaExceededError",
    "RegistryClosedError",
    "TaskFailedError",
    "UnknownTargetError",
    "UnknownTaskError",
    "WouldBlockLoopError",
    "clipped",
    "close_match_hint",
    "shown",
]


class AgentloopError(Exception):
    """Base class of every error agentloop raises on purpose."""


class UnknownTargetError(AgentloopError, LookupError):
    """A task named a tool or managed agent that is not registered."""


class UnknownTaskError(AgentloopError, LookupError):
    """A task id that does not exist in the caller's scope (or was evicted from history)."""


class DuplicateTaskIdError(AgentloopError, ValueError):
    """A caller-chosen task id is already taken in this scope."""


class InvalidArgumentsError(AgentloopError, ValueError):
    """Arguments that do not fit the target's declared inputs, or a malformed call."""


class QuotaExceededError(AgentloopError):
    """A configured bound (tasks per run, history, ...) was hit."""


class TaskFailedError(AgentloopError):
    """A task ended without a result (failed, cancelled or timed out)."""


class DependencyFailedError(TaskFailedError):
    """A task could not start because a task it depends on did not complete."""


class RegistryClosedError(AgentloopError, RuntimeError):
    """The registry, scope or event loop was closed; no new work is accepted."""


class WouldBlockLoopError(AgentloopError, RuntimeError):
    """A blocking call was made from the event loop's own thread, where it would deadlock."""


def close_match_hint(received: str, valid: Iterable[str]) -> str:
    """Return `" Did you mean `x`?"` for the closest valid name, or an empty string."""
    matches = difflib.get_close_matches(received, list(valid), n=1, cutoff=0.6)
    return f" Did you mean `{matches[0]}`?" if matches else ""


def clipped(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters, for names and ids quoted in backticks in messages."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` in at most `limit` characters, for messages; it never raises.

    Values named in messages come from callers and models, so they may be huge (a 20 MB string,
    a 5000-digit int whose repr Python refuses), deeply nested, or have a `__repr__` that
    raises. Only as much of a value is rendered as the limit can show.
    """
    try:
        text = _Shown(limit).repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class _Shown(reprlib.Repr):
    """`reprlib` with its limits scaled to the room available, dicts kept in their order."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxlong = self.maxother = max(limit, 8)
        items = max(limit // 3, 4)
        self.maxdict = self.maxlist = self.maxtuple = items
        self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = items

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than `sys.get_int_max_str_digits()` allows
            return f"<int of {x.bit_length()} bits>"

    def repr_dict(self, x: dict[object, object], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(item, level - 1)}"
            for key, item in itertools.islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"
