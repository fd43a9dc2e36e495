"""The service's AG-UI routes: a thread is a session, a run is its turn, an approval is an
interrupt (docs/protocols.md).

- `POST /api/agents/{agent}/agui` takes a `RunAgentInput`. A new `runId` on a thread starts
  the session's next turn (its last user message is the task); an input with `resume` entries
  decides the approvals the thread's last AG-UI run was interrupted for and streams the same
  turn on from there; the `runId` of a run already started, with `Last-Event-ID`, is a
  reconnect: the rest of that AG-UI run.
- `GET /api/runs/{run_id}/agui` shows any run the caller may see as AG-UI (approvals as
  `CUSTOM` events, no interrupt), resumable with `Last-Event-ID` like its native stream.

Every AG-UI run is read from the service's event stream of the agentloop run (`EventHub`), so
it is journaled, listed and shown in the console like any run. A reconnect replays the run's
events from the first through the mapper (which is deterministic) and sends what comes after
the id the client saw. Threads are held in this process, like the sessions they name.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..core.approvals import ApprovalDecision
from ._agui_map import AguiMapper
from ._auth import Principal
from ._events import EventHub
from ._guard import Guard, Refused, RunRate
from ._runs import RunService
from ._sessions import SessionBook

if TYPE_CHECKING:
    from ag_ui.core import ResumeEntry, RunAgentInput

__all__ = ["agui_routes"]

logger = logging.getLogger("agentloop")


@dataclass(eq=False)
class _AguiRun:
    """One AG-UI run: a stretch of one agentloop run, after event `after`."""

    run_id: str
    thread_id: str
    service_run: str
    after: int
    principal: str
    cut: int | None = None
    """The event it ended at with an interrupt (known once its stream reached it)."""


@dataclass(eq=False)
class _Thread:
    thread_id: str
    last: _AguiRun | None = None
    decided: set[str] = field(default_factory=set)


class _Threads:
    """The AG-UI threads and runs this process serves (bounded: oldest forgotten first)."""

    def __init__(self, most: int = 10_000) -> None:
        self.runs: OrderedDict[str, _AguiRun] = OrderedDict()
        self.threads: OrderedDict[str, _Thread] = OrderedDict()
        self._most = most

    def thread(self, thread_id: str) -> _Thread:
        found = self.threads.get(thread_id)
        if found is None:
            found = self.threads[thread_id] = _Thread(thread_id)
            _trim(self.threads, self._most)
        return found

    def add(self, run: _AguiRun) -> None:
        self.runs[run.run_id] = run
        _trim(self.runs, self._most)
        self.thread(run.thread_id).last = run


def agui_routes(
    *,
    route: Callable[..., Any],
    runs: RunService,
    sessions: SessionBook,
    hub: EventHub,
    guard: Guard,
    rate: RunRate,
    max_task_chars: int,
) -> list[Route]:
    """The routes, each wrapped by the service's `route` (identity, browser safety)."""
    threads = _Threads()

    async def post(request: Request, principal: Principal) -> Response:
        from .agui import AguiInputError, run_input_of, task_of

        served = runs.served(request.path_params["agent"])
        try:
            run_input = run_input_of(await guard.json_body(request))
            task = None if run_input.resume else task_of(run_input)
        except AguiInputError as error:
            return error.response()
        deltas = request.query_params.get("deltas") not in ("0", "false")
        known = threads.runs.get(run_input.run_id)
        if known is not None:  # a reconnect: the rest of that AG-UI run
            if known.thread_id != run_input.thread_id or not principal.may_see(known.principal):
                raise Refused(409, f"run `{run_input.run_id}` is another thread's.")
            after = _last_event_id(request)
            return _stream(hub, known, threads, after=after, deltas=deltas)
        thread = threads.thread(run_input.thread_id)
        if run_input.resume:
            agui_run = await _resume(runs, thread, run_input, principal)
        else:
            assert task is not None
            if len(task) > max_task_chars:
                raise Refused(
                    413, f"the task has {len(task)} characters; at most {max_task_chars}."
                )
            rate.take(principal.name)
            await sessions.open(served, principal, run_input.thread_id)
            live = await sessions.message(run_input.thread_id, task, principal)
            if hub.log(live.run_id) is None:  # its first event is not in yet: follow it live
                hub.opened(live.run_id)
            thread.decided.clear()
            agui_run = _AguiRun(
                run_input.run_id, run_input.thread_id, live.run_id, 0, principal.name
            )
        threads.add(agui_run)
        return _stream(hub, agui_run, threads, after=0, deltas=deltas)

    async def watch(request: Request, principal: Principal) -> Response:
        run_id = request.path_params["run_id"]
        shown = await runs.summary(run_id, principal)  # 404 unless the caller may see it
        after = _last_event_id(request)
        deltas = request.query_params.get("deltas") in ("1", "true")
        mapper = AguiMapper(
            key=run_id, thread_id=shown.get("session_id") or run_id, run_id=run_id,
            interrupts=False,
        )  # fmt: skip
        frames = _frames(hub, mapper, run_id, start=0, after=after, deltas=deltas)
        return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)

    return [
        Route("/api/agents/{agent}/agui", route(post, changes_state=True), methods=["POST"]),
        Route("/api/runs/{run_id}/agui", route(watch), methods=["GET"]),
    ]


async def _resume(
    runs: RunService, thread: _Thread, run_input: RunAgentInput, principal: Principal
) -> _AguiRun:
    """Decide what the resume entries answer, and continue the thread's interrupted run."""
    last = thread.last
    if last is None:
        raise Refused(409, f"thread `{thread.thread_id}` has no interrupted run to resume here.")
    cut = last.cut
    if cut is None:
        raise Refused(
            409,
            f"thread `{thread.thread_id}`'s last run `{last.run_id}` was not interrupted "
            "(or its stream was not read to its interrupt): nothing to resume.",
        )
    decisions = [(entry.interrupt_id, _decision(entry)) for entry in run_input.resume or ()]
    for approval_id, decision in decisions:  # every entry checked before any is decided
        await runs.decide(last.service_run, approval_id, decision, principal)
        thread.decided.add(approval_id)
    return _AguiRun(run_input.run_id, thread.thread_id, last.service_run, cut, principal.name)


def _decision(entry: ResumeEntry) -> ApprovalDecision:
    """A resume entry as an approval decision: `cancelled` rejects; `resolved` carries
    `{"approved": bool, "reason"?: str}` (or a bare boolean)."""
    if entry.status == "cancelled":
        return ApprovalDecision(approved=False, reason="cancelled by the client")
    payload = entry.payload
    if isinstance(payload, bool):
        return ApprovalDecision(approved=payload)
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        reason = payload.get("reason", "")
        if isinstance(reason, str) and len(reason) <= 2000:
            return ApprovalDecision(approved=payload["approved"], reason=reason)
    raise Refused(
        422,
        f"resume entry `{entry.interrupt_id}`: a resolved approval's payload is "
        '{"approved": true|false, "reason"?: "..."} (or a bare boolean).',
    )


def _stream(
    hub: EventHub, agui_run: _AguiRun, threads: _Threads, *, after: int, deltas: bool
) -> StreamingResponse:
    thread = threads.thread(agui_run.thread_id)
    mapper = AguiMapper(
        key=agui_run.service_run, thread_id=agui_run.thread_id, run_id=agui_run.run_id,
        interrupts=True,
    )  # fmt: skip
    mapper.decided = thread.decided

    def interrupted(event_id: int) -> None:
        agui_run.cut = event_id

    frames = _frames(
        hub, mapper, agui_run.service_run, start=agui_run.after, after=after, deltas=deltas,
        on_cut=interrupted,
    )  # fmt: skip
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)


async def _frames(
    hub: EventHub,
    mapper: AguiMapper,
    run_id: str,
    *,
    start: int,
    after: int,
    deltas: bool,
    on_cut: Callable[[int], None] | None = None,
) -> AsyncIterator[str]:
    """The AG-UI run after event `start` of the service's run `run_id`, from event `after`
    on (a reconnect): every event from the first goes through `mapper`, only the AG-UI events
    of those past both ids are sent."""
    from .agui import encode

    agui_run = mapper.run_id
    shown = max(start, after)
    opened = False
    last = 0
    follow = hub.follow(run_id, 0, deltas=deltas)
    try:
        async for batch in follow:
            if batch is None:
                yield ": keep-alive\n\n"
                continue
            text = ""  # a batch of service events goes out as one write
            for item in batch:
                if item.id:
                    last = item.id
                if not opened and (item.id > start or (not item.id and last >= start)):
                    opened = True  # the events before this AG-UI run are folded in, not shown
                    if start:  # the AG-UI run before this one was closed at its interrupt
                        mapper.close()
                    begun = mapper.start_run(agui_run, item.data.get("at"))
                    if after == 0:
                        text += encode(begun)
                out = mapper.feed(item.data)
                if out and (item.id > shown or (not item.id and last >= shown)):
                    text += encode(out, item.id)
                if opened and mapper.finished:
                    if on_cut is not None and mapper.pending and item.id:
                        on_cut(item.id)
                    if text:
                        yield text
                    return
            if text:
                yield text
        if not mapper.finished:  # the run stopped without a recorded end
            yield encode(mapper.unfinished())
    finally:
        closing = getattr(follow, "aclose", None)
        if closing is not None:
            await closing()


def _last_event_id(request: Request) -> int:
    text = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        value = int(text)
    except ValueError:
        raise Refused(400, f"{text!r:.40} is not an event id.") from None
    if value < 0:
        raise Refused(400, f"{value} is not an event id.")
    return value


def _trim(found: OrderedDict[str, Any], most: int) -> None:
    while len(found) > most:
        found.popitem(last=False)


_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
