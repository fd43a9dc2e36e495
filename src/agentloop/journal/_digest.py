"""A digest of a submission's arguments, so a replayed submission can prove it is the recorded one.

A resumed run's code runs again and must submit what it submitted before; the target and the
task id are not enough (the same `charge` with another amount, the same approved `deploy` with
`env="prod"` instead of `"staging"`). Each `submitted` entry therefore carries a digest of the
arguments as they were submitted (a `{"$result_of": id}` reference is part of them as it was
written: it counts as the referenced task id, never as the referenced result), and an `approval`
entry carries the digest it decided on.

The arguments come from model code, which is hostile input: computing the digest must run none
of its code. So the walk looks at exact types only (`type(v) is dict`, never `isinstance`, so a
subclass's `__iter__`, `__eq__`, `__hash__` or `__repr__` is never called): `dict`, `list`,
`tuple`, `str`, `bytes`, `int`, `float`, `bool` and `None` contribute their content; any other
value contributes only its type's qualified name. The weakness, on purpose: two objects of one
other type (a dataclass, a set, a numpy array) with different contents digest alike, so such a
change is not detected. The walk is bounded (`MAX_VALUES` values, `MAX_BYTES` bytes of text):
past the bounds a value contributes only its length or nothing, so a huge or self-referencing
argument costs a bounded time, and differences past the bounds go undetected.

A dict whose keys are all strings is digested in key order, so code that builds one from a set
(whose order changes between processes) digests alike; any other dict in its own order.
Measured (a shared 2-CPU machine): no arguments cost nothing (a constant); a few scalar ones
about 1.5 µs (`_flat`), against 2.5 µs for the `copy.deepcopy` every submission already makes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from itertools import islice
from typing import Any

__all__ = ["MAX_BYTES", "MAX_VALUES", "arguments_digest"]

MAX_VALUES = 100_000
"""Values (containers and scalars) the walk looks at; the rest of the arguments is not seen."""
MAX_BYTES = 16 * 1024 * 1024
"""Bytes of text (`str` as UTF-8, `bytes`) hashed; past them, only lengths count."""

_END = object()
"""Closes a container on the walk's stack (private: no argument can be it)."""


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """The digest of a submission's arguments (32 hex digits), computed without running any
    code the arguments' values define."""
    if not arguments:
        return _EMPTY
    if type(arguments) is dict and len(arguments) <= _FLAT_KEYS:
        flat = _flat(arguments)
        if flat is not None:
            return hashlib.blake2b(flat, digest_size=16).hexdigest()
    return _walk(arguments)


_FLAT_KEYS = 32
_FLAT_TEXT = 4096
_SMALL_INT = 1 << 64
_SCALARS = frozenset({int, float, bool, type(None)})


def _flat(arguments: dict[str, Any]) -> bytes | None:
    """The common case, fast (a third of `_walk`'s cost): a few string keys with scalar or short
    text values, digested as the `repr` of its sorted items (safe: every `repr` it calls is a
    builtin type's). `None` for anything else."""
    for key, value in arguments.items():
        kind = type(value)
        if type(key) is not str or len(key) > _FLAT_TEXT:
            return None
        if kind is str or kind is bytes:
            if len(value) > _FLAT_TEXT:
                return None
        elif kind not in _SCALARS or (kind is int and not -_SMALL_INT < value < _SMALL_INT):
            return None
    return repr(sorted(arguments.items())).encode("utf-8", "surrogatepass")


def _walk(arguments: Mapping[str, Any]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    update = digest.update
    budget = MAX_BYTES
    stack: list[Any] = [arguments]
    seen = 0
    while stack and seen < MAX_VALUES:
        value = stack.pop()
        seen += 1
        kind = type(value)
        if value is _END:
            update(b")")
        elif kind is str:
            update(b"s%d:" % len(value))
            if budget:
                data = value[:budget].encode("utf-8", "surrogatepass")
                budget = max(0, budget - len(data))
                update(data)
        elif kind is dict:
            update(b"d%d(" % len(value))
            stack.append(_END)
            items = list(islice(value.items(), MAX_VALUES))
            if all(type(key) is str for key, _ in items):
                items.sort(key=_first)
            for key, item in reversed(items):
                stack.append(item)
                stack.append(key)
        elif kind is list or kind is tuple:
            update((b"l%d(" if kind is list else b"t%d(") % len(value))
            stack.append(_END)
            stack.extend(reversed(value[:MAX_VALUES]))
        elif kind is int:
            update(b"i%x;" % value)
        elif kind is float:
            update(b"f%b;" % value.hex().encode())
        elif kind is bool or value is None:
            update(b"T" if value is True else b"F" if value is False else b"N")
        elif kind is bytes:
            update(b"b%d:" % len(value))
            if budget:
                data = value[:budget]
                budget -= len(data)
                update(data)
        else:  # any other type: its name only, never its code
            update(b"o%b;" % _type_name(kind))
    if stack:
        update(b"...")  # past MAX_VALUES: the rest is not seen
    return digest.hexdigest()


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def _type_name(kind: type) -> bytes:
    """`module.qualname` of a type, read with `type`'s own attribute lookup (a metaclass of
    model code may define `__getattribute__`; a class body may set `__module__` to anything)."""
    module = type.__getattribute__(kind, "__module__")
    qualname = type.__getattribute__(kind, "__qualname__")
    name = f"{module}.{qualname}" if type(module) is str else qualname
    return name.encode("utf-8", "surrogatepass")


_EMPTY = _walk({})
"""The digest of no arguments (every submission without any: computed once)."""
