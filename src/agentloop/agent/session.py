"""`AgentSession`: a conversation with one controller, whose memory, variables and tasks carry
over between turns (from `AsyncAgent.session()`).

A session keeps its run and the agent's `Turns`, never the agent: each of its turns is taken
exactly as `arun` takes a run's (`_turn`), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.scope import RunScope
from ._feed import RunFeed
from ._run import ControllerRun
from ._turn import TurnRequest, Turns
from .stream import RunStream

__all__ = ["AgentSession"]


class AgentSession:
    """A conversation with one controller: memory, variables and tasks carry over between
    `arun` calls; the tasks are cancelled when the session closes."""

    def __init__(self, run: ControllerRun, turns: Turns) -> None:
        self._run = run
        self._turns = turns
        self._taken = 0

    @property
    def scope(self) -> RunScope:
        """The session's task scope (for inspection from Python)."""
        return self._run.scope

    async def arun(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
    ) -> Any:
        """Continue the conversation with `task`; calls are served one at a time. Each turn
        has the run's task quota (`max_tasks_per_scope`) of its own."""
        request = TurnRequest(
            task=task, additional_args=additional_args, max_steps=max_steps, guidance=guidance
        )
        return await self._turn(request, None)

    def astream(
        self,
        task: str,
        *,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
        guidance: bool = False,
        max_buffered: int = 10_000,
    ) -> RunStream:
        """One turn as a `RunStream` (see `AsyncAgent.astream`); closing it cancels the turn
        (the session's tasks from earlier turns stay the session's)."""
        self._turns.check_open()
        request = TurnRequest(
            task=task, additional_args=additional_args, max_steps=max_steps, guidance=guidance
        )

        async def start(feed: RunFeed) -> Any:
            return await self._turn(request, feed)

        return RunStream(start, max_buffered=max_buffered)

    async def _turn(self, request: TurnRequest, feed: RunFeed | None) -> Any:
        reset = self._taken == 0
        self._taken += 1
        with self._turns.entered():
            self._run.scope.begin_turn()
            return await self._turns.take(self._run, request, reset=reset, feed=feed)
