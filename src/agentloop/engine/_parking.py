"""When a run has nothing left to do but wait for a person: the idle watch that parks it.

A run whose tasks await approval keeps working on everything else. But once the only unfinished
tasks of its scope await approval and its code is blocked waiting for them (`wait_for_tasks`, a
direct call), the run can do nothing until a person answers, maybe days later: holding its
controller thread, its slots and its memory meanwhile costs a thread per waiting run. After
`after` seconds in that state the watch calls `on_idle` with the requests, once; the agent layer
then stops the attempt and records the run parked in its journal (`agent/_parking.py`).

Event-driven, no polling: the watch listens to its scope's task events only while a wait is in
progress, and each event (a task submitted, started, settled, asking for approval) re-arms one
timer if the state holds, or disarms it. The timer's callback checks the state again, so a
transition that made no event (a decision starting a task's slot wait) cannot park a run that
is busy. At the moment it fires, the pending requests stop taking answers through the stream
(the run is leaving; the decision goes through the journal instead), so no answer can slip in
between the park and the scope's close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..core.approvals import ApprovalRequest
from ..tasks import TaskEvent, TaskStatus
from ._bus import Listener
from ._table import TaskTable

__all__ = ["IdleWatch", "OnIdle"]

OnIdle = Callable[[list[ApprovalRequest]], None]
"""Called on the loop, once, with the requests the run waits on when it parks."""


class IdleWatch:
    """Parks one run scope that only waits for approvals (see the module docstring)."""

    def __init__(
        self,
        after: float,
        table: TaskTable,
        listen: Callable[[Callable[[TaskEvent], None]], Listener],
        on_idle: OnIdle,
    ) -> None:
        self._after = after
        self._table = table
        self._listen = listen
        self._on_idle = on_idle
        self._waits = 0
        self._listener: Listener | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.fired = False

    def wait_started(self) -> None:
        """On the loop: the run's code blocks in a wait from now on."""
        self._waits += 1
        if self._listener is None and not self.fired:
            self._listener = self._listen(self._on_event)
        self._arm()

    def wait_ended(self) -> None:
        self._waits -= 1
        if self._waits <= 0:
            self.close()

    def close(self) -> None:
        """Stop watching (the wait ended, or the scope closes)."""
        self._waits = max(self._waits, 0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _on_event(self, event: TaskEvent) -> None:
        self._arm()

    def _arm(self) -> None:
        """Start the idle time again if the run only waits for approvals; else stop it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.fired or not self._waits or not self._awaiting():
            return
        self._timer = asyncio.get_running_loop().call_later(self._after, self._fire)

    def _awaiting(self) -> list[ApprovalRequest]:
        """The requests of the scope's unfinished tasks if every one of them awaits approval
        (none running, queued or held), else nothing."""
        if self._table.reserved:  # submitted, on its way to the loop: about to run
            return []
        requests: list[ApprovalRequest] = []
        for record in self._table.unsettled():
            if record.status.is_final:  # ended: its event came before the table settles it
                continue
            pending = record.approval
            if record.status is not TaskStatus.AWAITING_APPROVAL or pending is None:
                return []
            requests.append(pending.request)
        return requests

    def _fire(self) -> None:
        self._timer = None
        requests = self._awaiting()
        if self.fired or not self._waits or not requests:
            return
        self.fired = True
        for record in self._table.unsettled():
            if record.approval is not None:
                record.approval.withdraw(
                    f"task `{record.task_id}` can no longer be decided through the run's "
                    "stream: the run parked (it waited only for decisions). Decide it with "
                    "`agent.decide(run_id, task_id, decision)`."
                )
        self.close()
        self._on_idle(requests)
