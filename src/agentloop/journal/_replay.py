"""The recorded past of a resumed run, handed out one call at a time.

A resumed run executes its recorded steps again: the model's replies come from the journal and
its code runs again, making the same task-tool calls in the same order. Each call takes the
next *call entry* (a model reply, a submission, a wait, a sleep, a read) and must match it; the
*event entries* recorded between calls (task outcomes, approval decisions, restarted attempts)
are handed to the scope just before the next call is answered, so the code sees exactly the
task states it saw the first time. When the last call entry is taken the run goes live.

Model replies are taken in the controller thread, everything else on the loop; one lock orders
them (the two never overlap for one run: the controller waits for each tool call).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..errors import RunDivergedError
from ._codec import decode
from ._types import BUILTIN_TYPES, JournalTypes
from .base import EntryKind, JournalEntry

__all__ = ["Replay"]

EVENT_KINDS = frozenset(
    {EntryKind.OUTCOME, EntryKind.APPROVAL, EntryKind.ATTEMPT, EntryKind.PARKED, EntryKind.REMOTE}
)


class Replay:
    """A cursor over a run's recorded entries."""

    def __init__(
        self, entries: Sequence[JournalEntry], types: JournalTypes = BUILTIN_TYPES
    ) -> None:
        """`types`: the classes the results may be built of (the agent's `journal_types`)."""
        self._entries = [e for e in entries if e.kind is not EntryKind.EVENT]
        self.recorded_events = [e for e in entries if e.kind is EntryKind.EVENT]
        """The events an earlier attempt recorded (a resumed stream records no event twice)."""
        self._last_seq = entries[-1].seq if entries else 0
        self._lock = threading.Lock()
        self._next = 0
        self._events: list[JournalEntry] = []
        """Event entries passed by the cursor, not yet handed to the scope."""
        self.outcomes = {e.data["task_id"]: e for e in self._entries if e.kind is EntryKind.OUTCOME}
        self.approvals = {
            e.data["task_id"]: e for e in self._entries if e.kind is EntryKind.APPROVAL
        }
        self.attempts: dict[str, int] = {}
        """The highest attempt number recorded for each task that started more than once."""
        for e in self._entries:
            if e.kind is EntryKind.ATTEMPT:
                task_id, number = e.data["task_id"], int(e.data["attempt"])
                self.attempts[task_id] = max(number, self.attempts.get(task_id, 1))
        self.remote = {
            e.data["task_id"]: e.data["handle"] for e in self._entries if e.kind is EntryKind.REMOTE
        }
        """The last handle on remote work each task recorded (`EntryKind.REMOTE`)."""
        self.results = {
            task_id: decode(e.data["result"], f"the result of task `{task_id}`", types)
            for task_id, e in self.outcomes.items()
            if e.data.get("status") == "completed"
        }
        """Completed tasks' results, decoded once (a `Replay` is made off the loop)."""
        self.parked = parked_tasks(self._entries)
        """Tasks the run parked on that have not started since: they never ran, so a resume
        starts them afresh instead of treating them as in flight."""
        self._calls_left = sum(1 for e in self._entries if e.kind not in EVENT_KINDS)
        self.model_replies = sum(1 for e in self._entries if e.kind is EntryKind.MODEL_REPLY)

    @property
    def done(self) -> bool:
        """Every recorded call has been replayed: the run is live from here on."""
        return self._calls_left == 0

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def take(self, kind: EntryKind, what: str) -> JournalEntry | None:
        """The next call entry, which must be of `kind`; `None` once the past is used up."""
        with self._lock:
            if self._calls_left == 0:
                return None
            entries = self._entries
            while entries[self._next].kind in EVENT_KINDS:
                self._events.append(entries[self._next])
                self._next += 1
            entry = entries[self._next]
            if entry.kind is not kind:
                raise RunDivergedError(
                    f"replaying the run, its code made {what} where the journal recorded "
                    f"{_described(entry)} (entry {entry.seq}). The run's code did not do the "
                    "same thing again: what the model's code depends on (time, randomness, "
                    "files, another service) changed. Start it under a new run id."
                )
            self._next += 1
            self._calls_left -= 1
            return entry

    def events(self) -> list[JournalEntry]:
        """The event entries passed so far and not yet handed out (all of them once done)."""
        with self._lock:
            if self._calls_left == 0:
                self._events.extend(self._entries[self._next :])
                self._next = len(self._entries)
            events, self._events = self._events, []
            return events


def parked_tasks(entries: Sequence[JournalEntry]) -> frozenset[str]:
    """The tasks of the run's last `parked` entry with no `attempt` or `outcome` after it."""
    last = next(
        (i for i in range(len(entries) - 1, -1, -1) if entries[i].kind is EntryKind.PARKED), None
    )
    if last is None:
        return frozenset()
    waiting = {str(a.get("task_id")) for a in entries[last].data.get("approvals", ())}
    for entry in entries[last + 1 :]:
        if entry.kind in (EntryKind.ATTEMPT, EntryKind.OUTCOME):
            waiting.discard(str(entry.data.get("task_id")))
    return frozenset(waiting)


def _described(entry: JournalEntry) -> str:
    data = entry.data
    if entry.kind is EntryKind.SUBMITTED:
        return f"the submission of `{data.get('task_id')}` (`{data.get('target')}`)"
    if entry.kind is EntryKind.LOOKED:
        return f"a `{data.get('call')}` call"
    return {
        EntryKind.MODEL_REPLY: "a model call",
        EntryKind.WAITED: "a wait",
        EntryKind.SLEPT: "a sleep",
    }.get(entry.kind, entry.kind.value)


def check_submission(entry: JournalEntry, task_id: str, target: str, digest: str) -> None:
    """A replayed submission must be the recorded one: same target, same id, and the same
    arguments (`digest`, see `_digest`; an entry written before digests has none and is
    accepted)."""
    data = entry.data
    if data.get("task_id") != task_id or data.get("target") != target:
        raise RunDivergedError(
            f"replaying the run, its code submitted `{task_id}` (`{target}`) where the journal "
            f"recorded {_described(entry)} (entry {entry.seq}). The run's code did not do the "
            "same thing again; start it under a new run id."
        )
    recorded = data.get("args")
    if recorded is not None and recorded != digest:
        raise RunDivergedError(
            f"replaying the run, its code submitted `{task_id}` (`{target}`) with other "
            f"arguments than the journal recorded (entry {entry.seq}), so its recorded outcome "
            "is not this call's. What the model's code depends on (`additional_args`, time, "
            "randomness, files, another service) changed. Start it under a new run id."
        )
