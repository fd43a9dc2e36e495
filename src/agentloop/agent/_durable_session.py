"""A session that survives restarts: its turns recorded in the journal, as one run.

`agent.session(session_id="support-42")` on an agent with a journal is one journaled run whose
run id is the session id. One run, not one per turn, because a session's tasks outlive its
turns (submitted in one, awaited in a later one): one run keeps every submission and outcome
in one ordered record, and the run's lease is the session's lease (a second live holder gets
`RunLeasedError`, a dead one's is taken over). No table changes: each turn is bracketed by a
`turn_started` entry (its task) and a `turn_ended` entry (how it ended).

Reopening a session claims the run and replays its turns in order, one `CodeAgent.run` per
turn, with the recorded model replies (`ReplayingModel`) and the recorded answers of the task
tools (the scope's replay): the controller's memory and variables are rebuilt by running the
recorded model code again inside the sandbox, as a resumed run does, without calling the model
and without running a finished task again. The journal is read as data only (the codec decodes
results and the turns' `additional_args`); nothing else of it is executed.

- A turn that completed replays whole.
- A turn that failed or was cancelled replays up to where it stopped: the first call its
  replayed code makes past its recorded end is refused, as the live turn's was (so its last
  step in memory shows that refusal rather than the original error).
- A turn with a start and no end was in flight when its process died. It resumes (replays, then
  goes live) when the session is asked the same task again; another task is refused with the
  task to ask.
- A typed turn (`output_type=`) records its answer-format hint with its start and what its
  check told the model with its end: a turn that ended replays with those, without the type
  (`AnswerCheck.replaying`); one resumed mid-way must be asked with the same type and images
  (their digests are recorded, never the images themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from .._text import describe, shown
from ..engine._run_journal import RunJournal
from ..engine.scope import RunScope
from ..errors import InvalidArgumentsError, JournalError, JournalMismatchError, RunDivergedError
from ..journal._codec import decode, encoded
from ..journal._replay import EVENT_KINDS, Replay
from ..journal._types import BUILTIN_TYPES, JournalTypes
from ..journal._writer import RunLog
from ..journal.base import Claim, EntryKind, JournalEntry, LeaseHolder, RunStatus
from ._agent_journal import AgentJournal
from ._answer_check import AnswerCheck
from ._durable import start_recording
from ._turn import TurnRequest

__all__ = [
    "SESSION_TASK",
    "DurableSession",
    "RecordedTurn",
    "checked_session_id",
    "inside_turns",
    "recorded_turns",
]

logger = logging.getLogger("agentloop")

SESSION_TASK = "(session)"
"""The `task` of a session's run row: a plain `arun` of the same id is refused (another task)."""

_CLOSED = "the session was closed; open it again with its id to continue"


def checked_session_id(session_id: object, agent_name: str, *, journaled: bool) -> str:
    """`session(session_id=...)`'s id, or an error that says what would do: an id names a
    recorded session, so it needs a journal (an unrecorded session needs no id)."""
    if not journaled:
        raise InvalidArgumentsError(
            f"`session_id` was given ({session_id!r:.80}) but agent `{agent_name}` has no "
            "journal, so the session could not survive a restart; create the agent with "
            "`journal='runs.sqlite'` (or another journal), or open `agent.session()` without "
            "an id for a conversation kept in memory only."
        )
    if (
        not isinstance(session_id, str)
        or not session_id
        or len(session_id) > 200
        or not session_id.isprintable()
    ):
        raise InvalidArgumentsError(
            "`session_id` must be a non-empty printable string of at most 200 characters, "
            f"received {session_id!r:.80}."
        )
    return session_id


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedTurn:
    """One turn as the journal holds it."""

    number: int
    request: TurnRequest
    status: RunStatus | None
    """How it ended; `None`: it was in flight when its process stopped."""
    call: str = ""
    """Its output type and images (`TurnRequest.identity`): a resumed turn must have them."""


def recorded_turns(
    entries: Sequence[JournalEntry], types: JournalTypes = BUILTIN_TYPES
) -> list[RecordedTurn]:
    """The turns bracketed in a session's entries (decodes their `additional_args`: call it in
    a worker thread). A typed turn that ended replays with the answers its check turned down
    (`AnswerCheck.replaying`); one in flight gets its type again from the app."""
    turns: list[RecordedTurn] = []
    started: tuple[int, Mapping[str, Any]] | None = None
    for entry in entries:
        data = entry.data
        if entry.kind is EntryKind.TURN_STARTED:
            started = (int(data["turn"]), data)
        elif entry.kind is EntryKind.TURN_ENDED and started is not None:
            status = RunStatus(data["status"])
            turns.append(_recorded_turn(*started, types, status, data.get("answer_rejections")))
            started = None
    if started is not None:
        turns.append(_recorded_turn(*started, types, None, None))
    return turns


def _recorded_turn(
    number: int,
    data: Mapping[str, Any],
    types: JournalTypes,
    status: RunStatus | None,
    rejections: Sequence[str] | None,
) -> RecordedTurn:
    stored = data.get("additional_args")
    args = None if stored is None else decode(stored, f"the arguments of turn {number}", types)
    hint = data.get("answer_hint")
    request = TurnRequest(
        task=str(data["task"]),
        additional_args=args,
        max_steps=data.get("max_steps"),
        guidance=bool(data.get("guidance")),
        answer=None
        if hint is None or status is None
        else AnswerCheck.replaying([str(r) for r in rejections or ()], str(hint)),
    )
    return RecordedTurn(
        number=number, request=request, status=status, call=str(data.get("call") or "")
    )


def inside_turns(entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    """The entries a reopened session replays: the turns' own, and every task outcome and
    approval. Calls recorded between turns were the application's (`session.scope.wait(...)`
    from Python): nothing makes them again when the session is reopened, so they are left out."""
    kept: list[JournalEntry] = []
    in_turn = False
    for entry in entries:
        kind = entry.kind
        if kind is EntryKind.TURN_STARTED:
            in_turn = True
        if in_turn or kind in EVENT_KINDS:
            kept.append(entry)
        if kind is EntryKind.TURN_ENDED:
            in_turn = False
    return kept


class DurableSession:
    """The journal side of one open session (see the module docstring)."""

    def __init__(
        self, durability: AgentJournal, session_id: str, *, fingerprint: str, force: bool
    ) -> None:
        self.session_id = session_id
        self._durability = durability
        self._fingerprint = fingerprint
        self._force = force
        self.holder = LeaseHolder()
        self.turns: list[RecordedTurn] = []
        """The turns found when the session was opened, in order."""
        self.unfinished: RecordedTurn | None = None
        """The turn its process died in, until it is resumed."""
        self.run_journal: RunJournal | None = None
        self.failure: JournalError | None = None
        self.on_failure: Callable[[], None] | None = None
        """Set once the controller exists: stops it (the session cannot go on)."""
        self._numbered = 0
        self._last_seq = 0
        self._replay: Replay | None = None
        self._replaying_to_end = False
        """Replaying a turn that did not complete: the refusal at its recorded end is expected."""
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def _log(self) -> RunLog:
        assert self.run_journal is not None, "the session is not open"
        return self.run_journal.log

    # -- opening and closing --------------------------------------------------------------------

    async def open(self, scope: RunScope) -> None:
        """Claim the session's run (its lease), read its turns, and record in `scope`."""
        claim, replay, turns = await anyio.to_thread.run_sync(self._claim_and_read)
        previous = claim.previous
        if previous is not None and previous.status is RunStatus.COMPLETED:
            raise JournalMismatchError(
                f"`{self.session_id}` is the id of a completed run, not of a session; choose "
                "another session id."
            )
        self._replay = replay
        self.turns = [t for t in turns if t.status is not None]
        self.unfinished = turns[-1] if turns and turns[-1].status is None else None
        self._numbered = len(turns)
        writer = self._durability.writer()
        log = writer.open_log(
            self.session_id,
            self.holder,
            last_seq=self._last_seq,  # of every entry, the ones left out of the replay too
            new=None,  # the claim created the run
            on_failure=self._failed,
        )
        durability = self._durability
        self.run_journal, self._heartbeat = start_recording(
            scope,
            log,
            replay,
            idempotent=durability.idempotent,
            reconcile=durability.reconcile,
            types=durability.types,
            fail_run=self._failed,
            lease_seconds=writer.lease_seconds,
        )

    def _claim_and_read(self) -> tuple[Claim, Replay | None, list[RecordedTurn]]:
        """In a worker thread: the claim, its entries as a `Replay`, and its turns."""
        claim = self._durability.journal.claim(
            self.session_id,
            task=SESSION_TASK,
            fingerprint=self._fingerprint,
            holder=self.holder,
            lease_seconds=self._durability.lease_seconds,
            force=self._force,
        )
        entries = inside_turns(claim.entries)
        self._last_seq = claim.entries[-1].seq if claim.entries else 0
        types = self._durability.types
        replay = Replay(entries, types) if entries else None
        return claim, replay, recorded_turns(entries, types)

    async def close(self) -> None:
        """Release the lease (the run stays resumable: a closed session is opened again by
        its id). After a journal failure nothing more is written."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        journal, self.run_journal = self.run_journal, None
        if journal is None or self.failure is not None or journal.log.failure is not None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await journal.log.end(RunStatus.CANCELLED, answer=None, error=_CLOSED)
            except JournalError:
                logger.exception("session %s: its lease could not be released", self.session_id)

    def _failed(self, error: JournalError) -> None:
        if self._replaying_to_end and isinstance(error, RunDivergedError):
            return  # a replayed turn that did not complete reached where it stopped
        if self.failure is None:
            self.failure = error
            logger.error("session %s stops: %s", self.session_id, error)
            if self.on_failure is not None:
                self.on_failure()

    def check_usable(self) -> None:
        if self.failure is not None:
            raise self.failure

    # -- replaying the recorded turns -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def replaying(self, turn: RecordedTurn) -> AsyncIterator[None]:
        """Around the replay of a recorded turn that ended: its start and end are taken from
        the record; a turn that did not complete may end in an error, as it did."""
        self.check_usable()
        self._take(EntryKind.TURN_STARTED, turn)
        self._replaying_to_end = turn.status is not RunStatus.COMPLETED
        try:
            yield
        except Exception as exc:
            if not self._replaying_to_end or self.failure is not None:
                raise
            logger.debug(
                "session %s: turn %s replayed to its end (%s)",
                self.session_id,
                turn.number,
                describe(exc),
            )
        finally:
            self._replaying_to_end = False
        self.check_usable()
        self._take(EntryKind.TURN_ENDED, turn)

    def _take(self, kind: EntryKind, turn: RecordedTurn) -> None:
        """Take a turn's bracket from the replay: the next recorded call must be it."""
        journal, replay = self.run_journal, self._replay
        assert journal is not None, "the session is not open"
        assert replay is not None, "nothing recorded to take"
        what = f"the {'start' if kind is EntryKind.TURN_STARTED else 'end'} of turn {turn.number}"
        try:
            entry = replay.take(kind, what)
            if entry is None or entry.data.get("turn") != turn.number:
                raise RunDivergedError(
                    f"replaying session `{self.session_id}`, the record ended before {what}. "
                    "Open it under a new session id."
                )
        except JournalError as exc:
            journal.fail(exc)
            raise
        if replay.done:
            journal.wake_scope()  # the scope goes live (decides on tasks left in flight)

    # -- live turns -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def live(self, request: TurnRequest) -> AsyncIterator[None]:
        """Around a turn asked for now: record its start and end (the end durable before the
        turn's answer is returned), or resume the turn a dead process left unfinished."""
        self.check_usable()
        pending = self.unfinished
        if pending is not None:
            if request.task != pending.request.task or request.identity != pending.call:
                raise JournalMismatchError(
                    f"session `{self.session_id}` stopped in the middle of turn "
                    f"{pending.number}, on the task {shown(pending.request.task, 200)}; ask "
                    "that task again (with the same `output_type` and `images`) to resume it "
                    f"(it is `session.unfinished_task`), then go on with "
                    f"{shown(request.task, 200)}."
                )
            self.unfinished = None
            self._take(EntryKind.TURN_STARTED, pending)
            number = pending.number
        else:
            self._numbered += 1
            number = self._numbered
            args = request.additional_args
            stored = (
                None
                if not args
                else await encoded(dict(args), "the turn's additional_args", self._durability.types)
            )
            started: dict[str, Any] = {
                "turn": number,
                "task": request.task,
                "guidance": request.guidance,
                "max_steps": request.max_steps,
                "additional_args": stored,
            }
            if request.identity:  # a typed turn, or one with images
                started["call"] = request.identity
            if request.answer is not None:  # what its replay shows the model again
                started["answer_hint"] = request.answer.hint
            self._log.add(EntryKind.TURN_STARTED, started)
        try:
            yield
        except BaseException as exc:
            self._ended(number, exc, request)
            raise
        replay = self._replay
        if replay is not None and not replay.done:
            error = RunDivergedError(
                f"session `{self.session_id}`: resumed turn {number} answered before reaching "
                "the end of its record. The turn's code did not do the same thing again; open "
                "the session under a new id."
            )
            self._log_failed(error)
            raise error
        await self._log.durable(self._ended(number, None, request))

    def _ended(self, number: int, error: BaseException | None, request: TurnRequest) -> int:
        """Record how turn `number` ended; the version that is durable once it is (0 when
        nothing can be written any more)."""
        log = self._log
        if self.failure is not None or log.failure is not None:
            return 0
        if error is None:
            status, text = RunStatus.COMPLETED, None
        elif isinstance(error, asyncio.CancelledError):
            status, text = RunStatus.CANCELLED, "cancelled"
        else:
            status, text = RunStatus.FAILED, describe(error)
        data: dict[str, Any] = {"turn": number, "status": status.value, "error": text}
        if request.answer is not None:  # what its check told the model, for the replay
            data["answer_rejections"] = list(request.answer.rejections)
        return log.add(EntryKind.TURN_ENDED, data)

    def _log_failed(self, error: JournalError) -> None:
        if self.run_journal is not None:
            self.run_journal.fail(error)
