"""Deterministic smolagents models for tests, demos and benchmarks: no network, no API key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, Model
from smolagents.monitoring import TokenUsage

from .messages import images as images_in
from .messages import turn as assistant_turns

__all__ = ["FunctionModel", "ScriptedModel", "code_reply"]


def code_reply(code: str, thought: str = "I will run this code.") -> str:
    """A model reply in the shape smolagents' CodeAgent parses: a thought, then a code block."""
    return f"Thought: {thought}\n<code>\n{code.strip()}\n</code>"


def _as_reply(text: str) -> str:
    if "<code>" in text or "```" in text:
        return text
    return code_reply(text)


class _CountingModel(Model):  # type: ignore[misc]
    def __init__(
        self, *, delay: float, model_id: str, chunk_chars: int = 16, chunk_delay: float = 0.0
    ) -> None:
        super().__init__(model_id=model_id)
        if not isinstance(chunk_chars, int) or isinstance(chunk_chars, bool) or chunk_chars < 1:
            raise ValueError(f"`chunk_chars` must be a positive int, received {chunk_chars!r}.")
        self.delay = delay
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        self._lock = threading.Lock()
        self._calls = 0
        self.last_images: list[Any] = []
        """The images in the conversation of the latest call (see `messages.images`): what
        a test checks after a run with `images=[...]`."""

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for remote backends): the lock is recreated where it lands."""
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """How many replies it gave (`generate` or `agenerate`), across all runs."""
        return self._calls

    def _reply(self, messages: list[ChatMessage]) -> str:
        raise NotImplementedError

    def generate(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The reply, after `delay` seconds of blocking latency (a sync model's path)."""
        self._count()
        if self.delay:
            time.sleep(self.delay)
        return self._message(messages)

    async def agenerate(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The reply, after `delay` seconds awaited on the event loop: what agentloop calls, so
        a run waiting for this model holds no thread (as with an async provider client)."""
        self._count()
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._message(messages)

    async def agenerate_stream(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatMessageStreamDelta]:
        """The reply streamed in pieces of `chunk_chars` characters, `chunk_delay` seconds
        apart (after `delay`, as `agenerate`): what agentloop calls when a run's stream wants
        the model's words as they come. Each piece is handed over in its own turn of the
        event loop, as a provider's chunks arrive."""
        self._count()
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._message(messages).content
        size = self.chunk_chars
        for start in range(0, len(text), size):
            if start:
                await asyncio.sleep(self.chunk_delay)
            yield ChatMessageStreamDelta(content=text[start : start + size])
        yield ChatMessageStreamDelta(
            content="", token_usage=TokenUsage(input_tokens=0, output_tokens=0)
        )

    def _count(self) -> None:
        with self._lock:
            self._calls += 1

    def _message(self, messages: list[ChatMessage]) -> ChatMessage:
        self.last_images = images_in(messages)
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=self._reply(messages),
            token_usage=TokenUsage(input_tokens=0, output_tokens=0),
        )


class ScriptedModel(_CountingModel):
    """Replies with `steps[i]` on the controller's i-th turn.

    The turn is read from the conversation itself (how many assistant messages it holds), so
    one model shared by many concurrent runs gives each run its script from the start. A step
    is plain Python (wrapped in a code block for you) or a full reply text.

    Args:
        steps: the replies, in order. Running past the end is an error that names the step.
        delay: seconds each call takes, to simulate model latency: awaited on the event loop
            when agentloop calls it (`agenerate`, as an async provider client), blocking in
            `generate`. A subclass that overrides `generate` is called through it, in a thread.
        chunk_chars, chunk_delay: how a streamed reply is cut (`agenerate_stream`, used
            when a run's stream wants the model's words as they come): pieces of this many
            characters, this many seconds apart.
    """

    def __init__(
        self,
        steps: Sequence[str],
        *,
        delay: float = 0.0,
        model_id: str = "agentloop/scripted",
        chunk_chars: int = 16,
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__(
            delay=delay, model_id=model_id, chunk_chars=chunk_chars, chunk_delay=chunk_delay
        )
        self.steps = list(steps)

    def _reply(self, messages: list[ChatMessage]) -> str:
        turn = assistant_turns(messages)
        if turn >= len(self.steps):
            raise RuntimeError(
                f"ScriptedModel has {len(self.steps)} step(s) but the agent asked for step "
                f"{turn + 1}; end the script with `final_answer(...)`."
            )
        return _as_reply(self.steps[turn])


class FunctionModel(_CountingModel):
    """Replies with whatever `function(messages)` returns (plain code or a full reply).

    Args:
        function: receives the conversation as smolagents `ChatMessage`s.
        delay: seconds each call takes, to simulate model latency: awaited on the event loop
            when agentloop calls it (`agenerate`, as an async provider client), blocking in
            `generate`. A subclass that overrides `generate` is called through it, in a thread.
        chunk_chars, chunk_delay: how a streamed reply is cut, as for `ScriptedModel`.
    """

    def __init__(
        self,
        function: Callable[[list[ChatMessage]], str],
        *,
        delay: float = 0.0,
        model_id: str = "agentloop/function",
        chunk_chars: int = 16,
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__(
            delay=delay, model_id=model_id, chunk_chars=chunk_chars, chunk_delay=chunk_delay
        )
        self.function = function

    def _reply(self, messages: list[ChatMessage]) -> str:
        return _as_reply(self.function(messages))
