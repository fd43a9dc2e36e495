"""How `agentloop runs` words a journal: one line per entry, lease states, JSON for scripts.

Everything here reads what a journal holds and never trusts it to be well formed: a journal may
come from another agentloop version or another machine, so a missing key or a value of an
unexpected type is shown as it is rather than raising. Stored results are read with the codec's
`preview` (plain JSON as is; tagged values built from agentloop's own types, an app's registered
class shown by name and fields, never built); a value pickled by agentloop 0.1 is shown by its
size and never unpickled (unpickling runs code the journal names). Text from the journal is written
to a terminal, so control characters (escape sequences) are shown escaped, never sent.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any, assert_never

from .._text import shown
from ..errors import JournalError
from ..journal._codec import preview
from ..journal.base import EntryKind, JournalEntry, RunStatus, RunSummary, holder_is_gone
from .view import shorten

__all__ = [
    "LeaseState",
    "age",
    "answer_text",
    "entry_json",
    "entry_summary",
    "lease_left",
    "lease_state",
    "local_time",
    "oneline",
    "readable",
    "stored_value",
    "summary_json",
]

LINE_WIDTH = 100
"""Most characters of an entry's summary shown on its line."""
IDS_SHOWN = 6
"""Task ids listed on a `waited` line before `+N more`."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class LeaseState(enum.StrEnum):
    """What a running run's lease says about the process that holds it."""

    LIVE = "live"
    """Held and not expired: a process is running the run (or died on another host)."""
    STALE = "stale"
    """Not expired, but the holder ran on this host and its process is gone: a resume takes
    the run over at once."""
    EXPIRED = "expired"
    """Not renewed in time: the holder stopped or hangs; a resume takes the run over."""
    RELEASED = "released"
    """No holder: the run was handed back (its agent shut down, or recovery stopped), so any
    process resumes it at once (`agent.recover()`)."""


def lease_state(summary: RunSummary, now: float) -> LeaseState | None:
    """The lease's state for a running run, else `None`."""
    if summary.status is not RunStatus.RUNNING:
        return None
    if summary.holder is None:
        return LeaseState.RELEASED
    if summary.lease_expires is not None and summary.lease_expires <= now:
        return LeaseState.EXPIRED
    if holder_is_gone(summary.holder):
        return LeaseState.STALE
    return LeaseState.LIVE


def readable(text: str) -> str:
    """`text` with control characters other than newline and tab shown as escapes."""
    return _CONTROL.sub(_escaped, text)


def oneline(text: str) -> str:
    """`text` on one line: newlines, tabs and other control characters shown as escapes."""
    return _CONTROL_OR_NEWLINE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def local_time(timestamp: float) -> str:
    """`2026-12-01 11:42:03` in the local time zone."""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def age(timestamp: float, now: float) -> str:
    """How long ago `timestamp` was: `4s ago`, `3m ago`, `2h ago`, `5d ago`."""
    return f"{_span(now - timestamp)} ago"


def lease_left(summary: RunSummary, now: float) -> str | None:
    """How long a live lease has left (`12s left`), else `None`."""
    if lease_state(summary, now) is not LeaseState.LIVE or summary.lease_expires is None:
        return None
    return f"{_span(summary.lease_expires - now)} left"


def _span(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


# -- entries ----------------------------------------------------------------------------------


def entry_summary(entry: JournalEntry) -> str:
    """One readable line of what `entry` recorded (at most about `LINE_WIDTH` characters)."""
    data = entry.data
    if not isinstance(data, Mapping):
        return _cut(shown(data, LINE_WIDTH))
    kind = entry.kind
    if kind is EntryKind.MODEL_REPLY:
        return _model_reply(data)
    if kind is EntryKind.SUBMITTED:
        return f"{_text(data.get('task_id'))} → {_text(data.get('target'))}"
    if kind is EntryKind.APPROVAL:
        approved = data.get("approved")
        verdict = "approved" if approved is True else "rejected" if approved is False else "?"

        reason = data.get("reason")
        detail = f" ({_cut(oneline(str(reason)), 60)})" if reason else ""
        return f"{_text(data.get('task_id'))} {verdict}{detail}"
    if kind is EntryKind.OUTCOME:
        return _outcome(data)
    if kind is EntryKind.WAITED:
        return f"completed {_ids(data.get('completed'))}; failed {_ids(data.get('failed'))}"
    if kind is EntryKind.SLEPT:
        seconds = data.get("seconds")
        return f"{seconds:g}s" if isinstance(seconds, int | float) else _text(seconds)
    if kind is EntryKind.LOOKED:
        call = data.get("call")
        return _cut(oneline(call) if isinstance(call, str) else shown(call, LINE_WIDTH))
    if kind is EntryKind.TURN_STARTED:
        return _cut(f"turn {_text(data.get('turn'))}: {_text(data.get('task'))}")
    if kind is EntryKind.TURN_ENDED:
        error = data.get("error")
        detail = f" ({_cut(oneline(str(error)), 60)})" if error else ""
        return f"turn {_text(data.get('turn'))} {_text(data.get('status'))}{detail}"
    if kind is EntryKind.ATTEMPT:
        return f"{_text(data.get('task_id'))} attempt {_text(data.get('attempt'))}"
    if kind is EntryKind.EVENT:
        task_event = data.get("task_event")
        about = task_event.get("task_id") if isinstance(task_event, Mapping) else None
        return _cut(f"{_text(data.get('kind'))}" + (f" {_text(about)}" if about else ""))
    if kind is EntryKind.REMOTE:
        return f"{_text(data.get('task_id'))} remote task {_text(data.get('handle'))}"
    if kind is EntryKind.PARKED:
        approvals = data.get("approvals")
        ids = (
            [a.get("task_id") for a in approvals if isinstance(a, Mapping)]
            if isinstance(approvals, list)
            else []
        )
        return _cut(f"waiting for a decision on {_ids(ids)}")
    assert_never(kind)


def _model_reply(data: Mapping[str, Any]) -> str:
    content = data.get("content")
    lines = [line for line in str(content or "").splitlines() if line.strip()]
    tokens = f" · {_text(data.get('input_tokens'))} in, {_text(data.get('output_tokens'))} out"
    if not lines:
        return "(no content)" + tokens
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    first = _cut(oneline(lines[0].strip()), LINE_WIDTH - len(more) - len(tokens))
    return first + more + tokens


def _outcome(data: Mapping[str, Any]) -> str:
    head = f"{_text(data.get('task_id'))} {_text(data.get('status'))}"
    error = data.get("error")
    if error:
        first = (str(error).strip().splitlines() or [""])[0]
        return f"{head}: {_cut(oneline(first), LINE_WIDTH - len(head))}"
    result = data.get("result")
    if result is None:
        return head
    return f"{head}: {_cut(stored_value(result), LINE_WIDTH - len(head))}"


def stored_value(stored: object) -> str:
    """A stored (encoded) value, shortened: its repr when JSON or tagged JSON,
    `<pickled N bytes>` when pickled by agentloop 0.1 (never unpickled)."""
    if isinstance(stored, Mapping) and ("json" in stored or "typed" in stored):
        return oneline(shown(_previewed(stored), LINE_WIDTH))
    if isinstance(stored, Mapping) and isinstance(stored.get("pickle"), str):
        return f"<pickled {_base64_size(stored['pickle'])} bytes>"
    return oneline(shown(stored, LINE_WIDTH))


def _previewed(stored: Mapping[str, Any]) -> Any:
    """The value as the codec previews it, or the stored form itself when it is malformed
    (shown as it is, like any unexpected data here)."""
    try:
        return preview(stored)
    except JournalError:
        return stored


def _base64_size(text: str) -> int:
    """The decoded size of base64 `text`, without decoding it."""
    return max(len(text) * 3 // 4 - text[-2:].count("="), 0)


def _ids(value: object) -> str:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return _text(value)
    if not value:
        return "none"
    ids = [_cut(oneline(str(v)), 40) for v in value[:IDS_SHOWN]]
    more = f" +{len(value) - IDS_SHOWN} more" if len(value) > IDS_SHOWN else ""
    return ", ".join(ids) + more


def _text(value: object) -> str:
    """A recorded name or number as it reads: strings bare, anything else its short repr."""
    if value is None:
        return "?"
    return _cut(oneline(value), 60) if isinstance(value, str) else oneline(shown(value, 60))


def _cut(text: str, width: int = LINE_WIDTH) -> str:
    return shorten(text, max(width, 20))


# -- JSON for scripts ----------------------------------------------------------------------------


def summary_json(summary: RunSummary, now: float) -> dict[str, Any]:
    """A run as one JSON object; the keys are always the same (documented in docs/cli.md)."""
    state = lease_state(summary, now)
    holder = summary.holder
    lease: dict[str, Any] | None = None
    if state is LeaseState.RELEASED:
        lease = {"host": None, "pid": None, "expires_at": None, "state": state.value}
    elif holder is not None:
        lease = {
            "host": holder.host,
            "pid": holder.pid,
            "expires_at": summary.lease_expires,
            "state": None if state is None else state.value,
        }
    answer, answer_repr = _answer_json(summary.stored_answer)
    return {
        "run_id": summary.run_id,
        "status": summary.status.value,
        "task": summary.task,
        "started_at": summary.started_at,
        "updated_at": summary.updated_at,
        "steps": summary.steps,
        "tasks": summary.tasks,
        "attempts": summary.attempts,
        "answer": answer,
        "answer_repr": answer_repr,
        "error": summary.error,
        "fingerprint": summary.fingerprint,
        "lease": lease,
    }


def _answer_json(stored: Any) -> tuple[Any, str | None]:
    """(the answer, None) when it is stored as plain JSON; (None, a description) when tagged
    (its shortened preview) or pickled (its size)."""
    if not isinstance(stored, Mapping):
        return None, None
    if "json" in stored:
        return stored["json"], None
    return None, answer_text(stored, LINE_WIDTH)


def answer_text(stored: Mapping[str, Any], limit: int) -> str:
    """A stored answer as text of at most about `limit` characters: a str as itself, other
    values by their (previewed) repr, a pickled one by its size (never unpickled)."""
    if "json" not in stored and "typed" not in stored:
        return pickled_text(stored)
    answer = _previewed(stored)
    return answer if isinstance(answer, str) else shown(answer, limit)


def pickled_text(stored: Mapping[str, Any]) -> str:
    """`<pickled N bytes>` for a pickled value (never unpickled here)."""
    data = stored.get("pickle")
    return f"<pickled {_base64_size(data)} bytes>" if isinstance(data, str) else "<unreadable>"


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    """An entry as one JSON object: `seq`, `kind` and its data as stored (pickles stay
    base64)."""
    return {"seq": entry.seq, "kind": entry.kind.value, "data": entry.data}
