"""`AgentSession`: a conversation with one controller, whose memory, variables and tasks carry
over between turns (from `AsyncAgent.session()`).

A session keeps its run and the agent's `Turns`, never the agent: each of its turns is taken
exactly as `arun` takes a run's (`_turn`), so the two cannot drift apart. A session with an id
on an agent with a journal also keeps its `DurableSession`, which brackets each turn in the
journal and, when the session is reopened, replays the recorded turns (`replay`) before the
first new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from ..engine._run_journal import RunJournal
from ..engine.registry import TaskRegistry
from ..engine.scope import RunScope
from ..errors import RunLeasedError
from ._answer_check import DEFAULT_OUTPUT_RETRIES
from ._durable_session import DurableSession
from ._feed import RunFeed
from ._run import ControllerRun
from ._turn import TurnRequest, Turns
from .stream import RunStream

__all__ = ["AgentSession", "recorded_session"]

T = TypeVar("T")


class AgentSession:
    """A conversation with one controller: memory, variables and tasks carry over between
    `arun` calls; the tasks are cancelled when the session closes."""

    def __init__(
        self, run: ControllerRun, turns: Turns, record: DurableSession | None = None
    ) -> None:
        self._run = run
        self._turns = turns
        self._record = record
        self._taken = 0
        self._one_at_a_time = asyncio.Lock()
        """Turns are bracketed in the journal: one turn ends before the next starts."""

    @property
    def session_id(self) -> str:
        """The session's id (its journal run id, when it has a journal)."""
        return self._run.scope.scope_id

    @property
    def unfinished_task(self) -> str | None:
        """The task of the turn a stopped process left in the middle (ask it again to resume
        that turn), or `None`."""
        pending = self._record.unfinished if self._record is not None else None
        return pending.request.task if pending is not None else None

    @property
    def scope(self) -> RunScope:
        """The session's task scope (for inspection from Python)."""
        return self._run.scope

    @overload
    async def arun(
        self,
        task: str,
        *,
        output_type: type[T],
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
    ) -> T: ...

    @overload
    async def arun(
        self,
        task: str,
        *,
        output_type: Any = ...,
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
    ) -> Any: ...

    async def arun(
        self,
        task: str,
        *,
        output_type: Any = None,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        images: Sequence[Any] | None = None,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
    ) -> Any:
        """Continue the conversation with `task`; calls are served one at a time. Each turn
        has the run's task quota (`max_tasks_per_scope`) of its own. `output_type`,
        `output_retries` and `images` are `AsyncAgent.arun`'s, for this turn."""
        request = TurnRequest(
            task=task,
            additional_args=additional_args,
            max_steps=max_steps,
            guidance=guidance,
            answer=self._turns.answer_check(output_type, output_retries),
        )
        return await self._turn(request, None, images)

    @overload
    def astream(
        self,
        task: str,
        *,
        output_type: type[T],
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        max_buffered: int = ...,
    ) -> RunStream[T]: ...

    @overload
    def astream(
        self,
        task: str,
        *,
        output_type: Any = ...,
        output_retries: int = ...,
        images: Sequence[Any] | None = ...,
        additional_args: Mapping[str, Any] | None = ...,
        max_steps: int | None = ...,
        guidance: bool = ...,
        max_buffered: int = ...,
    ) -> RunStream[Any]: ...

    def astream(
        self,
        task: str,
        *,
        output_type: Any = None,
        output_retries: int = DEFAULT_OUTPUT_RETRIES,
        images: Sequence[Any] | None = None,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
        max_buffered: int = 10_000,
    ) -> RunStream[Any]:
        """One turn as a `RunStream` (see `AsyncAgent.astream`); closing it cancels the turn
        (the session's tasks from earlier turns stay the session's)."""
        self._turns.check_open()
        check = self._turns.answer_check(output_type, output_retries)
        request = TurnRequest(
            task=task,
            additional_args=additional_args,
            max_steps=max_steps,
            guidance=guidance,
            answer=check,
        )

        async def start(feed: RunFeed) -> Any:
            return await self._turn(request, feed, images)

        return RunStream(
            start,
            max_buffered=max_buffered,
            answer_data=check.stored if check is not None else None,
        )

    async def _turn(
        self, request: TurnRequest, feed: RunFeed | None, images: Sequence[Any] | None = None
    ) -> Any:
        request = await self._turns.with_images(request, images)
        recorded = contextlib.nullcontext() if self._record is None else self._record.live(request)
        async with self._one_at_a_time:
            with self._turns.entered():
                self._run.scope.begin_turn()
                async with recorded:  # a turn refused by the journal does not count
                    reset = self._taken == 0
                    self._taken += 1
                    return await self._turns.take(self._run, request, reset=reset, feed=feed)

    async def replay(self) -> None:
        """Rebuild the conversation from the journal: replay each recorded turn that ended
        (no model call, no finished task run again; see `_durable_session`)."""
        if self._record is None:
            return
        async with self._one_at_a_time:
            for turn in self._record.turns:
                reset = self._taken == 0
                self._taken += 1
                with self._turns.entered():
                    self._run.scope.begin_turn()
                    async with self._record.replaying(turn):
                        await self._turns.take(self._run, turn.request, reset=reset, feed=None)


@contextlib.asynccontextmanager
async def recorded_session(
    record: DurableSession,
    registry: TaskRegistry,
    new_run: Callable[[RunScope, RunJournal], ControllerRun],
    end_run: Callable[[ControllerRun], None],
    turns: Turns,
) -> AsyncIterator[AgentSession]:
    """A session recorded in the journal (`AsyncAgent.session(session_id=...)`): claim it,
    replay its recorded turns, and, once it is closed (its scope first, so that nothing more
    is recorded), release its lease. `new_run` builds the controller on the session's journal."""
    if registry.scope_is_open(record.session_id):
        raise RunLeasedError(
            f"session `{record.session_id}` is already open in this process; close it first."
        )
    try:
        async with registry.scope(record.session_id) as opened:
            await record.open(opened)
            assert record.run_journal is not None
            run = new_run(opened, record.run_journal)
            record.on_failure = run.stop
            try:
                session = AgentSession(run, turns, record)
                await session.replay()
                yield session
            finally:
                end_run(run)
    finally:
        await record.close()
