"""Parking a journaled run that only waits for people: it stops, and holds nothing.

`create_async_agent(..., park_after=60.0)`: a journaled run whose only unfinished tasks await
approval, while its code waits for them, is idle; after `park_after` seconds of that its scope's
`IdleWatch` (`engine/_parking.py`) calls `Parking.idle`. The attempt then stops as a cancelled
one does (the controller is interrupted and its thread goes back to the pool, the scope cancels
the waiting tasks and releases their slots, the run leaves the agent's memory), but its journal
records it *parked* instead of cancelled: the tasks it waits on (a `parked` entry), a
`run_parked` event for a streamed run, and the status `parked` with no lease.

Why stop rather than wait cheaply in memory: a run whose decision comes days later, in another
process, or never, would otherwise keep a controller thread blocked in `wait_for_tasks` (the
model's code is synchronous: its stack cannot be saved). The journal already replays a run to
where it stopped without calling the model or rerunning a task, so the decision is recorded there
(`agent.decide`, `_decisions`) and the run resumes from it in any process.

The tasks the run parked on had not started (they awaited approval), so a resume starts them
afresh (`Replay.parked`), asking for approval again or taking the recorded decision; they never
count as "outcome unknown".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..core.approvals import ApprovalRequest
from ..errors import InvalidArgumentsError, RunParkedError
from ._feed import RunFeed, _json_arguments
from ._run import ControllerRun

__all__ = ["Parking", "check_park_after", "live_request", "parked_error", "stored_request"]


def check_park_after(park_after: float | None, *, journaled: bool) -> float | None:
    """`park_after` as `create_async_agent` takes it: `None` (never park), or positive seconds,
    only with a journal (a parked run lives on only in its journal)."""
    if park_after is None:
        return None
    if (
        isinstance(park_after, bool)
        or not isinstance(park_after, (int, float))
        or not math.isfinite(park_after)
        or park_after <= 0
    ):
        raise InvalidArgumentsError(
            f"`park_after` must be a positive number of seconds or None, received {park_after!r}."
        )
    if not journaled:
        raise InvalidArgumentsError(
            '`park_after` needs a journal (`journal="runs.sqlite"`): a parked run keeps '
            "nothing in memory, so only its journal can resume it once the decision comes."
        )
    return float(park_after)


def stored_request(request: ApprovalRequest) -> dict[str, Any]:
    """A request as the `parked` entry keeps it: arguments as bounded JSON values (what a UI
    shows; the task's real arguments are its submission's, replayed by the model's code)."""
    return {
        "task_id": request.task_id,
        "target": request.target,
        "arguments": _json_arguments(list(request.arguments.items())[:20]),
        "asked_by": list(request.asked_by),
    }


def live_request(request: ApprovalRequest) -> ApprovalRequest:
    """A live task's request as `pending_approvals` shows any: arguments as bounded JSON."""
    return replace(request, arguments=stored_request(request)["arguments"])


def parked_error(run_id: str, approval_ids: Iterable[str]) -> RunParkedError:
    ids = tuple(approval_ids)
    shown = ", ".join(f"`{task_id}`" for task_id in ids)
    return RunParkedError(
        f"run `{run_id}` parked: it waits for a decision on {shown} and holds nothing "
        f"meanwhile. Decide with `await agent.decide({run_id!r}, task_id, "
        "ApprovalDecision.approve())` (or `.reject(reason)`), from any process with this "
        f"journal, then resume it with `await agent.resume({run_id!r})`.",
        run_id=run_id,
        approval_ids=ids,
    )


class Parking:
    """What a journaled run does when its scope says it only waits for approvals."""

    def __init__(self, run: ControllerRun, feed: RunFeed | None) -> None:
        self._run = run
        self._feed = feed
        self.requests: list[dict[str, Any]] | None = None
        """The requests the run parked on (stored form), once it has."""

    @property
    def approval_ids(self) -> list[str]:
        return [request["task_id"] for request in self.requests or ()]

    def idle(self, requests: list[ApprovalRequest]) -> None:
        """On the loop: park. The stream shows nothing more of this attempt (its interrupted
        step is not the run's: the resumed run shows the real one), then the run stops."""
        self.requests = [stored_request(request) for request in requests]
        if self._feed is not None:
            self._feed.mute()
        self._run.stop()
