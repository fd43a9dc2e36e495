"""Bounded text for messages and observations: every value shown to a model or a user is cut to
a limit before any work proportional to its size is done.

Values come from callers and models, so they may be huge (a 20 MB string, a 5000-digit int whose
repr Python refuses), deeply nested, or have a `__repr__` that raises. One cutting rule serves
every place that shows such a value (`truncate`, and `bounded` for text the model reads), one
bounded repr (`shown`), one for values rendered on the event loop (`preview`, which runs no user
`__repr__`), one for values sent as JSON (`json_value`, which runs no user code either and
gives strict JSON), one for exceptions (`describe`), and one did-you-mean hint
(`close_match_hint`).
This module is their only home.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import reprlib
from collections.abc import Iterable

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_HINT_CANDIDATES",
    "MAX_HINT_INPUT",
    "bounded",
    "close_match_hint",
    "describe",
    "json_value",
    "preview",
    "shown",
    "truncate",
]

MAX_HINT_INPUT = 200
"""Longest received name a did-you-mean lookup looks at (difflib is quadratic in length)."""
MAX_HINT_CANDIDATES = 500
"""Most valid names a did-you-mean lookup compares against (the most recent ones)."""
MAX_ERROR_CHARS = 4000
"""Longest exception message kept in a task's error (the model reads it in observations)."""


def truncate(text: str, limit: int, *, say_how_much: bool = False) -> str:
    """`text` cut to `limit` characters with a marker; with `say_how_much`, the marker says how
    many characters were left out (for observations the model reads)."""
    if len(text) <= limit:
        return text
    if say_how_much:
        return f"{text[:limit]}... [{len(text) - limit} more characters not shown]"
    return text[: max(limit - 3, 0)] + "..."


def bounded(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, saying how much was left out (for the model)."""
    return truncate(text, limit, say_how_much=True)


def describe(exc: BaseException) -> str:
    """`Type: message`, the form task errors take everywhere.

    It never raises and stays bounded: a target's exception may have a `__str__` that raises
    (which would otherwise leave its task running forever) or a message megabytes long."""
    try:
        text = str(exc)
    except Exception:
        text = "<its message could not be read: __str__ raised>"
    text = bounded(text, MAX_ERROR_CHARS)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` in at most `limit` characters, for messages; it never raises.

    Only as much of a value is rendered as the limit can show (reprlib), so a huge value costs
    no more than a small one. A user object's own `__repr__` still runs: callers on the event
    loop must not pass user objects here (render them in the calling thread instead).
    """
    try:
        text = _Shown(limit).repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return truncate(text, limit)


def close_match_hint(received: str, valid: Iterable[str]) -> str:
    """`" Did you mean `x`?"` for the closest valid name, or an empty string.

    Bounded: a received name longer than `MAX_HINT_INPUT` gets no hint, and at most the last
    `MAX_HINT_CANDIDATES` valid names are compared, so a hostile input costs microseconds."""
    if not isinstance(received, str) or len(received) > MAX_HINT_INPUT:
        return ""
    candidates = list(valid)[-MAX_HINT_CANDIDATES:]
    matches = difflib.get_close_matches(received, candidates, n=1, cutoff=0.6)
    return f" Did you mean `{truncate(matches[0], 80)}`?" if matches else ""


_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)


def preview(value: object, limit: int) -> str:
    """A bounded rendering for plain data; other objects show only their type, because a
    user object's `__repr__` must not run on the event loop."""
    if isinstance(value, _PLAIN) and _is_plain(value, 3):
        return shown(value, limit)
    return f"<{type(value).__name__} object>"


def json_value(
    value: object, *, text_limit: int | None = None, items: int | None = None, depth: int = 64
) -> object:
    """`value` as strict JSON data (`json.dumps(..., allow_nan=False)` accepts it): plain data
    keeps its shape, what JSON cannot hold becomes a string (`nan`, `inf`, a huge int's size,
    any other object's `<Type object>`). Only exact plain types are walked, so no user code
    runs (a model-defined `dict` subclass's `items` would); a `str`, `int` or `float` subclass
    is read through the base type's own method. `text_limit` cuts strings, `items`
    bounds each container (a final `"..."` entry says more were left out), `depth` nesting."""
    kind = type(value)
    if isinstance(value, str):  # subclasses too (smolagents' AgentText), by their text only
        text = str.__str__(value)  # the base method: a subclass's `__str__` does not run
        return text if text_limit is None else truncate(text, text_limit)
    if value is None or isinstance(value, bool):
        return bool.__bool__(value) if value is not None else None
    if isinstance(value, int):
        number = int.__int__(value)
        return number if number.bit_length() < 10_000 else f"<int of {number.bit_length()} bits>"
    if isinstance(value, float):
        real = float.__float__(value)
        return real if math.isfinite(real) else repr(real)
    if depth > 0 and kind is dict:
        assert isinstance(value, dict)
        out: dict[str, object] = {}
        for position, (key, item) in enumerate(value.items()):
            if items is not None and position >= items:
                out["..."] = f"{len(value) - items} more"
                break
            out[_json_key(key)] = json_value(
                item, text_limit=text_limit, items=items, depth=depth - 1
            )
        return out
    if depth > 0 and kind in (list, tuple):
        assert isinstance(value, (list, tuple))
        shown_items = value if items is None else value[:items]
        converted = [
            json_value(item, text_limit=text_limit, items=items, depth=depth - 1)
            for item in shown_items
        ]
        if len(shown_items) < len(value):
            converted.append("...")
        return converted
    return preview(value, text_limit or 300)


def _json_key(key: object) -> str:
    """A dict key as JSON has it (a string; plain scalars as `json.dumps` writes them)."""
    if type(key) is str:
        assert isinstance(key, str)
        return key
    if key is None or type(key) in (bool, int, float):
        return json.dumps(json_value(key)).strip('"')
    return preview(key, 80)


def _is_plain(value: object, depth: int) -> bool:
    """Whether `value` is built of plain data only, looking at most `depth` levels and 20
    items per level deep (exact types: a subclass may have a `__repr__` of its own)."""
    if type(value) in (str, int, float, bool, type(None)):
        return True
    if depth <= 0:
        return False
    if type(value) is dict:
        pairs = list(itertools.islice(value.items(), 20))
    elif isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        pairs = [(None, item) for item in itertools.islice(value, 20)]
    else:
        return False
    return all(_is_plain(key, depth - 1) and _is_plain(item, depth - 1) for key, item in pairs)


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
