"""A controller run cut at its model calls: its code runs in a thread, its model is awaited.

smolagents' `CodeAgent.run` is blocking: prompts, memory, parsing, the executor and the model
call all happen in one call, so a run waiting for its model used to hold its controller thread
for the whole wait (thousands of runs, thousands of threads). We keep smolagents as it is and
use its own seam instead: with `stream_outputs=True`, a step iterates the model's
`generate_stream` and yields each delta up through `run(stream=True)`. The controller's model
is a `StepModel`, whose stream first yields a `ModelRequest` (an empty delta that carries the
messages). The step suspends there, the driver (in `_run`) takes the request back to the
event loop, awaits the real model through the agent's wrappers, and hands the reply to the
request; the next advance resumes the step, in whichever controller thread is free.

The reply is filled into the request in place rather than yielded as a second delta:
smolagents keeps the deltas of a step in a list and joins them once the stream ends, so the
request carries the whole reply, and the step renders one (empty) delta instead of parsing the
reply as Markdown for a display nobody sees at verbosity OFF (measured: 0.5 ms per call).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from smolagents.memory import FinalAnswerStep
from smolagents.models import ChatMessageStreamDelta

from ..core._bridge import LoopBridge

__all__ = ["ModelRequest", "StepModel", "Stepping", "reply_text"]

logger = logging.getLogger("agentloop.agent")

_BLOCKING_CALL_SECONDS = 3600.0
"""Bound on a blocking model call the controller makes (smolagents' final answer at max
steps): the loop awaits the model as for any other call; this only guards a lost loop."""


class ModelRequest(ChatMessageStreamDelta):  # type: ignore[misc]
    """One model call a controller's step waits for; the reply, or its error, once answered."""

    def __init__(self, messages: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(content="")
        self.messages = messages
        self.kwargs = kwargs
        self.reply: Any = None
        self.error: BaseException | None = None

    def answer(self, reply: Any) -> None:
        self.reply = reply

    def fail(self, error: BaseException) -> None:
        self.error = error

    def take(self) -> Any:
        """The reply (the step's thread, after the loop answered); raises the call's error."""
        error, self.error = self.error, None
        if error is not None:
            raise error
        reply, self.reply = self.reply, None
        return reply


class StepModel:
    """A controller's model: each call is a `ModelRequest` that its driver answers.

    `generate_stream` is the path every step takes (the controller streams). `generate` is
    for the calls smolagents makes without streaming (its final answer after `max_steps`): the
    controller's thread blocks on the loop for that one, through the run's bridge.
    """

    def __init__(
        self,
        model_id: str | None,
        ask: Callable[[ModelRequest], Coroutine[Any, Any, Any]],
        bridge: LoopBridge,
    ) -> None:
        self.model_id = model_id
        self._ask = ask
        self._bridge = bridge

    def generate_stream(self, messages: Any, **kwargs: Any) -> Iterator[ModelRequest]:
        request = ModelRequest(messages, kwargs)
        yield request  # the step suspends here until the loop answered
        reply = request.take()
        request.content = reply_text(getattr(reply, "content", reply))
        request.token_usage = getattr(reply, "token_usage", None)

    def generate(self, messages: Any, **kwargs: Any) -> Any:
        request = ModelRequest(messages, kwargs)
        return self._bridge.call(
            lambda: self._ask(request), timeout=_BLOCKING_CALL_SECONDS, what="a model call"
        )


class Stepping:
    """One `run(stream=True)` of a controller, advanced from model call to model call.

    `advance` runs in a controller thread; between two advances the run holds no thread.
    Once `stopped`, a step that asks for the model gets that error instead (the run is over),
    so the controller ends within the advance it is in; `finish` ends it on the spot when no
    thread is advancing it (one lock decides: never two threads in the generator).
    """

    def __init__(self, start: Callable[[], Iterator[Any]]) -> None:
        self._start = start
        self._steps: Iterator[Any] | None = None
        self._pending: ModelRequest | None = None
        self._lock = threading.Lock()
        self.stopped: BaseException | None = None
        """Set when the run is stopped: the error its pending and later model calls get."""
        self.output: Any = None
        """The final answer, once the run has ended."""

    def advance(self) -> ModelRequest | None:
        """Run the controller until it asks for its model (the request is returned) or ends
        (`None`, with `output` set). The controller's errors are raised here."""
        with self._lock:
            steps = self._steps
            if steps is None:
                if self.stopped is not None:  # stopped before it started: nothing to end
                    return None
                steps = self._steps = self._start()
            self._pending = None
            for event in steps:
                if isinstance(event, ModelRequest):
                    if self.stopped is None:
                        self._pending = event
                        return event
                    event.fail(self.stopped)
                elif isinstance(event, FinalAnswerStep):
                    self.output = event.output
            return None

    def finish(self) -> None:
        """End a stopped run that waits between two advances, in this thread: its pending
        model call fails, so smolagents ends the step (step callbacks included) and the run.
        Only smolagents' error path runs here: no model call and no model-written code. If a
        thread is advancing the run, that thread ends it instead."""
        if self.stopped is None or not self._lock.acquire(blocking=False):
            return
        try:
            pending, self._pending = self._pending, None
            if pending is None or self._steps is None:
                return
            pending.fail(self.stopped)
            for _ in self._steps:  # nothing more is asked of the model: stopped
                pass
        except Exception as exc:  # the expected end: the step's generation error
            logger.debug("stopped controller ended with %s", type(exc).__name__)
        finally:
            self._lock.release()


def reply_text(content: Any) -> str:
    """A reply's text: smolagents' models give a string, some a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return str(content)
