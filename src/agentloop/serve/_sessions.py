"""Conversations over the service: a session is an `agent.session()` held open by this
process, and each message is its next turn, run in the background like any run.

A session takes one turn at a time; what a second message does while a turn runs is the
service's `busy` policy:

- `"reject"` (the default): 409, the client retries when the turn has ended;
- `"queue"`: the message waits for the turn before it, in order;
- `"interrupt"`: the running turn is cancelled and the new message starts at once.

A session lives in the process that opened it (its turns' events are served from there). With
a journal it survives that process: opening it again by id, anywhere, replays its turns.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from ..agent.session import AgentSession
from ._auth import Principal
from ._guard import Refused
from ._runs import LiveRun, RunService, ServedAgent

__all__ = ["Busy", "SessionBook"]

logger = logging.getLogger("agentloop")


class Busy(enum.StrEnum):
    """What a message to a session whose turn is still running does."""

    REJECT = "reject"
    QUEUE = "queue"
    INTERRUPT = "interrupt"


@dataclass(eq=False)
class _Session:
    session_id: str
    served: ServedAgent
    principal: str
    session: AgentSession
    exits: AsyncExitStack
    turns: list[str] = field(default_factory=list)
    current: LiveRun | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionBook:
    """The sessions this process holds."""

    def __init__(self, runs: RunService, busy: Busy, max_sessions: int = 1000) -> None:
        self._runs = runs
        self._busy = busy
        self._max = max_sessions
        self._sessions: dict[str, _Session] = {}

    async def open(
        self, served: ServedAgent, principal: Principal, session_id: str | None
    ) -> dict[str, Any]:
        if session_id is not None and session_id in self._sessions:
            found = self._sessions[session_id]
            _check(principal, found)
            return self._shape(found)
        if len(self._sessions) >= self._max:
            raise Refused(429, f"this service holds {self._max} sessions already.")
        journaled = served.agent.journal is not None
        chosen = session_id or f"sess-{uuid.uuid4().hex[:16]}"
        exits = AsyncExitStack()
        opened = served.agent.session(chosen if journaled else None)
        session = await exits.enter_async_context(opened)
        found = _Session(chosen, served, principal.name, session, exits)
        self._sessions[chosen] = found
        return self._shape(found)

    def get(self, session_id: str, principal: Principal) -> dict[str, Any]:
        return self._shape(self._find(session_id, principal))

    async def message(self, session_id: str, task: str, principal: Principal) -> LiveRun:
        """Start the session's next turn (per the busy policy)."""
        found = self._find(session_id, principal)
        current = found.current
        if current is not None and current.ended_at is None:
            if self._busy is Busy.REJECT:
                raise Refused(
                    409,
                    f"session `{session_id}` is still answering turn {len(found.turns)}; "
                    "send the next message when it has ended.",
                )
            if self._busy is Busy.INTERRUPT and current.stream is not None:
                current.stream.cancel()
        async with found.lock:  # QUEUE waits here; the others find the turn ended or ending
            if found.current is not None:
                await self._runs.wait(found.current)
            turn_id = f"{session_id}.{len(found.turns) + 1}"
            found.turns.append(turn_id)
            stream = found.session.astream(task)
            found.current = self._runs.start(
                found.served,
                task,
                principal,
                run_id=turn_id,
                stream=stream,
                session_id=session_id,
            )
            return found.current

    async def aclose(self) -> None:
        for found in list(self._sessions.values()):
            try:
                await found.exits.aclose()
            except Exception:  # one session failing to close leaves the others to close
                logger.exception("session %s did not close cleanly", found.session_id)
        self._sessions.clear()

    def _find(self, session_id: str, principal: Principal) -> _Session:
        found = self._sessions.get(session_id)
        if found is None:
            raise Refused(404, f"no session `{session_id}` in this process.")
        _check(principal, found)
        return found

    def _shape(self, found: _Session) -> dict[str, Any]:
        current = found.current
        return {
            "session_id": found.session_id,
            "agent": found.served.name,
            "principal": found.principal,
            "turns": list(found.turns),
            "busy": current is not None and current.ended_at is None,
        }


def _check(principal: Principal, found: _Session) -> None:
    if not principal.may_see(found.principal):
        raise Refused(404, f"no session `{found.session_id}` in this process.")
