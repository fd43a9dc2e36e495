"""How values (task results, final answers, arguments) are stored in a journal.

A value that survives a JSON round trip unchanged is stored as JSON, readable by any tool that
opens the journal; anything else is pickled (so a tuple, a dataclass or a DataFrame comes back
as itself). A value that is neither is refused with a message that says which, so the run fails
at that point instead of writing a record it could not read back. Unpickling trusts the journal:
it must be storage only you can write (docs/durability.md).

Encoding runs code of the value's own (`__reduce__`, and any size of data), so `encoded` does it
in a worker thread, bounded in time, unless the value is a plain scalar: the event loop never
runs user code or unbounded work to store a result or an answer.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from .._text import shown
from ..errors import JournalError

__all__ = ["ENCODE_SECONDS", "UnjournalableError", "decode", "encode", "encoded"]

ENCODE_SECONDS = 30.0
"""Longest a value may take to encode before it counts as one the journal cannot hold."""


class UnjournalableError(JournalError):
    """A value that can be neither stored as JSON nor pickled."""


_SCALARS = frozenset({bool, int, str})
"""Exact types (not subclasses, whose JSON form may differ) that JSON stores unchanged."""


async def encoded(value: Any, what: str) -> dict[str, Any]:
    """`encode`, off the event loop (and at most `ENCODE_SECONDS`) unless `value` is a
    plain scalar, the common case, which costs a type check."""
    if value is None or type(value) in _SCALARS:
        return {"json": value}
    with anyio.move_on_after(ENCODE_SECONDS):
        return await anyio.to_thread.run_sync(encode, value, what, abandon_on_cancel=True)
    raise UnjournalableError(
        f"{what} cannot be journaled: encoding it took longer than {ENCODE_SECONDS:g}s."
    )


def encode(value: Any, what: str) -> dict[str, Any]:
    """`{"json": value}` or `{"pickle": base64}`; `what` names the value in the error."""
    if value is None or type(value) in _SCALARS:  # the common results: no round trip needed
        return {"json": value}
    try:
        text = json.dumps(value, allow_nan=False)
        if json.loads(text) == value:
            return {"json": value}
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickling runs user code (`__reduce__`): anything can come out
        raise UnjournalableError(
            f"{what} cannot be journaled: it is not JSON and pickling it failed "
            f"({type(exc).__name__}: {shown(exc)}). Return plain data (dicts, lists, strings, "
            "numbers) or a picklable object."
        ) from None
    return {"pickle": base64.b64encode(data).decode("ascii")}


def decode(stored: Mapping[str, Any], what: str) -> Any:
    """The value `encode` stored."""
    if "json" in stored:
        return stored["json"]
    try:
        return pickle.loads(base64.b64decode(stored["pickle"]))
    except Exception as exc:  # a class that moved, a module not installed here, bad bytes
        raise JournalError(
            f"{what} in the journal cannot be read back ({type(exc).__name__}: {shown(exc)}); "
            "is the code that defined its type importable here?"
        ) from None
