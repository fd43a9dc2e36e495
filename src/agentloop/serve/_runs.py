"""The service's runs: starting them in the background, acting on them, and reading them back.

A run the service starts is an `agent.astream(...)` owned by a background task of the service
(not by the request), so it outlives the request and its client; the request that started it
with `wait` owns it instead, and cancels it if its client leaves. The run's stream labels it
with the agent's name and who started it, and with a journal those labels, like every event,
are in the journal: listing, reading and following a run work from any replica.

A run this process holds is acted on directly (cancel, approve); one another process holds
is refused with who holds it, since only the holder can stop its controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from .._text import describe, json_value
from ..agent.run_events import RunEventKind
from ..agent.stream import RunStream
from ..core.approvals import ApprovalDecision
from ..errors import AgentloopError, RunLeasedError, RunParkedError, UnknownTaskError
from ..journal.base import Journal, RunStatus, RunSummary
from ._auth import Principal
from ._events import EventHub
from ._guard import Refused
from ._shapes import RunFacts, fold

if TYPE_CHECKING:
    from ..agent.async_agent import AsyncAgent

__all__ = ["LiveRun", "RunService", "ServedAgent"]

logger = logging.getLogger("agentloop")


@dataclass(frozen=True, kw_only=True)
class ServedAgent:
    """An agent the service runs, by the name clients use."""

    name: str
    agent: AsyncAgent
    title: str = ""
    task: str = ""
    """A default task text the console's form starts with."""


@dataclass(eq=False)
class LiveRun:
    """A run this process started (or runs a turn of), while it goes and a while after."""

    run_id: str
    agent: str
    principal: str
    task: str
    stream: RunStream[Any] | None
    """While the run goes on (dropped when it ends: a finished run keeps no run state)."""
    session_id: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    status: RunStatus = RunStatus.RUNNING
    answer: Any = None
    error: str | None = None
    driver: asyncio.Task[None] | None = None
    """Consumes the run's stream, while it goes."""


class RunService:
    """Starts, finds and acts on runs, for the routes (`app.py`)."""

    def __init__(
        self,
        agents: Mapping[str, ServedAgent],
        hub: EventHub,
        journal: Journal | None,
        *,
        keep_finished: int = 1000,
    ) -> None:
        self.agents = dict(agents)
        self.hub = hub
        self.journal = journal
        self.live: dict[str, LiveRun] = {}
        self._finished: OrderedDict[str, LiveRun] = OrderedDict()
        self._keep_finished = keep_finished
        self._labels: OrderedDict[str, dict[str, str]] = OrderedDict()
        """Runs' labels read back from the journal (they never change)."""
        self._drivers: set[asyncio.Task[None]] = set()

    # -- starting ---------------------------------------------------------------------------------

    def served(self, name: object) -> ServedAgent:
        if not isinstance(name, str) or name not in self.agents:
            raise Refused(
                404, f"no agent {name!r:.60} here; this service runs: {', '.join(self.agents)}."
            )
        return self.agents[name]

    def start(
        self,
        served: ServedAgent,
        task: str,
        principal: Principal,
        *,
        run_id: str | None = None,
        stream: RunStream[Any] | None = None,
        session_id: str | None = None,
    ) -> LiveRun:
        """Start a run in the background (its stream: `stream`, a session's turn; else a new
        `astream` of `served`)."""
        run_id = run_id or f"run-{uuid.uuid4().hex[:16]}"
        if run_id in self.live:
            raise Refused(409, f"run `{run_id}` is already running here.")
        labels = {"agent": served.name, "principal": principal.name}
        if session_id is not None:
            labels["session_id"] = session_id
        if stream is None:
            stream = served.agent.astream(task, run_id=run_id, labels=labels)
        live = LiveRun(
            run_id=run_id,
            agent=served.name,
            principal=principal.name,
            task=task,
            stream=stream,
            session_id=session_id,
        )
        self.live[run_id] = live
        journaled = served.agent.journal is not None and session_id is None
        if journaled:
            self.hub.opened(run_id)
        driver = asyncio.get_running_loop().create_task(
            self._drive(live, journaled), name=f"agentloop-serve-{run_id}"
        )
        live.driver = driver
        self._drivers.add(driver)
        driver.add_done_callback(self._drivers.discard)
        return live

    async def _drive(self, live: LiveRun, journaled: bool) -> None:
        """Consume the run's stream: with a journal the events reach clients from the journal
        writer (committed), so only the deltas are passed on here; without one, everything."""
        hub, run_id = self.hub, live.run_id
        assert live.stream is not None
        try:
            async with live.stream as stream:
                async for event in stream:
                    if event.kind is RunEventKind.MODEL_DELTA:
                        hub.delta(run_id, event.to_dict())
                    elif not journaled:  # (journaled: clients get the committed events)
                        data = event.to_dict()
                        if event.kind.is_end:  # a client shown the end finds the run ended
                            _ended(live, data)
                        hub.streamed(run_id, event.seq, data)
                live.answer = json_value(await stream.result())
                live.status = RunStatus.COMPLETED
        except asyncio.CancelledError:
            live.status, live.error = RunStatus.CANCELLED, "cancelled"
            raise
        except RunLeasedError as exc:  # another process runs it (it recovered it first)
            live.status, live.error = RunStatus.RUNNING, describe(exc)
            logger.info("run %s is run by another process: %s", run_id, live.error)
        except Exception as exc:
            live.status = RunStatus.FAILED
            live.error = describe(exc)
            if isinstance(exc, RunParkedError):
                live.status = RunStatus.PARKED
            else:
                logger.info("run %s failed: %s", run_id, live.error)
        finally:
            live.ended_at = time.time()
            live.stream = None
            live.driver = None  # a finished task keeps its coroutine: the 1,000 kept runs too
            self.live.pop(run_id, None)
            if live.status in (RunStatus.PARKED, RunStatus.RUNNING):
                hub.elsewhere(run_id)  # it goes on later, or now, maybe in another process
            else:
                hub.stopped(run_id)
                self._finished[run_id] = live
            while len(self._finished) > self._keep_finished:
                self._finished.popitem(last=False)

    async def recover(self, limit: int = 100) -> list[str]:
        """Resume, here, the runs whose process died or handed them back (each as the agent
        and principal its labels name, streamed, so their events go on being recorded); a
        run another replica takes first is left to it. Returns the run ids resumed."""
        journal = self.journal
        if journal is None:
            return []
        found = await anyio.to_thread.run_sync(functools.partial(journal.recoverable, limit))
        labels = await self._labels_of([s.run_id for s in found])
        resumed = []
        for summary in found:
            named = labels.get(summary.run_id, {})
            served = self.agents.get(named.get("agent", ""))
            if served is None or summary.run_id in self.live or named.get("session_id"):
                continue  # not a run of this service's agents (or a session's)
            principal = Principal(named.get("principal", "local"))
            self.start(served, summary.task, principal, run_id=summary.run_id)
            resumed.append(summary.run_id)
        if resumed:
            logger.info("resumed %d abandoned run(s): %s", len(resumed), ", ".join(resumed))
        return resumed

    async def wait(self, live: LiveRun) -> None:
        """Until the run's driver is done (its stream consumed, its status known)."""
        if live.driver is not None:
            await asyncio.wait({live.driver})

    async def aclose(self) -> None:
        """Stop the runs still going (the service stops): with a journal each is handed back,
        unfinished, and a replica (or this service, started again) resumes it; without one
        they are cancelled."""
        for live in list(self.live.values()):
            if live.stream is not None:
                live.stream.hand_back()  # journaled: left for a replica; else cancelled
        drivers = list(self._drivers)
        for driver in drivers:
            driver.cancel()
        for driver in drivers:
            with contextlib.suppress(asyncio.CancelledError):
                await driver

    # -- acting -----------------------------------------------------------------------------------

    async def cancel(self, run_id: str, principal: Principal) -> None:
        live = self.live.get(run_id)
        if live is None:
            summary = await self.summary(run_id, principal)
            raise Refused(409, _not_here(run_id, summary))
        _check_owner(principal, live.principal, run_id)
        if live.stream is not None:
            live.stream.cancel()

    async def decide(
        self, run_id: str, approval_id: str, decision: ApprovalDecision, principal: Principal
    ) -> None:
        live = self.live.get(run_id)
        if live is None:
            summary = await self.summary(run_id, principal)
            if summary["status"] == "parked":  # held by nobody: decide it here, resume it here
                await self._decide_parked(summary, approval_id, decision)
                return
            raise Refused(409, _not_here(run_id, summary))
        _check_owner(principal, live.principal, run_id)
        stream = live.stream
        if stream is None:
            raise Refused(409, f"run `{run_id}` has ended: nothing to decide.")
        try:
            if decision.approved:
                stream.approve(approval_id, decision.reason)
            else:
                stream.reject(approval_id, decision.reason)
        except UnknownTaskError:
            raise Refused(404, f"run `{run_id}` has no approval `{approval_id}`.") from None
        except AgentloopError as exc:
            raise Refused(409, str(exc)) from None

    async def _decide_parked(
        self, summary: Mapping[str, Any], task_id: str, decision: ApprovalDecision
    ) -> None:
        """Record the decision in the journal (the run's lease is the lock: two replicas
        deciding at once get one decision and one "already decided"), then resume the run
        here, streamed."""
        run_id = summary["run_id"]
        served = self.agents.get(summary.get("agent") or "")
        if served is None:
            raise Refused(409, f"run `{run_id}` belongs to an agent this service does not run.")
        try:
            await served.agent.decide(run_id, task_id, decision)
        except AgentloopError as exc:
            raise Refused(409, str(exc)) from None
        owner = Principal(summary.get("principal") or "local")
        with contextlib.suppress(Refused):  # resumed here already (a recovery pass won)
            self.start(served, summary["task"], owner, run_id=run_id)

    # -- reading ----------------------------------------------------------------------------------

    async def check_visible(self, run_id: str, principal: Principal) -> None:
        """404 unless the run exists and the caller may see it: its owner from memory, or
        from the journal's run row and first event (not the whole run, which a client
        following it is about to read)."""
        live = self.live.get(run_id) or self._finished.get(run_id)
        if live is not None:
            _check_owner(principal, live.principal, run_id)
            return
        if self.journal is None or await self._recorded(run_id) is None:
            raise Refused(404, f"no run `{run_id}`.")
        labels = (await self._labels_of([run_id]))[run_id]
        _check_owner(principal, labels.get("principal"), run_id)

    async def summary(self, run_id: str, principal: Principal) -> dict[str, Any]:
        """The run as JSON with its tasks (404 if unknown or not the caller's)."""
        live = self.live.get(run_id) or self._finished.get(run_id)
        recorded = await self._recorded(run_id) if self.journal is not None else None
        if live is None and recorded is None:
            raise Refused(404, f"no run `{run_id}`.")
        facts = fold(await self.events(run_id))
        shown = self._shape(run_id, live, recorded, facts)
        _check_owner(principal, shown["principal"], run_id)
        shown["tasks"] = list(facts.tasks.values())
        return shown

    async def listing(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        agent: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Runs the caller may see, newest first."""
        shown: list[dict[str, Any]] = []
        if self.journal is not None:
            journal = self.journal
            summaries = await anyio.to_thread.run_sync(lambda: journal.runs(limit=limit * 4))
            labels = await self._labels_of([s.run_id for s in summaries])
            for summary in summaries:
                facts = RunFacts(labels=labels.get(summary.run_id, {}))
                log = self.hub.log(summary.run_id)
                if log is not None and log.base == 0:
                    facts = fold(f.data for f in log.frames)
                live = self.live.get(summary.run_id) or self._finished.get(summary.run_id)
                shown.append(self._shape(summary.run_id, live, summary, facts))
        else:
            runs = [*self.live.values(), *reversed(self._finished.values())]
            runs.sort(key=lambda r: r.started_at, reverse=True)
            for live in runs:
                facts = fold(f.data for f in self.hub.frames(live.run_id))
                shown.append(self._shape(live.run_id, live, None, facts))
        wanted = [
            run
            for run in shown
            if principal.may_see(run["principal"])
            and (status is None or run["status"] == status)
            and (agent is None or run["agent"] == agent)
        ]
        return wanted[:limit]

    async def approvals(self, run_id: str, principal: Principal) -> list[dict[str, Any]]:
        shown = await self.summary(run_id, principal)
        if shown["status"] == "parked" and run_id not in self.live:
            served = self.agents.get(shown.get("agent") or "")
            if served is not None:
                return [_approval(r) for r in await served.agent.pending_approvals(run_id)]
        facts = fold(await self.events(run_id))
        return list(facts.approvals.values()) if shown["status"] in _WAITING else []

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of the run: from this process's memory when it holds them all, else
        from the journal."""
        log = self.hub.log(run_id)
        if log is not None and (log.base == 0 or self.journal is None):
            return [dict(f.data) for f in log.frames]
        if self.journal is None:
            return []
        journal, after = self.journal, 0
        found: list[dict[str, Any]] = []
        while True:
            batch = await anyio.to_thread.run_sync(
                functools.partial(journal.events, run_id, after=after, limit=1000)
            )
            found.extend(dict(e.data) for e in batch)
            if len(batch) < 1000:
                return found
            after = batch[-1].seq

    async def _recorded(self, run_id: str) -> RunSummary | None:
        journal = self.journal
        assert journal is not None
        return await anyio.to_thread.run_sync(journal.run, run_id)

    async def _labels_of(self, run_ids: list[str]) -> dict[str, dict[str, str]]:
        """Each run's labels (its first event), read once per process and kept."""
        missing = [run_id for run_id in run_ids if run_id not in self._labels]
        journal = self.journal
        if missing and journal is not None:

            def read() -> dict[str, dict[str, str]]:
                found = {}
                for run_id in missing:
                    first = journal.events(run_id, limit=1)
                    found[run_id] = fold([first[0].data]).labels if first else {}
                return found

            for run_id, labels in (await anyio.to_thread.run_sync(read)).items():
                if labels:  # none yet (its first event is not committed): ask again later
                    self._labels[run_id] = labels
            while len(self._labels) > 10_000:
                self._labels.popitem(last=False)
        return {run_id: self._labels.get(run_id, {}) for run_id in run_ids}

    def _shape(
        self,
        run_id: str,
        live: LiveRun | None,
        recorded: RunSummary | None,
        facts: RunFacts,
    ) -> dict[str, Any]:
        labels = facts.labels
        if recorded is not None:
            holder = recorded.holder
            status = recorded.status.value
            return {
                "run_id": run_id,
                "agent": labels.get("agent", live.agent if live else None),
                "status": status,
                "task": recorded.task,
                "principal": labels.get("principal", live.principal if live else None),
                "session_id": labels.get("session_id"),
                "started_at": recorded.started_at,
                "updated_at": recorded.updated_at,
                "steps": recorded.steps,
                "attempts": recorded.attempts,
                "holder": None if holder is None else {"host": holder.host, "pid": holder.pid},
                "answer": json_value(facts.answer) if facts.ended else None,
                "error": recorded.error,
                "usage": facts.usage,
                "pending_approvals": len(facts.approvals),
            }
        assert live is not None
        return {
            "run_id": run_id,
            "agent": live.agent,
            "status": live.status.value,
            "task": live.task,
            "principal": live.principal,
            "session_id": live.session_id,
            "started_at": live.started_at,
            "updated_at": live.ended_at or time.time(),
            "steps": facts.steps,
            "attempts": 1,
            "holder": None,
            "answer": live.answer,
            "error": live.error,
            "usage": facts.usage,
            "pending_approvals": len(facts.approvals),
        }


_WAITING = frozenset({"running", "parked"})


def _check_owner(principal: Principal, owner: str | None, run_id: str) -> None:
    if not principal.may_see(owner):
        raise Refused(404, f"no run `{run_id}`.")  # not "forbidden": do not confirm it exists


def _not_here(run_id: str, summary: Mapping[str, Any]) -> str:
    holder = summary.get("holder")
    if summary.get("status") not in _WAITING:
        return f"run `{run_id}` is {summary.get('status')}: nothing to act on."
    if holder:
        return (
            f"run `{run_id}` runs in process {holder['pid']} on {holder['host']}; "
            "send this to the replica that holds it."
        )
    return f"run `{run_id}` is not running in this process."


def _approval(request: Any) -> dict[str, Any]:
    """A parked run's pending request (`agent.pending_approvals`) as the routes show it."""
    return {
        "approval_id": request.task_id,
        "task_id": request.task_id,
        "target": request.target,
        "arguments": json_value(request.arguments),
        "asked_by": list(request.asked_by),
        "requested_at": None,
    }


def _ended(live: LiveRun, data: Mapping[str, Any]) -> None:
    """The run's status from its end event (before any client can read that event)."""
    live.ended_at = time.time()
    if data.get("kind") == "final_answer":
        live.status, live.answer = RunStatus.COMPLETED, data.get("answer")
        return
    live.error = str(data.get("error"))
    cancelled = live.error.startswith("CancelledError")
    live.status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
