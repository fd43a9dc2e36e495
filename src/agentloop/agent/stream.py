"""Streaming a run: `RunStream`, an async iterator of typed `RunEvent`s (`run_events`).

A stream is the run seen from outside while it happens: the run's start, each model step (the
code the model wrote and what it observed), every task event of the run, and its end (the
final answer or the failure). It is fed from two places without ever blocking the run: task
events arrive on the loop from the engine's event bus (a listener, called as each event is
published), step events from the controller thread (handed over with one
`call_soon_threadsafe`), both through the run's private `RunFeed` (`_feed`), which the stream
only reads. Nobody listening costs `arun` nothing: the bus builds no event while it has no
listener.

Buffering policy: a stream holds at most `max_buffered` events. A consumer that falls further
behind loses the *oldest* undelivered events (never the final one); the next event it reads is
then an `events_dropped` event that says how many were lost, so it knows its view has a gap.
The run itself never waits for the consumer.

A typed run's stream (`astream(task, output_type=Invoice)`) is a `RunStream[Invoice]`:
`await stream.result()` is the validated `Invoice`, and the `final_answer` event carries its JSON
form (what `to_dict()` can serialise).

Structured concurrency: the run belongs to the stream. Closing the stream (leaving its
`async with` block, `aclose()`, or `cancel()`) cancels the run and all its tasks, as cancelling
`arun` does; so does cancelling the task that consumes it inside `async with`.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Generic

from typing_extensions import TypeVar

from .._text import describe
from ..core.approvals import ApprovalDecision
from ..errors import RunParkedError
from ._feed import RunFeed
from .run_events import (
    EVENT_SCHEMA_VERSION,
    ModelDelta,
    RunEvent,
    RunEventKind,
    StepInfo,
    TaskEventInfo,
)

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "ModelDelta",
    "RunEvent",
    "RunEventKind",
    "RunStream",
    "StepInfo",
    "TaskEventInfo",
]

T = TypeVar("T", default=Any)


class RunStream(Generic[T]):
    """An async iterator of a run's `RunEvent`s, and an async context manager that owns the
    run. Get one from `agent.astream(task)` or `session.astream(task)`; the run starts when
    the stream is entered or first iterated."""

    def __init__(
        self,
        start: Callable[[RunFeed], Awaitable[T]],
        *,
        max_buffered: int = 10_000,
        answer_data: Callable[[T], Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._start_run = start
        self._feed = RunFeed(max_buffered)
        self._feed.labels = labels
        self._driver: asyncio.Task[T] | None = None
        self._answer_data = answer_data
        """How the end event shows the answer (a typed run: its JSON form)."""

    # -- the run ------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id, once it has started."""
        return self._feed.run_id

    @property
    def dropped(self) -> int:
        """Events lost because the consumer fell more than `max_buffered` behind."""
        return self._feed.dropped

    def _ensure_started(self) -> asyncio.Task[T]:
        if self._driver is None:
            loop = asyncio.get_running_loop()
            # Neither the driver nor its callback holds the stream: a stream its user dropped
            # can be collected, and its collection cancels the run (`__del__`).
            self._driver = loop.create_task(
                _drive(self._start_run, self._feed, self._answer_data), name="agentloop-stream"
            )
            # Cancelled before its first step, the driver never reaches its own handlers:
            # end the stream here too, so a reader is never left waiting.
            self._driver.add_done_callback(functools.partial(_end_if_not_ended, self._feed))
        return self._driver

    def __del__(self) -> None:
        """A stream dropped while its run goes on (a bare `async for` that broke out) would
        leave the run going with nobody to see or end it: cancel it, and warn, as an unclosed
        file or socket does."""
        driver = self._driver
        if driver is None or driver.done():
            return
        warnings.warn(
            f"a RunStream was garbage-collected while its run `{self.run_id}` was going; the "
            "run is cancelled. Use `async with agent.astream(...) as stream:` (or "
            "`contextlib.aclosing`) so that leaving the loop closes the stream.",
            ResourceWarning,
            stacklevel=1,
        )
        loop = driver.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(driver.cancel)

    async def result(self) -> T:
        """The final answer (starting the run if needed); raises the run's error."""
        return await asyncio.shield(self._ensure_started())

    def approve(self, task_id: str, reason: str = "") -> None:
        """Approve a task of this run that awaits approval (once)."""
        self._feed.answer(task_id, ApprovalDecision.approve(reason))

    def reject(self, task_id: str, reason: str) -> None:
        """Reject a task of this run that awaits approval; it fails with `reason`."""
        self._feed.answer(task_id, ApprovalDecision.reject(reason))

    def cancel(self) -> None:
        """Cancel the run and all its tasks."""
        if self._driver is not None:
            self._driver.cancel()

    def hand_back(self) -> None:
        """Stop the run here but leave it unfinished in the journal, for another process (or
        a later `arun` with its id) to resume: what a service that shuts down does with the
        runs it holds. Without a journal this is `cancel()`."""
        self._feed.handing_back = True
        self.cancel()

    async def aclose(self) -> None:
        """Cancel the run if it is still going, and wait until it has ended.

        Waits through any number of cancellations of the caller (an anyio or Starlette cancel
        scope delivers one at every await until the task leaves it), then re-raises the first:
        the run has ended by then, so leaving the stream's block never leaves it running."""
        driver = self._driver
        if driver is None:
            self._feed.ended = True
            return
        if not driver.done():
            driver.cancel()
        interrupted: asyncio.CancelledError | None = None
        while not driver.done():
            try:
                await asyncio.wait({driver})  # does not cancel the driver when cancelled
            except asyncio.CancelledError as exc:
                interrupted = interrupted or exc
        if not driver.cancelled():
            driver.exception()  # retrieved: the consumer chose not to ask
        if interrupted is not None:
            raise interrupted

    async def __aenter__(self) -> RunStream[T]:
        self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- events -------------------------------------------------------------------------------

    def __aiter__(self) -> RunStream[T]:
        return self

    async def __anext__(self) -> RunEvent:
        self._ensure_started()
        feed = self._feed
        while not feed.buffer:
            if feed.ended:
                raise StopAsyncIteration
            feed.wakeup.clear()
            await feed.wakeup.wait()
        return feed.take()


async def _drive(
    start: Callable[[RunFeed], Awaitable[T]],
    feed: RunFeed,
    answer_data: Callable[[T], Any] | None,
) -> T:
    """Run the stream's run, ending its feed with the answer (as `answer_data` shows it: a
    typed answer's plain data) or the failure."""
    try:
        answer = await start(feed)
    except asyncio.CancelledError:
        feed.end(RunEventKind.RUN_FAILED, error="CancelledError: the run was cancelled")
        raise
    except RunParkedError as parked:  # the stream ends; the run waits in its journal
        feed.end(RunEventKind.RUN_PARKED, extra={"approval_ids": list(parked.approval_ids)})
        raise
    except BaseException as exc:
        feed.end(RunEventKind.RUN_FAILED, error=describe(exc))
        raise
    shown = answer if answer_data is None else answer_data(answer)
    feed.end(RunEventKind.FINAL_ANSWER, answer=shown)
    return answer


def _end_if_not_ended(feed: RunFeed, driver: asyncio.Future[Any]) -> None:
    if not feed.ended:
        feed.end(RunEventKind.RUN_FAILED, error="CancelledError: the run was cancelled")
