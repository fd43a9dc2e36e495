"""`output_type=`: what a typed run's answer must be, and what the model is told about it.

One pydantic `TypeAdapter` serves every kind of output type (pydantic models, dataclasses,
TypedDicts, plain types such as `list[int]` or `Literal["yes", "no"]`): it gives the JSON
schema the model is shown, validates the model's answer (as plain data, see `_answer_data`),
and gives the answer's JSON form, which is what a journal stores and a stream's end event
carries. pydantic is imported on the first typed run (about 80 ms), not with agentloop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Generic, TypeVar

from .._text import bounded, describe, preview, truncate
from ..errors import InvalidArgumentsError
from ._answer_data import AnswerProblem, answer_classes, plain_answer

__all__ = ["MAX_SCHEMA_CHARS", "AnswerType"]

T = TypeVar("T")

MAX_SCHEMA_CHARS = 8000
"""Longest JSON schema shown to the model; a longer one is cut (and says so)."""
_ERRORS_SHOWN = 10
"""Validation errors listed in one observation (the count of the others follows)."""
_ERROR_CHARS = 300


class AnswerType(Generic[T]):
    """A checked `output_type`: its adapter, name, schema text and digest."""

    __slots__ = ("_adapter", "_classes", "digest", "name", "output_type", "schema_text")

    def __init__(self, output_type: Any) -> None:
        from pydantic import TypeAdapter

        try:
            adapter: Any = TypeAdapter(output_type)
            schema = adapter.json_schema()
        except Exception as exc:
            raise InvalidArgumentsError(
                f"`output_type` must be a type pydantic can validate and describe as JSON "
                "schema (a pydantic model, a dataclass, a TypedDict, or a type such as "
                f"`list[int]`); received {_type_name(output_type)}, which fails with "
                f"{describe(exc)}"
            ) from None
        self.output_type = output_type
        self.name = _type_name(output_type)
        text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
        self.schema_text = bounded(text, MAX_SCHEMA_CHARS)
        self.digest = hashlib.sha256(f"{self.name}\n{text}".encode()).hexdigest()[:16]
        """Names the type and its schema: a resumed run with another output type is refused."""
        self._adapter = adapter
        self._classes = answer_classes(output_type)

    def validate(self, value: Any) -> tuple[T, Any]:
        """The value of the output type that `value` stands for, and its JSON form; raises
        `AnswerProblem` saying what is wrong. Runs no code of the model's (`_answer_data`)."""
        from pydantic import ValidationError

        plain = plain_answer(value, self._classes)
        try:
            typed = self._adapter.validate_python(plain)
        except ValidationError as exc:
            typed = self._from_json_text(plain, exc)
        return typed, self._adapter.dump_python(typed, mode="json")

    def _from_json_text(self, plain: Any, error: Any) -> Any:
        """An answer given as JSON text (`final_answer('{"total": 3}')`, or the text reply
        smolagents asks for at `max_steps`), or `error` explained."""
        from pydantic import ValidationError

        if type(plain) is str:
            for text in (plain, _fenced(plain)):
                if text is None:
                    continue
                try:
                    return self._adapter.validate_json(text)
                except ValidationError:
                    pass
        raise AnswerProblem(self._explain(error)) from None

    def data(self, value: T) -> Any:
        """`value`'s JSON form."""
        return self._adapter.dump_python(value, mode="json")

    def restored(self, data: Any) -> T:
        """A recorded answer's JSON form (from a journal) as the output type again."""
        value: T = self._adapter.validate_python(data)
        return value

    def _explain(self, error: Any) -> str:
        errors = error.errors(include_url=False, include_context=False)
        lines = []
        for item in errors[:_ERRORS_SHOWN]:
            where = ".".join(str(part) for part in item["loc"]) or "(the answer itself)"
            line = f"- `{where}`: {item['msg']} (got {preview(item['input'], 60)})"
            lines.append(truncate(line, _ERROR_CHARS))
        if len(errors) > _ERRORS_SHOWN:
            lines.append(f"- ... and {len(errors) - _ERRORS_SHOWN} more")
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        return f"it is not a valid `{self.name}` ({count}):\n" + "\n".join(lines)

    def hint(self, retries: int) -> str:
        """The task's answer-format section: the schema, and how to call `final_answer`."""
        tries = (
            f"up to {retries} time{'s' if retries != 1 else ''}"
            if retries
            else "but only once: get it right the first time"
        )
        return (
            f"\n\nAnswer format: end with `final_answer(answer)` where `answer` is a value of "
            f"type `{self.name}`, given as plain data (a dict for an object, lists, strings, "
            "numbers, booleans, None) that matches this JSON schema:\n"
            f"{self.schema_text}\n"
            f"An object of the type itself (e.g. one a tool returned) is accepted too. An "
            f"answer that does not match is handed back to you with what is wrong, {tries}, "
            "for you to correct."
        )


def _fenced(text: str) -> str | None:
    """The inside of the first code fence in a model's text reply (models wrap JSON in
    ```json fences, smolagents' code in <code> tags), or `None`. Linear in the text."""
    for opening, closing in (("```", "```"), ("<code>", "</code>")):
        start = text.find(opening)
        if start < 0:
            continue
        start += len(opening)
        if opening == "```":  # skip the fence's language tag
            line_end = text.find("\n", start)
            start = line_end + 1 if line_end >= 0 else start
        end = text.find(closing, start)
        if end >= 0:
            return text[start:end]
    return None


def _type_name(output_type: Any) -> str:
    """`Invoice`, `list[int]`, `typing.Literal['a', 'b']`: bounded, never a user `__repr__`
    (a class's name is read, an alias's repr is the typing module's)."""
    if isinstance(output_type, type) and not hasattr(output_type, "__origin__"):
        return truncate(output_type.__name__, 80)
    module = type(output_type).__module__
    if module in ("typing", "types", "typing_extensions"):
        return truncate(repr(output_type), 80)
    return f"a `{truncate(type(output_type).__name__, 80)}` object"
