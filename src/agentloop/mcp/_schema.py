"""An MCP tool's input schema as a target's declared inputs, and the full check of arguments.

The declared inputs (names, JSON types, required, descriptions, defaults) give the guidance its
signature and the registry its usual checks, with their usual messages (an unknown input with
the closest name, a missing one, a wrong type). The rest of the schema (enums, ranges, nested
objects, patterns) is checked with `jsonschema` before the call, where the task is submitted
(in the controller's thread, not on the loop), and its first error is explained the same way;
arguments that take another task's result (`{"$result_of": ...}`) are left to the server.

Inputs not in `properties` are refused unless the schema allows them explicitly
(`additionalProperties: true` or a schema): JSON Schema allows them by default, but a tool's
unknown argument is almost always a misspelled one, which the model should hear about.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._text import shown
from ..core._targets import InputSpec
from ..core.references import find_references

__all__ = ["accepts_extra", "inputs_from_schema", "schema_check"]

_JSON_TYPES = frozenset({"string", "boolean", "integer", "number", "array", "object", "null"})


def inputs_from_schema(schema: Mapping[str, Any]) -> dict[str, InputSpec]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    inputs = {}
    for name, entry in properties.items():
        if not isinstance(name, str) or not isinstance(entry, Mapping):
            continue
        types, nullable = _types_of(entry)
        is_required = name in required_names
        default = ""
        if not is_required:
            default = _default_text(entry["default"]) if "default" in entry else "None"
        inputs[name] = InputSpec(
            name=name,
            types=types,
            required=is_required,
            nullable=nullable or not is_required,
            description=str(entry.get("description") or entry.get("title") or ""),
            default=default,
        )
    return inputs


def accepts_extra(schema: Mapping[str, Any]) -> bool:
    extra = schema.get("additionalProperties", False)
    return extra is True or isinstance(extra, Mapping)


def _types_of(entry: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    declared = entry.get("type")
    found: list[str] = []
    if isinstance(declared, str):
        found.append(declared)
    elif isinstance(declared, list):
        found.extend(t for t in declared if isinstance(t, str))
    for key in ("anyOf", "oneOf"):
        options = entry.get(key)
        if isinstance(options, list):
            for option in options:
                if isinstance(option, Mapping):
                    found.extend(_types_of(option)[0])
    nullable = "null" in found
    kinds = tuple(dict.fromkeys(t for t in found if t != "null" and t in _JSON_TYPES))
    return (kinds or ("any",)), nullable


def _default_text(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = shown(value, 40)
    text = {"true": "True", "false": "False", "null": "None"}.get(text, text)
    return text if len(text) <= 40 else text[:37] + "..."


_PLAIN_SCHEMA_KEYS = frozenset(
    {"type", "properties", "required", "title", "description", "additionalProperties", "$schema"}
)
_PLAIN_INPUT_KEYS = frozenset({"type", "title", "description", "default"})


def _plain(schema: Mapping[str, Any]) -> bool:
    """Whether the declared inputs' checks already cover all of `schema` (names, required,
    one JSON type each, no constraints): then the full check, ~70 us a call, is skipped."""
    if not _PLAIN_SCHEMA_KEYS.issuperset(schema) or schema.get("additionalProperties", False):
        return False
    properties = schema.get("properties") or {}
    return isinstance(properties, Mapping) and all(
        isinstance(entry, Mapping)
        and _PLAIN_INPUT_KEYS.issuperset(entry)
        and entry.get("type") in ("string", "integer", "number", "boolean")
        for entry in properties.values()
    )


def schema_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str | None] | None:
    """A check of arguments against the whole `schema`, saying what is wrong (None if the
    declared inputs' checks cover the schema, or it is not usable)."""
    if _plain(schema):
        return None
    try:
        import jsonschema
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - the `mcp` SDK depends on it
        return None
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        validator = validator_class(schema)
    except (SchemaError, TypeError, ValueError):
        return None  # the server's schema is broken: the server judges the arguments itself

    def check(arguments: Mapping[str, Any]) -> str | None:
        if next(find_references(dict(arguments)), None) is not None:
            return None  # a value that is another task's result: the server judges it
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path)
        return (f"input `{where}`: " if where else "arguments: ") + _short(error.message)

    return check


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."
