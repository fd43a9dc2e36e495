"""Inputs and outputs on spans are bounded and never raise, whatever the value."""

from __future__ import annotations

import json

from agentloop.tracing._values import JSON, TEXT, span_value


def test_plain_text_is_shown_as_text() -> None:
    assert span_value("hello") == ("hello", TEXT)


def test_json_data_is_shown_as_json() -> None:
    value = {"rows": [1, 2.5, None, True], "name": "a"}
    text, mime = span_value(value)
    assert mime == JSON
    assert json.loads(text) == value


def test_huge_values_are_cut() -> None:
    text, _ = span_value("x" * 1_000_000, limit=100)
    assert len(text) < 200 and text.endswith("more characters]")
    text, mime = span_value({"rows": list(range(1_000_000))}, limit=100)
    assert mime == JSON and len(text) <= 100


def test_other_values_and_raising_reprs_become_bounded_text() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    text, mime = span_value(Hostile())
    assert mime == TEXT and "Hostile" in text
    text, mime = span_value({1: "non-str key"})
    assert mime == TEXT and "non-str key" in text
    nested: list[object] = []
    nested.append(nested)
    text, _ = span_value(nested, limit=50)
    assert len(text) <= 60
