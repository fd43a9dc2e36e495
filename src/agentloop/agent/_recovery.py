"""Automatic recovery: resume the runs of an agent's journal that nobody runs any more.

Without it a crashed run waits until someone calls `arun(task, run_id=...)` again. `Recoverer`
asks the journal for its abandoned runs (`Journal.recoverable`: handed back, lease expired, or
held by a process of this host that died), keeps those of this agent (same configuration
fingerprint; another agent's runs in a shared journal are counted and left alone) and resumes
each one as `arun` would, a bounded number at a time.

The claim stays the arbiter. Replicas that share a journal all see the same candidates, and
each one tries them; the claim's row lock and lease let exactly one win, and the others get
`RunLeasedError` and skip the run quietly. Runs that failed or were cancelled by their caller
are not candidates: only `running` runs are (see docs/durability.md, "Recovery"), and not
journaled sessions either, which go on when their app reopens them, nor runs given an
`output_type` or `images`, which their app resumes (recovery has neither).

`recovering()` keeps doing it for a service: a pass at entry and then every `interval` seconds,
in an anyio task group that owns every resumed run. Leaving it cancels them; a run resumed by
recovery and cancelled so is handed back (its lease released, still unfinished) rather than
recorded `cancelled`, so another replica resumes it at once. The periodic pass is the one
polling loop here, and on purpose: a lease that expires on another machine sends no event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.to_thread

from ..errors import InvalidArgumentsError, JournalError, RunLeasedError
from ..journal.base import RunSummary, holder_is_gone
from ._agent_journal import AgentJournal
from ._durable import CALL_SEPARATOR
from ._durable_session import SESSION_TASK
from .run_result import RunResult

__all__ = [
    "RECOVERY_CONCURRENCY",
    "RecoveredRun",
    "Recoverer",
    "Recovering",
    "no_journal",
    "previous_holder",
]

logger = logging.getLogger("agentloop")

RECOVERY_CONCURRENCY = 8
"""Runs one recovery resumes at once (the rest wait for a slot, unclaimed)."""

Resume = Callable[[RunSummary, str], Awaitable[RunResult]]
"""Resume one abandoned run (`arun` with its id and task), told who held it before."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecoveredRun:
    """One run that recovery resumed: its id, what the journal said of it before, and how the
    resumed attempt ended: `result` when it returned, `error` when it raised."""

    run_id: str
    previous: RunSummary
    """The run as recovery found it (its holder, lease, steps and attempts)."""
    previous_holder: str
    """Who held it before, in words: `released`, `pid 7710 on web-2 (process gone)`, ..."""
    result: RunResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def no_journal(agent_name: str) -> str:
    return (
        f"agent `{agent_name}` has no journal, so it has no runs to recover; create it with "
        "`create_async_agent(..., journal='runs.sqlite')`."
    )


def previous_holder(summary: RunSummary) -> str:
    """Why `summary`'s run is abandoned, naming its last holder."""
    holder = summary.holder
    if holder is None:
        return "released"
    why = "process gone" if holder_is_gone(holder) else "lease expired"
    return f"pid {holder.pid} on {holder.host} ({why})"


class Recovering:
    """What `async with agent.recovering():` yields: what it has done so far.

    Plain counters and the finished runs, for a service's health endpoint or a test; `wait_for`
    waits (on an event, not the clock) until recovery has finished one run."""

    def __init__(self) -> None:
        self.passes = 0
        """Completed passes (queries of the journal)."""
        self.recovered: list[RecoveredRun] = []
        """Runs resumed and finished, in the order they finished."""
        self.skipped_foreign = 0
        """Abandoned runs of other agents seen (each pass counts them again)."""
        self.skipped_sessions = 0
        """Abandoned journaled sessions seen: an app reopens those (`agent.session(...)`)."""
        self.skipped_typed = 0
        """Abandoned runs that were given an `output_type` or `images`: their app resumes
        those (`arun(..., run_id=...)` with the same type and images)."""
        self.lost = 0
        """Runs another process resumed first (its claim won)."""
        self.active: set[str] = set()
        """Run ids being resumed now."""
        self._changed = anyio.Event()

    def _add(self, run: RecoveredRun) -> None:
        self.recovered.append(run)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, run_id: str) -> RecoveredRun:
        """Wait until recovery has finished resuming `run_id`; return how it ended."""
        while True:
            for run in self.recovered:
                if run.run_id == run_id:
                    return run
            await self._changed.wait()

    async def wait_passes(self, passes: int) -> None:
        """Wait until `passes` passes have completed."""
        while self.passes < passes:
            await self._changed.wait()


class Recoverer:
    """The recovery of one agent (see the module docstring)."""

    def __init__(
        self,
        durability: AgentJournal,
        *,
        fingerprint: Callable[[], str],
        resume: Resume,
        agent_name: str,
        limit: int,
        max_concurrent: int,
    ) -> None:
        for name, value in (("limit", limit), ("max_concurrent", max_concurrent)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentsError(f"`{name}` must be a positive int, received {value!r}.")
        self._journal = durability.journal
        self._fingerprint = fingerprint
        self._resume = resume
        self._agent_name = agent_name
        self._lease_seconds = durability.lease_seconds
        """`recovering()`'s default interval: a dead holder on another machine is taken over
        when its lease expires."""
        self._limit = limit
        self._slots = anyio.Semaphore(max_concurrent)

    async def recover(self) -> list[RecoveredRun]:
        """One pass: resume every abandoned run of this agent, wait for them all."""
        progress = Recovering()
        async with anyio.create_task_group() as group:
            await self._pass(group, progress)
        return progress.recovered

    @contextlib.asynccontextmanager
    async def recovering(self, interval: float | None) -> AsyncIterator[Recovering]:
        """Passes at entry and every `interval` seconds until the block ends; then every
        resumed run still going is cancelled (and so handed back) and awaited."""
        if interval is None:
            interval = self._lease_seconds
        if not (isinstance(interval, int | float) and 0 < interval < float("inf")):
            raise InvalidArgumentsError(
                f"`interval` must be a positive number of seconds, received {interval!r}."
            )
        progress = Recovering()
        raised: BaseException | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._keep_recovering, group, progress, interval)
            try:
                yield progress
            except BaseException as exc:  # the block's own error: raised as it is, below,
                raised = exc  # not wrapped in the task group's ExceptionGroup
            finally:
                group.cancel_scope.cancel()
        if raised is not None:
            raise raised

    async def _keep_recovering(
        self, group: anyio.abc.TaskGroup, progress: Recovering, interval: float
    ) -> None:
        while True:
            try:
                await self._pass(group, progress)
            except JournalError as exc:  # the next pass tries again; a service keeps going
                logger.warning(
                    "recovery of agent %s: the journal could not be read (%s); trying again in %gs",
                    self._agent_name,
                    exc,
                    interval,
                )
            await anyio.sleep(interval)

    async def _pass(self, group: anyio.abc.TaskGroup, progress: Recovering) -> None:
        """Find the candidates, and start each (a slot free first) in `group`."""
        found = await anyio.to_thread.run_sync(self._journal.recoverable, self._limit)
        fingerprint = self._fingerprint()
        mine = [s for s in found if s.fingerprint.partition(CALL_SEPARATOR)[0] == fingerprint]
        foreign = len(found) - len(mine)
        typed = [s for s in mine if s.fingerprint != fingerprint]
        if typed:  # recovery has neither their output type nor their images: their app does
            progress.skipped_typed += len(typed)
            mine = [s for s in mine if s.fingerprint == fingerprint]
            logger.debug(
                "recovery of agent %s: %d run(s) with an output type or images left for "
                "`arun(..., run_id=...)`",
                self._agent_name,
                len(typed),
            )
        sessions = [s for s in mine if s.task == SESSION_TASK]
        if sessions:  # a conversation goes on when its app reopens it, not on its own
            progress.skipped_sessions += len(sessions)
            mine = [s for s in mine if s.task != SESSION_TASK]
            logger.debug(
                "recovery of agent %s: %d session(s) left for `agent.session(session_id=...)`",
                self._agent_name,
                len(sessions),
            )
        if foreign:
            progress.skipped_foreign += foreign
            logger.debug(
                "recovery of agent %s: %d abandoned run(s) of other agents left alone",
                self._agent_name,
                foreign,
            )
        for summary in mine:
            if summary.run_id in progress.active:
                continue
            await self._slots.acquire()
            progress.active.add(summary.run_id)
            group.start_soon(
                self._one, summary, progress, name=f"agentloop-recover-{summary.run_id}"
            )
        progress.passes += 1
        progress._notify()

    async def _one(self, summary: RunSummary, progress: Recovering) -> None:
        """Resume one run; a lost claim is skipped quietly, any other error is its outcome."""
        run_id, holder = summary.run_id, previous_holder(summary)
        try:
            logger.info("recovering run %s (previously held: %s)", run_id, holder)
            try:
                result = await self._resume(summary, holder)
            except RunLeasedError as exc:
                progress.lost += 1
                logger.debug("run %s: another process resumes it (%s); skipped", run_id, exc)
                return
            except Exception as exc:  # the run's own failure: reported, not raised
                logger.warning("recovered run %s failed: %s", run_id, exc)
                progress._add(
                    RecoveredRun(run_id=run_id, previous=summary, previous_holder=holder, error=exc)
                )
                return
            logger.info("recovered run %s completed", run_id)
            progress._add(
                RecoveredRun(run_id=run_id, previous=summary, previous_holder=holder, result=result)
            )
        finally:
            progress.active.discard(run_id)
            self._slots.release()
