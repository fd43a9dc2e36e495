"""The parts of remote MCP tasks that need no server (fast, default suite): the polling pace,
the status shown as progress, and the journal's handles handed back on a resume."""

from __future__ import annotations

from types import SimpleNamespace

from agentloop.journal._replay import Replay
from agentloop.journal.base import EntryKind, JournalEntry
from agentloop.mcp._remote_task import FIRST_POLL, MAX_BACKOFF, POLL_BOUNDS, _next_delay, _progress


def state(**fields: object) -> SimpleNamespace:
    base = {"status": "working", "status_message": None, "poll_interval_ms": None}
    return SimpleNamespace(**{**base, **fields})


def test_the_pace_is_the_servers_hint_within_bounds_else_a_bounded_backoff() -> None:
    assert _next_delay(state(poll_interval_ms=250), FIRST_POLL) == 0.25
    assert _next_delay(state(poll_interval_ms=0), FIRST_POLL) == FIRST_POLL * 2
    assert _next_delay(state(poll_interval_ms=1), FIRST_POLL) == POLL_BOUNDS[0]
    assert _next_delay(state(poll_interval_ms=10**9), FIRST_POLL) == POLL_BOUNDS[1]
    delay = FIRST_POLL
    for _ in range(20):
        delay = _next_delay(state(), delay)
    assert delay == MAX_BACKOFF


def test_the_remote_status_reads_as_the_tasks_progress() -> None:
    assert str(_progress(state(status_message="step 2 of 4"))) == "remote working: step 2 of 4"
    assert str(_progress(state(status="completed"))) == "remote completed"


def test_a_replay_hands_back_the_last_handle_each_task_recorded() -> None:
    entries = [
        JournalEntry(1, EntryKind.SUBMITTED, {"task_id": "t1", "target": "build", "args": "d"}),
        JournalEntry(2, EntryKind.HANDLE, {"task_id": "t1", "handle": {"task_id": "a"}}),
        JournalEntry(3, EntryKind.HANDLE, {"task_id": "t1", "handle": {"task_id": "b"}}),
    ]
    replay = Replay(entries)
    assert replay.handles == {"t1": {"task_id": "b"}}
    assert replay.take(EntryKind.SUBMITTED, "a submission") is not None
    assert replay.done  # a handle is an event entry, not a call the code makes again
