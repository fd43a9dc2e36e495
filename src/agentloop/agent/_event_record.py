"""A streamed, journaled run records its events in the journal, so any process can replay them.

A run service answers a client from whichever process it reaches: the events of a run started
on another replica, or of a run whose process died and which another replica resumed, must be
readable where the client is. So a journaled run with a stream adds each event (except the
model's words as it writes them, which are many and which the next `step` event holds whole)
to its journal as an `EntryKind.EVENT` entry, through the same group commit as everything else;
the entry's seq is the event's id. A client is only ever shown committed events (see
`agentloop.serve`), so what it saw is exactly what a later process reads back.

A resumed run executes its recorded steps again, and its stream shows them again; the journal
holds them already. The recorder knows what the earlier attempts recorded (`Replay
.recorded_events`) and skips an event that says the same thing (the same step, the same task
transition), so the journal's events are each recorded once across attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from .._text import json_value
from ..engine._run_journal import RunJournal
from ..errors import InvalidArgumentsError
from ..journal._writer import RunLog
from ..journal.base import EntryKind, JournalEntry
from ._feed import RunFeed
from ._run import ControllerRun
from .run_events import RunEvent, RunEventKind

__all__ = [
    "MAX_LABELS",
    "EventRecorder",
    "checked_labels",
    "event_key",
    "record_events",
    "stored_event",
]

MAX_LABELS = 20
MAX_LABEL_CHARS = 200

_NOT_STORED = {"version", "run_id", "seq"}
_LIVE_ONLY = frozenset({RunEventKind.MODEL_DELTA, RunEventKind.EVENTS_DROPPED})
"""Never recorded: the words as written (the `step` event holds them) and the stream's own gap
marker (the journal has no gap)."""
_TERMINAL = frozenset(
    kind.value
    for kind in (
        RunEventKind.TASK_COMPLETED,
        RunEventKind.TASK_FAILED,
        RunEventKind.TASK_CANCELLED,
        RunEventKind.TASK_TIMED_OUT,
    )
)


class EventRecorder:
    """Adds one run attempt's stream events to its journal log."""

    def __init__(
        self,
        log: RunLog,
        recorded: Iterable[JournalEntry] = (),
        usage: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """`recorded`: the `EVENT` entries earlier attempts wrote; `usage`: what the run spent
        so far, for the end event."""
        self._log = log
        self._usage = usage
        self._seen: set[Hashable] = set()
        self._resumed = False
        for entry in recorded:
            self._resumed = True
            self._seen.add(event_key(str(entry.data.get("kind")), entry.data))

    def record(self, event: RunEvent) -> None:
        """On the loop, as the stream's feed takes `event`."""
        kind = event.kind
        if kind in _LIVE_ONLY or kind.is_end:
            return  # the end is written with the run's end (`ended`), in the same commit
        if kind is RunEventKind.RUN_STARTED and self._resumed:
            return  # the run started once; this attempt says `run_resumed`
        data = stored_event(event.to_dict())
        key = event_key(kind.value, data)
        if key is not None:
            if key in self._seen:
                return
            self._seen.add(key)
        self._log.add(EntryKind.EVENT, data)

    def ended(self, *, answer: Any = None, error: str | None = None) -> None:
        """The run's last event (`final_answer`, or `run_failed` with `error`), queued just
        before its end so that one commit writes both."""
        data: dict[str, Any] = {"at": time.time()}
        if error is None:
            data["kind"] = RunEventKind.FINAL_ANSWER.value
            data["answer"] = json_value(answer)
        else:
            data["kind"] = RunEventKind.RUN_FAILED.value
            data["error"] = error
        if self._usage is not None:
            data["usage"] = dict(self._usage())
        self._log.add(EntryKind.EVENT, data)

    def parked(self, approval_ids: list[str]) -> None:
        """The run's `run_parked` event (this attempt's last), queued just before its end."""
        data: dict[str, Any] = {
            "at": time.time(),
            "kind": RunEventKind.RUN_PARKED.value,
            "approval_ids": approval_ids,
        }
        if self._usage is not None:
            data["usage"] = dict(self._usage())
        self._log.add(EntryKind.EVENT, data)


def stored_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's `to_dict()` as the journal stores it: without what the entry itself says."""
    return {name: value for name, value in event.items() if name not in _NOT_STORED}


def event_key(kind: str, data: Mapping[str, Any]) -> Hashable | None:
    """What makes an event the same one again when a resumed run shows it twice: a step by
    its number, a task transition by task, kind and attempt; `None` for events that may
    truly happen again (a retried model call, a fallback)."""
    if kind == RunEventKind.STEP.value:
        step = data.get("step")
        return (kind, step.get("number")) if isinstance(step, Mapping) else None
    if "approval_id" in data:  # a nested run's request names its agent and run too
        return (kind, data["approval_id"])
    task_event = data.get("task_event")
    if isinstance(task_event, Mapping):
        if kind in _TERMINAL:  # a task ends once (a replayed end says attempt 0)
            return (kind, task_event.get("task_id"))
        return (kind, task_event.get("task_id"), task_event.get("attempt"))
    if kind == RunEventKind.RUN_STARTED.value:
        return (kind,)
    return None


def record_events(feed: RunFeed, journal: RunJournal, run: ControllerRun) -> EventRecorder:
    """Make `feed` record the run's events in `journal` (skipping what a resumed run's
    earlier attempts recorded); the run's end is recorded by its `DurableRun`."""

    def usage() -> Mapping[str, Any]:
        budget = run.budget
        return budget.as_dict() if budget is not None else {}

    replay = journal.replay
    recorder = EventRecorder(
        journal.log, replay.recorded_events if replay is not None else (), usage
    )
    feed.recorder = recorder.record
    return recorder


def checked_labels(labels: object) -> dict[str, str] | None:
    """`astream(labels=...)`: at most `MAX_LABELS` short printable strings by short names, or
    `InvalidArgumentsError` saying what is wrong (they are shown and stored as they are)."""
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise InvalidArgumentsError(
            f"`labels` must be a mapping of strings, received {type(labels).__name__}."
        )
    if len(labels) > MAX_LABELS:
        raise InvalidArgumentsError(f"`labels` has {len(labels)} entries; at most {MAX_LABELS}.")
    for name, value in labels.items():
        for what, text in (("name", name), ("value", value)):
            if type(text) is not str or len(text) > MAX_LABEL_CHARS:
                raise InvalidArgumentsError(
                    f"a label {what} must be a string of at most {MAX_LABEL_CHARS} "
                    f"characters, received {type(text).__name__} {str(text)[:40]!r}."
                )
    return {str(name): str(value) for name, value in labels.items()}
