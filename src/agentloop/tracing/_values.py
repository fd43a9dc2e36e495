"""Task arguments, results and run answers as span attribute values: bounded, and never raising.

Phoenix and other OpenInference viewers list a span by its `input.value` / `output.value` (with
`input.mime_type` / `output.mime_type` saying how to show them). The values come from model
code and tools, so they may be huge, deeply nested or have a `__repr__` that raises; and task
spans end on the event loop, where no unbounded string work may run. So a value is rendered
with a character budget: plain JSON data (str, numbers, bools, None, lists, tuples and dicts with
str keys) as JSON, cut where the budget runs out; anything else through `errors.shown`
(bounded `reprlib`, safe for raising reprs) as text. A plain string is shown as text, unquoted.
"""

from __future__ import annotations

import json
from typing import Any, Final

from .._text import shown

__all__ = ["JSON", "TEXT", "VALUE_LIMIT", "span_value"]

VALUE_LIMIT: Final = 4000
"""Characters kept of one input or output value (Phoenix shows the first lines in its lists)."""
TEXT: Final = "text/plain"
JSON: Final = "application/json"

_PLAIN_SCALARS = (int, float, bool, type(None))


class _OutOfRoom(Exception):
    """The budget ran out while rendering: the caller cuts the value here."""


def span_value(value: Any, limit: int = VALUE_LIMIT) -> tuple[str, str]:
    """`(text, mime type)` for `value`, in at most about `limit` characters."""
    if isinstance(value, str):
        return _cut(value, limit), TEXT
    if isinstance(value, (*_PLAIN_SCALARS, list, tuple, dict)):
        parts: list[str] = []
        try:
            if _encode(value, parts, [limit]):
                return "".join(parts), JSON
        except _OutOfRoom:
            return _cut("".join(parts), limit), JSON
        except Exception:  # an odd number type, a recursive structure: fall back to text
            pass
    return shown(value, limit), TEXT


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def _encode(value: Any, parts: list[str], room: list[int]) -> bool:
    """Append `value` as JSON to `parts`; False when it is not plain JSON data."""
    if isinstance(value, str):
        piece = json.dumps(value[: room[0] + 1], ensure_ascii=False)
    elif isinstance(value, _PLAIN_SCALARS):
        if type(value) not in _PLAIN_SCALARS:  # an int subclass with its own formatting
            return False
        piece = json.dumps(value)
    elif isinstance(value, (list, tuple)):
        _put("[", parts, room)
        for i, item in enumerate(value):
            if i:
                _put(", ", parts, room)
            if not _encode(item, parts, room):
                return False
        piece = "]"
    elif isinstance(value, dict):
        _put("{", parts, room)
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                return False
            if i:
                _put(", ", parts, room)
            _put(json.dumps(key[:200], ensure_ascii=False) + ": ", parts, room)
            if not _encode(item, parts, room):
                return False
        piece = "}"
    else:
        return False
    _put(piece, parts, room)
    return True


def _put(piece: str, parts: list[str], room: list[int]) -> None:
    room[0] -= len(piece)
    if room[0] < 0:
        parts.append(piece[: len(piece) + room[0]])
        raise _OutOfRoom
    parts.append(piece)
