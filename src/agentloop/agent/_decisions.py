"""Deciding a parked run's approvals from the journal, in any process.

A parked run (`_parking`) is nowhere in memory: its journal is all there is. So its pending
approvals are read from there, and a decision is written there, as the `approval` entry the run
itself would have written; the replay of the resumed run answers the task's approval from it
(`RunJournal.recorded_decision`), so the person is not asked again.

**Where the pending approvals come from.** The run's `parked` entry, written when it parked,
lists each task it waits on (task id, target, bounded JSON arguments, who asked); a task is
pending until an `approval` entry (or its start: an `attempt`) follows. Not the stream's
`approval_requested` events: only a streamed run records those, and a run started with `arun`
parks too. The entry is also what tells a resume that those tasks never started (`Replay.parked`).

**One decision at a time.** A decision takes the run's lease (`Journal.claim`), reads its
entries under it, appends the `approval` entry and gives the lease back, the run now `running`
with no holder: resumable by any process, at once (`agent.resume`, `arun(task, run_id=...)`,
or `agent.recover()`). Two processes deciding at once: one claims, the other's claim finds the
lease live and retries (a decision holds it for a few milliseconds) until it can read what the
first wrote, so a second decision on the same task is "already decided", never a second entry.
A run that is running somewhere (its lease held by a live attempt) is not decided from here: its
own stream decides it (`stream.approve`), or this call once it parks again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..core.approvals import ApprovalDecision, ApprovalRequest
from ..errors import AgentloopError, JournalMismatchError, RunLeasedError, UnknownRunError
from ..journal.base import EntryKind, Journal, JournalEntry, LeaseHolder, RunStatus, RunSummary
from ._durable import CALL_SEPARATOR

__all__ = ["CLAIM_RETRIES", "pending_in", "read_pending", "record_decision"]

CLAIM_RETRIES = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
"""Pauses between claims while another process holds the run (about 0.3 s in all): a decision
holds it for a few milliseconds; a run that is running holds it for longer and is refused."""

_WAITING = (RunStatus.PARKED, RunStatus.RUNNING)


def pending_in(run_id: str, entries: Sequence[JournalEntry]) -> list[ApprovalRequest]:
    """The approvals the run's last `parked` entry lists and nothing has decided (or started)
    since, as `ApprovalRequest`s whose arguments are the bounded JSON values it stored."""
    last = next(
        (i for i in range(len(entries) - 1, -1, -1) if entries[i].kind is EntryKind.PARKED), None
    )
    if last is None:
        return []
    done = {
        str(e.data.get("task_id"))
        for e in entries[last + 1 :]
        if e.kind in (EntryKind.APPROVAL, EntryKind.ATTEMPT, EntryKind.OUTCOME)
    }
    return [
        ApprovalRequest(
            run_id=run_id,
            task_id=str(item.get("task_id")),
            target=str(item.get("target")),
            arguments=dict(item.get("arguments") or {}),
            asked_by=tuple(item.get("asked_by") or ()),
        )
        for item in entries[last].data.get("approvals", ())
        if str(item.get("task_id")) not in done
    ]


def read_pending(journal: Journal, run_id: str) -> list[ApprovalRequest]:
    """In a worker thread: what a run waits for, from its journal (none unless it waits)."""
    summary = _summary(journal, run_id)
    if summary.status not in _WAITING:
        return []
    return pending_in(run_id, journal.entries(run_id))


def record_decision(
    journal: Journal,
    run_id: str,
    task_id: str,
    decision: ApprovalDecision,
    *,
    fingerprint: str,
    lease_seconds: float,
) -> None:
    """In a worker thread: record `decision` on the parked run's task `task_id` and leave the
    run resumable; raise if it is unknown, does not wait on that task, or it was decided."""
    for pause in (*CLAIM_RETRIES, None):
        try:
            _record_once(journal, run_id, task_id, decision, fingerprint, lease_seconds)
            return
        except RunLeasedError as exc:
            if pause is None:
                raise RunLeasedError(
                    f"{exc} It is not parked: decide its task through the run's stream "
                    "(`stream.approve` / `stream.reject`), or here once it parks."
                ) from None
            time.sleep(pause)  # another decision holds the lease for a moment


def _record_once(
    journal: Journal,
    run_id: str,
    task_id: str,
    decision: ApprovalDecision,
    fingerprint: str,
    lease_seconds: float,
) -> None:
    summary = _summary(journal, run_id)
    _check_waiting(summary)
    if summary.fingerprint.split(CALL_SEPARATOR)[0] != fingerprint:
        raise JournalMismatchError(
            f"run `{run_id}` was recorded by an agent configured differently (its model, "
            "tools, managed agents or instructions); decide it with the agent that runs it."
        )
    holder = LeaseHolder()
    claim = journal.claim(
        run_id,
        task=summary.task,
        fingerprint=summary.fingerprint,
        holder=holder,
        lease_seconds=lease_seconds,
        force=False,
    )
    previous = claim.previous
    if previous is None:  # cannot happen: the run exists; give the row back as it was made
        journal.finish(run_id, holder, RunStatus.FAILED, error="created by a decision")
        raise UnknownRunError(f"no run `{run_id}` in the journal.")
    if previous.status is RunStatus.COMPLETED:  # its claim took no lease
        _check_waiting(previous)
    try:
        _check_waiting(previous)
        submitted = _waited_on(run_id, task_id, claim.entries)
        entry = JournalEntry(
            seq=claim.entries[-1].seq + 1 if claim.entries else 1,
            kind=EntryKind.APPROVAL,
            data={
                "task_id": task_id,
                "approved": decision.approved,
                "reason": decision.reason,
                "args": submitted.get("args"),
                "decided_at": time.time(),
            },
        )
        journal.append(run_id, holder, [entry], lease_seconds)
    except BaseException:
        journal.finish(run_id, holder, previous.status, error=previous.error)  # as it was
        raise
    journal.finish(run_id, holder, RunStatus.RUNNING)  # released: any process resumes it


def _summary(journal: Journal, run_id: str) -> RunSummary:
    summary = journal.run(run_id)
    if summary is None:
        raise UnknownRunError(f"the journal has no run `{run_id}`.")
    return summary


def _check_waiting(summary: RunSummary) -> None:
    if summary.status not in _WAITING:
        raise AgentloopError(
            f"run `{summary.run_id}` is {summary.status.value}: it waits for no decision."
        )


def _waited_on(run_id: str, task_id: str, entries: Sequence[JournalEntry]) -> dict[str, Any]:
    """The submission of the task the parked run waits on; raise if it waits on no such task."""
    pending = {request.task_id for request in pending_in(run_id, entries)}
    if task_id not in pending:
        parked = any(e.kind is EntryKind.PARKED for e in entries)
        asked = any(
            e.kind is EntryKind.PARKED
            and any(item.get("task_id") == task_id for item in e.data.get("approvals", ()))
            for e in entries
        )
        if asked:
            raise AgentloopError(
                f"task `{task_id}` of run `{run_id}` was already decided; an approval is "
                "answered once."
            )
        waits = ", ".join(f"`{t}`" for t in sorted(pending)) or "nothing"
        state = "parked, and waits on " + waits if parked else "not parked (it never waited)"
        raise AgentloopError(
            f"run `{run_id}` does not wait for a decision on `{task_id}`: it is {state}. "
            "Only a task a parked run waits on can be decided here, once."
        )
    for entry in entries:
        if entry.kind is EntryKind.SUBMITTED and entry.data.get("task_id") == task_id:
            return dict(entry.data)
    return {}
