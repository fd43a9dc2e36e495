"""A scripted model with only a blocking `generate`: the "sync-only model" of the benchmarks.

`agentloop.testing.ScriptedModel` has an async path (agentloop awaits its latency on the loop).
A model that has none, as smolagents' `LiteLLMModel` called through its sync `generate`, blocks
a thread for the whole latency, and agentloop must give it one. This model is that case: it
subclasses smolagents' `Model`, defines `generate` and nothing async, and sleeps its latency
with `time.sleep`. It reads its turn from the conversation like `ScriptedModel`, so concurrent
runs can share one instance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from smolagents.models import ChatMessage, MessageRole, Model
from smolagents.monitoring import TokenUsage

from agentloop.testing import code_reply
from agentloop.testing.messages import turn

__all__ = ["BlockingScriptedModel"]


class BlockingScriptedModel(Model):  # type: ignore[misc]
    """Replies with `steps[i]` (plain code) on the i-th turn, after blocking `latency` seconds.

    Args:
        steps: the code of each reply, in order; the last should call `final_answer`.
        latency: seconds each call blocks its thread, like a sync HTTP call to a model.
    """

    def __init__(self, steps: Sequence[str], *, latency: float) -> None:
        super().__init__(model_id="bench/blocking-scripted")
        self.steps = list(steps)
        self.latency = latency

    def generate(
        self,
        messages: list[ChatMessage],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        if self.latency:
            time.sleep(self.latency)
        step = turn(messages)
        if step >= len(self.steps):
            raise RuntimeError(f"the script has {len(self.steps)} steps; asked for {step + 1}")
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content=code_reply(self.steps[step]),
            token_usage=TokenUsage(input_tokens=0, output_tokens=0),
        )
