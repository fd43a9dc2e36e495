"""How values (task results, final answers) are stored in a journal: JSON with tagged types.

Model code makes these values, and it may define classes with any dunder method, so storing a
value must run none of its code, and reading it back must run no code it chose. The encoder
walks a value by its *exact* type and only ever calls builtin code on it: plain JSON (`None`,
bools, ints, finite floats, strings, lists, dicts with string keys) is stored as itself; a tuple,
set, frozenset, bytes, a non-finite float, a huge int, a date or time, a `Decimal`, a `UUID`, a
dict with other keys, and the registered classes (`_types.JournalTypes`: agentloop's task values
and the app's `journal_types=`) become one-key objects tagged `$name`. Subclasses of `str`,
`int` and `float` are stored as the plain value (smolagents' `AgentText` reads back as a `str`),
read through the base type's own method so an override never runs. Anything else is refused
with `UnjournalableError`, which names the type and the fix.

Decoding builds only those types; a registered class is looked up by name in the registry and
built by its own constructor (`Invoice(**fields)`, `Model.model_validate`, `Enum(value)`): app
code. No value is ever pickled or unpickled: a `{"pickle": ...}` value an older agentloop wrote
is refused with a `JournalError` that says so.

The walk is bounded (`MAX_DEPTH`, `MAX_SIZE`, `ENCODE_SECONDS`), so a hostile value (a
self-containing list, a doubling tree of shared references) is refused instead of hanging a
worker; `encoded` walks anything but a short scalar in a worker thread, off the event loop.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import math
import time
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

from .._text import shown
from ..errors import JournalError
from ._types import BUILTIN_TYPES, JournalTypes, TypeKind

__all__ = [
    "ENCODE_SECONDS",
    "MAX_DEPTH",
    "MAX_SIZE",
    "MAX_VALUES",
    "StoredObject",
    "UnjournalableError",
    "decode",
    "encode",
    "encoded",
    "preview",
]

ENCODE_SECONDS = 30.0
"""Longest a value may take to encode before it counts as one the journal cannot hold."""
MAX_DEPTH = 100
"""Deepest nesting of containers a stored value may have."""
MAX_SIZE = 64_000_000
"""Largest stored value, in characters of JSON (about): a bigger one belongs in a file or a
database of its own, with its path or key as the result."""
MAX_VALUES = 5_000_000
"""Most values (scalars and containers) in one stored value."""
_SMALL_INT = 2**63
_SHORT = 4096
"""A str up to this length, or an int of up to this many bits, is stored on the loop."""
_BIG_INT_BITS = 4000
"""Ints beyond this many bits are stored as hex (decimal text of them hits Python's limit on
int-to-str digits)."""
_CHECK_CLOCK = 4096
"""Values walked between two looks at the clock."""


class UnjournalableError(JournalError):
    """A value the journal cannot store: of a type it does not know, too deep or too big."""


class _Refused(Exception):
    """Raised inside the walk; collects the path to the refused part on its way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


# -- encoding -----------------------------------------------------------------------------------


async def encoded(value: Any, what: str, types: JournalTypes = BUILTIN_TYPES) -> dict[str, Any]:
    """`encode`, in a worker thread unless `value` is `None`, a bool, a short str (or str
    subclass, such as the `AgentText` of a final answer) or int: the common results, which
    cost a type check instead of a thread hop."""
    cls = type(value)
    if (
        value is None
        or cls is bool
        or (cls is str and len(value) <= _SHORT)
        or (cls is int and value.bit_length() <= _SHORT)
    ):
        return {"json": value}
    if issubclass(cls, str) and str.__len__(value) <= _SHORT:  # `AgentText`: a final answer
        return {"json": str.__str__(value)}  # str's own methods: none of the subclass's runs
    return await anyio.to_thread.run_sync(encode, value, what, types, abandon_on_cancel=True)


def encode(value: Any, what: str, types: JournalTypes = BUILTIN_TYPES) -> dict[str, Any]:
    """`{"json": value}` when the value is plain JSON, else `{"typed": tree}`; `what` names the
    value in the error (`UnjournalableError`)."""
    walk = _Encoder(types)
    try:
        tree = walk.value(value, 0)
    except _Refused as exc:
        path = "".join(reversed(exc.path))
        where = f" (at `{path if len(path) <= 80 else path[:77] + '...'}`)" if path else ""
        raise UnjournalableError(f"{what} cannot be journaled{where}: {exc.reason}") from None
    return {"typed": tree} if walk.tagged else {"json": tree}


class _Encoder:
    """One walk over one value (see the module docstring)."""

    __slots__ = ("deadline", "left", "tagged", "types", "until_clock", "values_left")

    def __init__(self, types: JournalTypes) -> None:
        self.types = types
        self.tagged = False
        self.left = MAX_SIZE
        self.values_left = MAX_VALUES
        self.until_clock = _CHECK_CLOCK
        self.deadline = time.monotonic() + ENCODE_SECONDS

    def spend(self, size: int, values: int = 1) -> None:
        """Count `values` more values of about `size` characters of JSON; refuse past the
        limits, and look at the clock every `_CHECK_CLOCK` values."""
        self.left -= size
        self.values_left -= values
        if self.left < 0 or self.values_left < 0:
            raise _Refused(
                f"it is larger than the journal holds (about {MAX_SIZE:,} characters of JSON, "
                f"{MAX_VALUES:,} values). Store big data elsewhere (a file, a table, object "
                "storage) and return its path or key."
            )
        self.until_clock -= values
        if self.until_clock <= 0:
            self.until_clock = _CHECK_CLOCK
            if time.monotonic() > self.deadline:
                raise _Refused(f"encoding it took longer than {ENCODE_SECONDS:g}s.")

    def tag(self, name: str, payload: Any) -> dict[str, Any]:
        self.tagged = True
        return {name: payload}

    def value(self, value: Any, depth: int) -> Any:
        cls = type(value)
        if cls is str:
            self.spend(len(value) + 2)
            return value
        if value is None or cls is bool:
            self.spend(5)
            return value
        if cls is int:
            bits = value.bit_length()
            self.spend(bits // 3 + 1)
            return value if bits <= _BIG_INT_BITS else self.tag("$int", format(value, "x"))
        if cls is float:
            self.spend(24)
            return value if math.isfinite(value) else self.tag("$float", repr(value))
        if depth >= MAX_DEPTH:
            raise _Refused(
                f"it is nested more than {MAX_DEPTH} levels deep (or contains itself). "
                "Return flatter data."
            )
        if cls is list:
            return self.items(value, depth)
        if cls is dict:
            return self.mapping(value, depth)
        simple = _SIMPLE.get(cls)
        if simple is not None:
            name, encode_simple = simple
            return self.tag(name, encode_simple(self, value, depth))
        registered = self.types.kinds.get(cls)
        if registered is not None:
            return self.registered(value, *registered, depth)
        return self.plain_subclass(value, cls)

    def items(self, values: Any, depth: int) -> list[Any]:
        out: list[Any] = []
        size = count = 0  # plain scalars, the bulk of a big list, are counted inline
        for index, item in enumerate(values):
            cls = type(item)
            if cls is str:
                size += len(item) + 3
            elif cls is int and -_SMALL_INT < item < _SMALL_INT:
                size += 8
            elif cls is float and math.isfinite(item):
                size += 20
            elif not (item is None or cls is bool):
                self.spend(size, count)
                size = count = 0
                try:
                    item = self.value(item, depth + 1)
                except _Refused as exc:
                    exc.path.append(f"[{index}]")
                    raise
            out.append(item)
            count += 1
            if count >= _CHECK_CLOCK:
                self.spend(size, count)
                size = count = 0
        self.spend(size + 2, count)
        return out

    def mapping(self, mapping: dict[Any, Any], depth: int) -> Any:
        self.spend(2)
        if all(type(key) is str and not key.startswith("$") for key in mapping):
            out = {}
            for key, item in mapping.items():
                self.spend(len(key) + 3)
                try:
                    out[key] = self.value(item, depth + 1)
                except _Refused as exc:
                    exc.path.append(f"[{key[:40]!r}]")
                    raise
            return out
        pairs = []
        for index, (key, item) in enumerate(mapping.items()):
            try:
                pairs.append([self.value(key, depth + 1), self.value(item, depth + 1)])
            except _Refused as exc:
                exc.path.append(f".items()[{index}]")
                raise
        return self.tag("$dict", pairs)

    def registered(self, value: Any, name: str, kind: TypeKind, depth: int) -> Any:
        """An instance of a registered class (app code: its attributes are its own)."""
        if kind is TypeKind.ENUM:
            return self.tag("$enum", [name, self.value(value.value, depth + 1)])
        fields: dict[str, Any] = {}
        if kind is TypeKind.DATACLASS:
            for f in dataclasses.fields(value):
                if f.init:
                    fields[f.name] = getattr(value, f.name)
        else:  # pydantic: by alias, which `model_validate` expects
            for field_name, info in type(value).model_fields.items():
                fields[info.alias or field_name] = getattr(value, field_name)
            fields.update(value.__pydantic_extra__ or {})
        try:
            stored = self.mapping(fields, depth + 1)
        except _Refused as exc:
            exc.path.append(f"<{name}>")
            raise
        return self.tag("$object", [name, stored])

    def plain_subclass(self, value: Any, cls: type) -> Any:
        """A subclass of str, int or float, read as its base value (the base type's own
        method: an override never runs); anything else is refused."""
        base = _plain_base(cls)
        if base is not None:
            return self.value(base(value), MAX_DEPTH)  # a plain scalar: no depth used
        raise _Refused(_unknown_type(cls))


def _plain_base(cls: type) -> Callable[[Any], Any] | None:
    if issubclass(cls, enum.Enum):
        return None  # an enum must be registered: stored as its value it would not come back
    if issubclass(cls, str):
        return str.__str__
    if issubclass(cls, int):
        return int.__int__
    if issubclass(cls, float):
        return float.__float__
    return None


def _unknown_type(cls: type) -> str:
    name = _class_name(cls)
    if name.startswith("smolagents."):  # the executor's module: a class model code defined
        return (
            f"it is a `{name.rsplit('.', 1)[-1]}`, a class the model's code defined, and the "
            "journal stores plain data and the app's registered types only. Return plain data "
            "(dicts, lists, tuples, strings, numbers, dates)."
        )
    return (
        f"it is a `{name}`, a type the journal does not store. Return plain data (dicts, lists, "
        "tuples, strings, numbers, dates), or, if it is your own dataclass, pydantic model or "
        f"enum, register it: `create_async_agent(..., journal_types=[{name}])`."
    )


def _class_name(cls: type) -> str:
    """`module.qualname` of any class, read through `type`'s own descriptors (a metaclass that
    model code wrote could make `cls.__qualname__` run code), and shortened."""
    module = type.__dict__["__module__"].__get__(cls)
    qualname = type.__dict__["__qualname__"].__get__(cls)
    text = f"{module}.{qualname}" if isinstance(module, str) and module != "builtins" else qualname
    return text if len(text) <= 120 else text[:117] + "..."


def _encode_timezone(tz: Any) -> Any:
    if tz is None:
        return None
    if type(tz) is datetime.timezone:
        return tz.utcoffset(None).total_seconds()
    if type(tz) is zoneinfo.ZoneInfo:
        return tz.key
    raise _Refused(
        f"its time zone is a `{_class_name(type(tz))}`; the journal stores fixed offsets "
        "(`datetime.timezone`) and `zoneinfo.ZoneInfo` zones."
    )


def _clock(value: Any) -> list[Any]:
    """A datetime or time: naive ISO text, its zone, its fold."""
    return [value.replace(tzinfo=None).isoformat(), _encode_timezone(value.tzinfo), value.fold]


def _sized_b64(walk: _Encoder, data: bytes | bytearray) -> str:
    walk.spend(len(data) * 4 // 3 + 4)
    return base64.b64encode(data).decode("ascii")


def _decimal_text(walk: _Encoder, value: decimal.Decimal) -> str:
    walk.spend(len(value.as_tuple().digits) + 8)
    return str(value)


_SIMPLE: dict[type, tuple[str, Callable[[_Encoder, Any, int], Any]]] = {
    tuple: ("$tuple", _Encoder.items),
    set: ("$set", _Encoder.items),
    frozenset: ("$frozenset", _Encoder.items),
    bytes: ("$bytes", lambda walk, v, _: _sized_b64(walk, v)),
    bytearray: ("$bytearray", lambda walk, v, _: _sized_b64(walk, v)),
    datetime.datetime: ("$datetime", lambda _, v, __: _clock(v)),
    datetime.date: ("$date", lambda _, v, __: v.isoformat()),
    datetime.time: ("$time", lambda _, v, __: _clock(v)),
    datetime.timedelta: ("$timedelta", lambda _, v, __: [v.days, v.seconds, v.microseconds]),
    decimal.Decimal: ("$decimal", lambda walk, v, _: _decimal_text(walk, v)),
    uuid.UUID: ("$uuid", lambda _, v, __: format(v.int, "032x")),
}
"""Exact builtin types stored under a tag, and how each is written."""


# -- decoding -----------------------------------------------------------------------------------


def decode(stored: Mapping[str, Any], what: str, types: JournalTypes = BUILTIN_TYPES) -> Any:
    """The value `encode` stored, built from known types only (`JournalError` otherwise)."""
    return _decoded(stored, what, _Decoder(types, strict=True))


def preview(stored: Mapping[str, Any]) -> Any:
    """The value as far as it can be read without the app's types, to show it: agentloop's
    own types are built, a registered class of the app is a `StoredObject` (never built)."""
    return _decoded(stored, "the value", _Decoder(BUILTIN_TYPES, strict=False))


@dataclasses.dataclass(frozen=True, slots=True)
class StoredObject:
    """A stored instance of a class this reader has not registered, as `preview` shows it."""

    type_name: str
    fields: Any

    def __repr__(self) -> str:
        """Bounded: the first fields, each shortened."""
        if type(self.fields) is not dict:
            return f"{self.type_name}({shown(self.fields, 60)})"
        shown_fields = [f"{k}={shown(v, 60)}" for k, v in list(self.fields.items())[:10]]
        more = ", ..." if len(self.fields) > 10 else ""
        return f"{self.type_name}({', '.join(shown_fields)}{more})"


def _decoded(stored: Mapping[str, Any], what: str, decoder: _Decoder) -> Any:
    if not isinstance(stored, Mapping):
        raise JournalError(f"{what} in the journal is not a stored value: {type(stored).__name__}.")
    if "json" in stored:
        return stored["json"]  # plain JSON, as itself (agentloop 0.1 wrote the same form)
    if "typed" in stored:
        try:
            return decoder.value(stored["typed"], 0)
        except _Refused as exc:
            raise JournalError(f"{what} in the journal cannot be read back: {exc.reason}") from None
    if "pickle" in stored:
        raise JournalError(
            f"{what} in the journal was pickled by an older agentloop (0.1), and agentloop no "
            "longer unpickles journal values: unpickling runs whatever code the stored bytes "
            "name. It was not unpickled. Finish or inspect that run with the agentloop version "
            "that wrote it, or start the work again under a new run id."
        )
    raise JournalError(
        f"{what} in the journal has no form this agentloop reads (keys: "
        f"{', '.join(sorted(str(k)[:20] for k in stored)[:5])}); was it written by a newer one?"
    )


class _Decoder:
    """One walk over one stored tree (already parsed JSON, so bounded by what the store read)."""

    __slots__ = ("strict", "types")

    def __init__(self, types: JournalTypes, *, strict: bool) -> None:
        self.types = types
        self.strict = strict

    def value(self, node: Any, depth: int) -> Any:
        cls = type(node)
        if cls is list or cls is dict:
            if depth >= MAX_DEPTH:
                raise _Refused(f"it is nested more than {MAX_DEPTH} levels deep.")
            if cls is list:
                return [self.value(item, depth + 1) for item in node]
            if len(node) == 1:
                ((key, payload),) = node.items()
                if key.startswith("$"):
                    return self.tagged(key, payload, depth + 1)
            return {key: self.value(item, depth + 1) for key, item in node.items()}
        if node is None or cls in (str, int, float, bool):
            return node
        raise _Refused(f"it holds a `{cls.__name__}`, which JSON does not.")

    def tagged(self, tag: str, payload: Any, depth: int) -> Any:
        read = _READERS.get(tag)
        try:
            if read is not None:
                return read(self, payload, depth)
            if tag == "$object" or tag == "$enum":
                name, inner = payload
                return self.registered(tag, name, self.value(inner, depth), depth)
        except _Refused:
            raise
        except (TypeError, ValueError, KeyError, OverflowError, decimal.InvalidOperation) as exc:
            raise _Refused(
                f"its `{tag}` value is malformed ({type(exc).__name__}: {exc})."
            ) from exc
        raise _Refused(f"it holds a `{tag[:40]}` value, a tag this agentloop does not know.")

    def registered(self, tag: str, name: Any, inner: Any, depth: int) -> Any:
        cls = self.types.by_name.get(name) if isinstance(name, str) else None
        if cls is None:
            if not self.strict and isinstance(name, str):
                return StoredObject(name, inner)
            raise _Refused(
                f"it holds a `{str(name)[:120]}`, a type this agent has not registered; create "
                f"the agent with `journal_types=[{str(name)[:120]}]`, as the one that wrote it was."
            )
        kind = self.types.kinds[cls][1]
        if (tag == "$enum") is not (kind is TypeKind.ENUM) or (
            kind is not TypeKind.ENUM
            and not (type(inner) is dict and all(type(key) is str for key in inner))
        ):
            raise _Refused(
                f"its `{name}` value does not have the stored form of a `{kind.value}` type."
            )
        try:
            if kind is TypeKind.ENUM:
                return cls(inner)
            if kind is TypeKind.DATACLASS:
                return cls(**inner)
            return cls.model_validate(inner)  # type: ignore[attr-defined]
        except Exception as exc:  # the app's constructor: validation can raise anything
            raise _Refused(
                f"its stored `{name}` no longer fits the class ({type(exc).__name__}: "
                f"{str(exc)[:200]}); was the class changed since the run was recorded?"
            ) from exc


def _pairs(decoder: _Decoder, payload: Any, depth: int) -> dict[Any, Any]:
    return {decoder.value(k, depth): decoder.value(v, depth) for k, v in payload}


def _items(decoder: _Decoder, payload: Any, depth: int) -> list[Any]:
    if type(payload) is not list:
        raise TypeError(f"expected a list, found {type(payload).__name__}")
    return [decoder.value(item, depth) for item in payload]


def _timezone(stored: Any) -> datetime.tzinfo | None:
    if stored is None:
        return None
    if isinstance(stored, str):
        return zoneinfo.ZoneInfo(stored)
    return datetime.timezone(datetime.timedelta(seconds=stored))


def _datetime(_: _Decoder, payload: Any, __: int) -> datetime.datetime:
    text, zone, fold = payload
    naive = datetime.datetime.fromisoformat(text)
    return naive.replace(tzinfo=_timezone(zone), fold=fold)


def _time(_: _Decoder, payload: Any, __: int) -> datetime.time:
    text, zone, fold = payload
    return datetime.time.fromisoformat(text).replace(tzinfo=_timezone(zone), fold=fold)


def _float(_: _Decoder, payload: Any, __: int) -> float:
    if payload not in ("nan", "inf", "-inf"):
        raise ValueError(f"not a non-finite float: {str(payload)[:20]!r}")
    return float(payload)


_READERS: dict[str, Callable[[_Decoder, Any, int], Any]] = {
    "$tuple": lambda d, p, depth: tuple(_items(d, p, depth)),
    "$set": lambda d, p, depth: set(_items(d, p, depth)),
    "$frozenset": lambda d, p, depth: frozenset(_items(d, p, depth)),
    "$dict": _pairs,
    "$int": lambda _, p, __: int(p, 16),
    "$float": _float,
    "$bytes": lambda _, p, __: base64.b64decode(p, validate=True),
    "$bytearray": lambda _, p, __: bytearray(base64.b64decode(p, validate=True)),
    "$datetime": _datetime,
    "$date": lambda _, p, __: datetime.date.fromisoformat(p),
    "$time": _time,
    "$timedelta": lambda _, p, __: datetime.timedelta(days=p[0], seconds=p[1], microseconds=p[2]),
    "$decimal": lambda _, p, __: decimal.Decimal(p),
    "$uuid": lambda _, p, __: uuid.UUID(hex=p),
}
"""How each builtin tag is read back (the registered classes are `_Decoder.registered`)."""
