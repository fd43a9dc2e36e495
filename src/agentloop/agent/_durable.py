"""One durable run attempt: claim the run id, replay or record, and write how it ended.

`AsyncAgent` uses a `DurableRun` for every `arun` when it has a journal. The claim (a worker
thread's call to `Journal.claim`) takes the run's lease, or finds the run completed (its
recorded answer is returned without calling anything), or finds it unfinished and returns
its entries for replay. The controller's model is wrapped in a `ReplayingModel`, which answers
recorded steps from the journal and records live replies; the run's scope records or replays
everything else (`RunScope.attach_journal`). When the run ends its scope is closed first (so
every task's outcome is recorded), then the writer is drained and the end is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.to_thread

from .._text import describe
from .._util import REPLYING_MODEL, ModelCall, WrapperModel, model_name
from ..core._budgets import CURRENT_BUDGET
from ..core._effects import ReconcileHook
from ..core._targets import Target
from ..engine._run_journal import RunJournal
from ..engine.scope import RunScope
from ..errors import InvalidArgumentsError, JournalError, RunLeasedError
from ..journal._codec import encoded
from ..journal._replay import Replay
from ..journal._types import BUILTIN_TYPES, JournalTypes
from ..journal._writer import JournalWriter, RunLog
from ..journal.base import Claim, EntryKind, Journal, LeaseHolder, NewRun, RunStatus, RunSummary
from ._answer_check import AnswerCheck
from ._event_record import EventRecorder
from ._feed import RunFeed
from ._parking import Parking, parked_error
from .run_result import RunResult

__all__ = [
    "CALL_SEPARATOR",
    "DurableRun",
    "JournalSpec",
    "ReplayingModel",
    "RunResult",
    "agent_fingerprint",
    "call_fingerprint",
    "checked_run_id",
    "open_journal",
]

logger = logging.getLogger("agentloop")

JournalSpec = str | os.PathLike[str] | Journal | None


def open_journal(spec: JournalSpec) -> Journal | None:
    """A `Journal` from what `create_async_agent(journal=...)` accepts: a journal, a path to
    an SQLite file, or a `postgresql://` URL."""
    if spec is None or isinstance(spec, Journal):
        return spec
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        from ..journal.postgres import PostgresJournal  # psycopg is imported (or its absence
        # explained, with the pip command) when the journal connects

        return PostgresJournal(spec)
    if isinstance(spec, (str, os.PathLike)):
        from ..journal.sqlite import SQLiteJournal

        return SQLiteJournal(spec)
    raise InvalidArgumentsError(
        "`journal` must be a path (an SQLite file), a postgresql:// URL or a `Journal`, "
        f"received {type(spec).__name__}."
    )


def checked_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 200 or not run_id.isprintable():
        raise InvalidArgumentsError(
            "`run_id` must be a non-empty printable string of at most 200 characters, "
            f"received {run_id!r:.80}."
        )
    return run_id


def new_run_id() -> str:
    """Unique across processes and machines sharing one journal."""
    return f"run-{uuid.uuid4().hex[:16]}"


def agent_fingerprint(model: Any, targets: Iterable[Target], instructions: str | None) -> str:
    """What a recorded run's steps depend on: the model, the targets and their signatures,
    and the instructions. A resumed run whose agent differs in these is refused."""
    described = {
        "model": [type(model).__name__, str(getattr(model, "model_id", "") or "")],
        "targets": sorted([t.name, t.task_type.value, t.signature(), t.is_async] for t in targets),
        "instructions": instructions or "",
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


CALL_SEPARATOR = "+"
"""Between an agent's fingerprint and its call's part (`call_fingerprint`)."""


def call_fingerprint(agent: str, call: str) -> str:
    """A run's fingerprint: the agent's, then, for a call with an output type or images, a
    digest of those (`agent+digest`): resuming the run with another output type or other
    images is refused as a change of agent is. Recovery leaves such runs to their app, which
    has the type and the images (`agent.recover()` has neither)."""
    if not call:
        return agent
    return f"{agent}{CALL_SEPARATOR}{hashlib.sha256(call.encode()).hexdigest()[:16]}"


class ReplayingModel(WrapperModel):
    """A run's controller model: recorded replies first, then live ones, each recorded.
    `models` are the fallback chain's by id: a recorded reply is priced as the model that
    made it."""

    __slots__ = ("_journal", "_models")

    def __init__(
        self, model: Any, journal: RunJournal, models: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(model)
        self._journal = journal
        self._models = models or {}

    async def _areply(self, proceed: ModelCall, messages: Any, kwargs: dict[str, Any]) -> Any:
        journal = self._journal
        replay = journal.replay
        if replay is not None and not journal.live:
            try:
                entry = replay.take(EntryKind.MODEL_REPLY, "a model call")
            except JournalError as exc:
                journal.fail(exc)
                raise
            if replay.done:
                journal.wake_scope()  # the scope goes live (reruns start) on the loop
            if entry is not None:
                made_by = self._models.get(str(entry.data.get("model")), self.innermost)
                return _recorded_reply(entry.data, made_by)
        reply = await proceed(messages, kwargs)
        usage = getattr(reply, "token_usage", None)
        content = getattr(reply, "content", reply)
        if not (content is None or isinstance(content, (str, list))):
            content = str(content)
        record: dict[str, Any] = {
            "content": content
            if isinstance(content, (str, list)) or content is None
            else str(content),
            "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
            "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
        }
        replying = REPLYING_MODEL.get()
        if replying is not None:  # the model of the chain that made it
            record["model"] = model_name(replying)
        journal.log.add(EntryKind.MODEL_REPLY, record)
        return reply


def _recorded_reply(data: Any, model: Any) -> Any:
    """A recorded reply of `model`, as the model gave it (its tokens, not its raw response)."""
    from smolagents.models import ChatMessage, MessageRole
    from smolagents.monitoring import TokenUsage

    usage = TokenUsage(input_tokens=data["input_tokens"], output_tokens=data["output_tokens"])
    reply = ChatMessage(role=MessageRole.ASSISTANT, content=data["content"], token_usage=usage)
    budget = CURRENT_BUDGET.get()
    if budget is not None:  # the run's budget counts it once; the process's totals do not
        budget.charge_replayed(reply, model)
    return reply


def start_recording(
    scope: RunScope,
    log: RunLog,
    replay: Replay | None,
    *,
    idempotent: frozenset[str],
    reconcile: Mapping[str, ReconcileHook] | None,
    types: JournalTypes,
    fail_run: Callable[[JournalError], None],
    lease_seconds: float,
) -> tuple[RunJournal, asyncio.Task[None]]:
    """Record (and replay) an attempt of a run or a session in `scope`: its `RunJournal`, and
    the heartbeat that renews its lease until it is cancelled."""
    journal = RunJournal(
        log, replay, idempotent=idempotent, fail_run=fail_run, reconcile=reconcile, types=types
    )
    scope.attach_journal(journal)
    heartbeat = asyncio.get_running_loop().create_task(
        _renew_lease(log, lease_seconds / 3), name=f"agentloop-lease-{log.run_id}"
    )
    return journal, heartbeat


async def _renew_lease(log: RunLog, every: float) -> None:
    """A run's heartbeat: renew its lease while it has nothing to write (until cancelled)."""
    while True:
        await asyncio.sleep(every)
        log.touch()


class DurableRun:
    """One attempt at a journaled run (see the module docstring)."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        task: str,
        *,
        fingerprint: str,
        writer: JournalWriter,
        idempotent: frozenset[str],
        force: bool,
        fresh: bool,
        reconcile: Mapping[str, ReconcileHook] | None = None,
        types: JournalTypes = BUILTIN_TYPES,
        shutting_down: threading.Event | None = None,
    ) -> None:
        self.journal = journal
        self.types = types
        self.run_id = run_id
        self.task = task
        self._fingerprint = fingerprint
        self._writer = writer
        self._fresh = fresh
        self._idempotent = idempotent
        self._reconcile = reconcile
        self._force = force
        self.holder = LeaseHolder()
        self.previous: RunSummary | None = None
        self.recorded_answer: Any = None
        """A completed run's answer, decoded by the claim (off the loop)."""
        self.run_journal: RunJournal | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._replay: Replay | None = None
        self._answer: dict[str, Any] | None = None
        self.failure: JournalError | None = None
        self.on_failure: Callable[[], None] | None = None
        """Set by the agent once the controller exists: stops it."""
        self.answer_check: AnswerCheck | None = None
        """A typed run's: the answer is stored as its JSON form, and a completed run's
        recorded answer is validated into the type again."""
        self.recovered_from: str | None = None
        """Set when `agent.recover()` resumes the run: who held it before (see
        `agentloop.agent._recovery.previous_holder`)."""
        self._shutting_down = shutting_down or threading.Event()
        self._feed: RunFeed | None = None
        """The run's stream's feed, if streamed (`RunStream.hand_back` asks through it)."""
        self.events: EventRecorder | None = None
        """Set when the run is streamed: its end is recorded as its last event."""
        self._shown_answer: Any = None
        self.parking: Parking | None = None
        """Set when the agent parks idle runs (`park_after=`): whether this attempt parked."""
        """The agent's: set when it shuts down, so that its runs in flight are handed back."""

    async def execute(
        self,
        scope: AbstractAsyncContextManager[RunScope],
        feed: RunFeed | None,
        run_in_scope: Callable[[RunScope], Awaitable[RunResult]],
    ) -> RunResult:
        """The attempt, in `scope`: claim the run; a completed one returns its recorded
        answer (decoded by the claim's worker thread, never on the loop); otherwise replay
        and record around `run_in_scope`, then write how it ended."""
        self._feed = feed
        try:
            async with scope as opened:
                claim = await self.claim()
                previous = claim.previous
                if previous is not None and previous.status is RunStatus.COMPLETED:
                    if feed is not None:  # the stream shows the recorded answer at once
                        feed.opened(opened, self.task)
                    return RunResult(output=self.recorded_answer, run_id=self.run_id, resumed=True)
                journal = self.start(opened)
                outcome = await run_in_scope(opened)
                answer = outcome.output
                await self.answered(answer)
        except BaseException as exc:
            await self.finish(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if self.failure is not None:
                raise self.failure from exc
            parked = self._parked()
            if parked is not None:
                raise parked_error(self.run_id, parked.approval_ids) from None
            raise
        await self.finish(None)
        return self.result(outcome, journal, resumed=claim.previous is not None)

    async def claim(self) -> Claim:
        """Take the run's lease (a generated id is new: it is created by its first write)."""
        if self._fresh:
            return Claim(previous=None)
        claim, self._replay, self.recorded_answer = await anyio.to_thread.run_sync(
            self._claim_and_read
        )
        self.previous = claim.previous
        return claim

    def _claim_and_read(self) -> tuple[Claim, Replay | None, Any]:
        """In a worker thread: the claim, its entries read into a `Replay` and a completed
        run's answer, both decoded here (a big value takes a while; the loop never decodes)."""
        claim = self.journal.claim(
            self.run_id,
            task=self.task,
            fingerprint=self._fingerprint,
            holder=self.holder,
            lease_seconds=self._writer.lease_seconds,
            force=self._force,
        )
        previous = claim.previous
        if previous is None:
            return claim, None, None
        if self.recovered_from is not None:
            self._still_abandoned(previous)
        previous = dataclasses.replace(previous, journal_types=self.types)
        claim = dataclasses.replace(claim, previous=previous)
        if previous.status is RunStatus.COMPLETED:  # no lease taken: nothing to give back
            check = self.answer_check
            answer = previous.answer
            return claim, None, answer if check is None else check.restored(answer)
        try:
            return claim, Replay(claim.entries, self.types) if claim.entries else None, None
        except JournalError as exc:  # a recorded value this agent cannot read back
            self.journal.finish(self.run_id, self.holder, RunStatus.FAILED, error=describe(exc))
            raise

    def _still_abandoned(self, previous: RunSummary) -> None:
        """Recovery found the run abandoned, but another process may have resumed and ended
        it since: then recovery leaves it as that process left it. (A completed run's claim
        took no lease; a failed or cancelled one's did, and is given back with its end.)"""
        if previous.status is RunStatus.RUNNING:
            return
        if previous.status is not RunStatus.COMPLETED:
            self.journal.finish(self.run_id, self.holder, previous.status, error=previous.error)
        raise RunLeasedError(
            f"run `{self.run_id}` was {previous.status.value} by another process after "
            "recovery found it abandoned; recovery leaves it so."
        )

    def start(self, scope: RunScope) -> RunJournal:
        """Begin recording (and replaying what the claim found) in `scope`, until `finish`."""
        replay = self._replay
        log: RunLog = self._writer.open_log(
            self.run_id,
            self.holder,
            last_seq=replay.last_seq if replay is not None else 0,
            new=NewRun(task=self.task, fingerprint=self._fingerprint) if self._fresh else None,
            on_failure=self._failed,
        )
        self.run_journal, self._heartbeat = start_recording(
            scope,
            log,
            replay,
            idempotent=self._idempotent,
            reconcile=self._reconcile,
            types=self.types,
            fail_run=self._failed,
            lease_seconds=self._writer.lease_seconds,
        )
        return self.run_journal

    def _failed(self, error: JournalError) -> None:
        if self.failure is None:
            self.failure = error
            logger.error("run %s stops: %s", self.run_id, error)
            if self.on_failure is not None:
                self.on_failure()

    async def answered(self, answer: Any) -> None:
        """Encode the final answer now (off the loop: model code made it), so an answer the
        journal cannot hold fails the run."""
        if self.answer_check is not None:  # a typed answer: its JSON form
            answer = self.answer_check.stored(answer)
        self._shown_answer = answer
        self._answer = await encoded(answer, "the run's final answer", self.types)

    async def finish(self, error: BaseException | None) -> None:
        """Record how the run ended, after everything it queued (shielded when the run was
        cancelled). After a failed journal write nothing more is written: the run stays
        unfinished in the journal, to be resumed. A replay that diverged is recorded `failed`
        with its reason, which releases the lease (asking again gets the reason at once)."""
        journal = self.run_journal
        if journal is None:
            return
        self.run_journal = None
        try:
            await self._record_end(journal, error)
        finally:  # what held the run together: freed by reference counting from here
            self._heartbeat = None
            self.on_failure = None
            journal.release()

    async def _record_end(self, journal: RunJournal, error: BaseException | None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self.failure is not None:
            if journal.log.failure is not None:  # the journal takes no more of this run
                return
            error = self.failure  # the replay diverged: recorded, and the lease released
        parked = self._parked()
        if error is None:
            status, text = RunStatus.COMPLETED, None
        elif parked is not None and parked.requests is not None:
            status, text = RunStatus.PARKED, None  # resumed by a decision (`agent.decide`)
            if self.events is not None:
                self.events.parked(parked.approval_ids)
            journal.log.add(EntryKind.PARKED, {"approvals": parked.requests})
            logger.info("run %s parked, waiting on %s", self.run_id, parked.approval_ids)
        elif self.hands_back(error):
            status, text = RunStatus.RUNNING, None  # handed back: another process resumes it
            logger.info(
                "run %s handed back (its lease released, still unfinished): %s",
                self.run_id,
                "the agent shuts down" if self._shutting_down.is_set() else "recovery stopped",
            )
        elif isinstance(error, asyncio.CancelledError):
            status, text = RunStatus.CANCELLED, "cancelled"
        else:
            status, text = RunStatus.FAILED, describe(error)
        if self.events is not None and status not in (RunStatus.RUNNING, RunStatus.PARKED):
            with contextlib.suppress(JournalError):  # the log failed: `end` raises it below
                self.events.ended(
                    answer=self._shown_answer,
                    error=None if error is None else _end_error(status, text),
                )
        with anyio.CancelScope(shield=error is not None):
            ending = journal.log.end(
                status, answer=self._answer if error is None else None, error=text
            )
            if error is None:
                await ending
                return
            try:
                await ending
            except JournalError:  # the run's own error is the one to raise
                logger.exception("run %s: its end could not be journaled", self.run_id)

    def _parked(self) -> Parking | None:
        """This attempt's parking, if it parked (and its journal took the run so far)."""
        parking = self.parking
        if parking is None or parking.requests is None or self.failure is not None:
            return None
        return parking

    def hands_back(self, error: BaseException) -> bool:
        """Whether a run that stops with `error` is handed back rather than recorded as ended:
        its agent is shutting down, or recovery started it and is cancelled (no caller asked
        for that: the service stops). A recovered run that fails on its own is recorded
        `failed`, or recovery would retry it for ever."""
        if self._shutting_down.is_set():
            return True
        if self._feed is not None and self._feed.handing_back:
            return isinstance(error, asyncio.CancelledError)
        return self.recovered_from is not None and isinstance(error, asyncio.CancelledError)

    def recovery_attributes(self) -> dict[str, Any]:
        """The run span's attributes when recovery resumed the run (else none)."""
        if self.recovered_from is None:
            return {}
        return {
            "agentloop.run.recovered": True,
            "agentloop.run.previous_holder": self.recovered_from,
        }

    def result(self, outcome: RunResult, journal: RunJournal | None, *, resumed: bool) -> RunResult:
        """`outcome` (the answer, what was spent), with what the journal replayed."""
        replay = journal.replay if journal is not None else None
        return dataclasses.replace(
            outcome,
            run_id=self.run_id,
            resumed=resumed,
            replayed_steps=replay.model_replies if replay is not None else 0,
            replayed_tasks=journal.replayed_tasks if journal is not None else 0,
            rerun_tasks=journal.rerun if journal is not None else 0,
            unknown_tasks=journal.unknown if journal is not None else 0,
            reconciled_tasks=journal.reconciled_done if journal is not None else 0,
        )


def _end_error(status: RunStatus, text: str | None) -> str:
    """What a recorded `run_failed` event says: as a live stream says it."""
    if status is RunStatus.CANCELLED:
        return "CancelledError: the run was cancelled"
    return text or status.value
