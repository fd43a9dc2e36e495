"""Helpers for `FunctionModel` functions: read what the controller has seen so far."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["images", "last_observation", "task_text", "turn"]


def _text(message: Any) -> str:
    content = getattr(message, "content", None)
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _role(message: Any) -> str:
    role = getattr(message, "role", "")
    return str(getattr(role, "value", role))


def turn(messages: Sequence[Any]) -> int:
    """How many replies the model has already given in this conversation (0 on the first)."""
    return sum(1 for m in messages if _role(m) == "assistant")


def last_observation(messages: Sequence[Any]) -> str:
    """The text of the latest observation or error the agent fed back ("" before any)."""
    if not turn(messages):
        return ""
    for message in reversed(messages):
        if _role(message) in ("tool-response", "user"):
            return _text(message)
    return ""


def task_text(messages: Sequence[Any]) -> str:
    """The text of the first user message: the task the run was given."""
    for message in messages:
        if _role(message) == "user":
            return _text(message)
    return ""


def images(messages: Sequence[Any]) -> list[Any]:
    """The images in the conversation, in order: those of the task's message, then those
    smolagents adds to each step's observations (PIL images, as the model receives them)."""
    found: list[Any] = []
    for message in messages:
        content = getattr(message, "content", None)
        if isinstance(content, list):
            found.extend(
                part["image"]
                for part in content
                if isinstance(part, dict) and part.get("type") == "image" and "image" in part
            )
    return found
