"""What every SQL journal shares: reading a run's row, and deciding whether a claim may go on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import JournalError, JournalMismatchError, RunLeasedError
from .base import LeaseHolder, RunStatus, RunSummary, holder_is_gone

__all__ = ["check_claim", "summary_from_row"]


def summary_from_row(row: Sequence[Any]) -> RunSummary:
    """A `RunSummary` from the columns `run_id, status, task, fingerprint, started_at,
    updated_at, attempts, steps, tasks, answer, error, holder_token, holder_host, holder_pid,
    lease_expires`."""
    (run_id, status, task, fingerprint, started, updated, attempts, steps, tasks) = row[:9]
    answer, error, token, host, pid, expires = row[9:15]
    try:
        run_status = RunStatus(status)
    except ValueError:
        raise JournalError(f"run `{run_id}` has an unknown status {status!r}.") from None
    return RunSummary(
        run_id=run_id,
        status=run_status,
        task=task,
        started_at=float(started),
        updated_at=float(updated),
        steps=int(steps),
        tasks=int(tasks),
        attempts=int(attempts),
        stored_answer=None if answer is None else _loaded(answer),
        error=error,
        fingerprint=fingerprint,
        holder=None if token is None else LeaseHolder(token=token, host=host, pid=int(pid)),
        lease_expires=None if expires is None else float(expires),
    )


def _loaded(answer: Any) -> Any:
    return json.loads(answer) if isinstance(answer, str) else answer


def check_claim(
    previous: RunSummary, *, task: str, fingerprint: str, now: float, force: bool
) -> None:
    """Raise unless an unfinished run may be resumed by a new holder now."""
    holder, expires = previous.holder, previous.lease_expires
    if holder is not None and expires is not None and expires > now and not holder_is_gone(holder):
        left = expires - now
        raise RunLeasedError(
            f"run `{previous.run_id}` is being run by pid {holder.pid} on `{holder.host}` "
            f"(its lease ends in {left:.0f}s unless renewed); exactly one process runs a run. "
            "Resume it after that process has stopped."
        )
    if force:
        return
    if previous.task != task:
        raise JournalMismatchError(
            f"run `{previous.run_id}` was started with another task "
            f"({_quoted(previous.task)}, now {_quoted(task)}); a resumed run must do the same "
            "work. Use a new run id, or pass `force=True` to resume it with this task."
        )
    if previous.fingerprint != fingerprint:
        raise JournalMismatchError(
            f"run `{previous.run_id}` was recorded by an agent configured differently (its "
            "model, tools, managed agents or instructions changed), so its recorded steps may "
            "not fit this agent. Use a new run id, or pass `force=True` to replay it anyway."
        )


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
