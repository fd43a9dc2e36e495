"""`create_app`: the run service's Starlette app (routes in docs/serve.md).

The routes are thin: each checks who asks and what it may do (`_guard`), then asks the
`RunService` (`_runs`), the `SessionBook` (`_sessions`) or the `EventHub` (`_events`). The app's
lifespan connects the hub to each agent's journal writer (committed events reach clients at
once) and, on the way out, stops the runs it started and closes what it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..asgi import ClientDisconnected, cancel_on_disconnect
from ..core.approvals import ApprovalDecision
from ..errors import InvalidArgumentsError
from ..journal.base import Journal
from ._agui_routes import agui_routes
from ._auth import Auth, Principal
from ._events import EventHub, Frame
from ._guard import Guard, Refused, RunRate
from ._runs import LiveRun, RunService, ServedAgent
from ._sessions import Busy, SessionBook
from .a2a._mount import mount_a2a

if TYPE_CHECKING:
    from ..agent.async_agent import AsyncAgent

__all__ = ["LOOPBACK_HOSTS", "create_app"]

logger = logging.getLogger("agentloop")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_TASK_CHARS = 10_000
_CONSOLE_ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    **{  # the console's other ES modules (console.js imports them)
        name: "text/javascript; charset=utf-8"
        for name in ("api.js", "dom.js", "gantt.js", "run.js", "runs.js")
    },
}
_NO_STORE = {"Cache-Control": "no-store"}

Handler = Callable[[Request, Principal], Awaitable[Response]]


def create_app(
    agents: AsyncAgent | Mapping[str, AsyncAgent | ServedAgent],
    *,
    journal: Journal | None = None,
    auth: Auth | None = None,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
    runs_per_minute: int = 60,
    max_body_bytes: int = 64 * 1024,
    max_task_chars: int = MAX_TASK_CHARS,
    busy: Busy | str = Busy.REJECT,
    poll_interval: float = 0.25,
    recover_interval: float | None = 10.0,
    title: str = "agentloop",
    owns_agents: bool = False,
) -> Starlette:
    """The run service for `agents` (one agent, or agents by the name clients use).

    Args:
        journal: where runs are read from: by default the agents' own journal (they must
            share one). With one, any replica answers any request; without, runs live in
            this process's memory.
        auth: the authentication hook (`bearer_tokens(...)` or your own coroutine). Without
            one, only loopback clients are answered.
        allowed_hosts: the `Host` values answered (DNS rebinding); `None` checks nothing
            (an app mounted behind your own checks). Add your server's name when you serve
            it under one.
        runs_per_minute: new runs per principal per minute (429 beyond); 0 for no bound.
        max_body_bytes, max_task_chars: bounds of a request body and a task text.
        busy: what a message to a session whose turn still runs does (`Busy`).
        poll_interval: how often a run another process holds is read from the journal.
        recover_interval: with a journal, how often to look for runs whose process died
            (or that were handed back) and resume them here, as well as at startup; `None`
            never does.
        owns_agents: close the agents when the app shuts down.
    """
    served = _served(agents)
    store = _journal_of(served, journal)
    hub = EventHub(store, poll_interval=poll_interval)
    runs = RunService(served, hub, store)
    sessions = SessionBook(runs, Busy(busy))
    guard = Guard(auth=auth, max_body_bytes=max_body_bytes)
    rate = RunRate(runs_per_minute)
    page = _console("index.html").replace("{{title}}", html.escape(title))
    assets = {name: _console(name) for name in _CONSOLE_ASSETS}
    a2a = mount_a2a(served, runs, sessions, guard, rate, max_task_chars)  # None without a2a-sdk

    def route(handler: Handler, *, changes_state: bool = False) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            try:
                if changes_state:
                    guard.check_state_change(request)
                principal = await guard.principal(request)
                return await handler(request, principal)
            except Refused as refused:
                return JSONResponse(
                    {"error": refused.message}, refused.status, headers=refused.headers
                )

        return endpoint

    async def task_text(body: Mapping[str, Any]) -> str:
        task = body.get("task")
        if not isinstance(task, str) or not task.strip():
            raise Refused(400, "`task` must be a non-empty string.")
        if len(task) > max_task_chars:
            raise Refused(
                413, f"`task` has {len(task)} characters; at most {max_task_chars} are accepted."
            )
        return task

    # -- routes ----------------------------------------------------------------------------------

    async def console(request: Request, principal: Principal) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    async def asset(request: Request, principal: Principal) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            raise Refused(404, f"no asset `{name}`")
        return Response(assets[name], media_type=_CONSOLE_ASSETS[name], headers=_NO_STORE)

    async def list_agents(request: Request, principal: Principal) -> Response:
        return _json(
            [{"name": s.name, "title": s.title or s.name, "task": s.task} for s in served.values()]
        )

    async def start_run(request: Request, principal: Principal) -> Response:
        body = await guard.json_body(request)
        chosen = runs.served(body.get("agent", next(iter(served)) if len(served) == 1 else None))
        task = await task_text(body)
        run_id = body.get("run_id")
        if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= 200):
            raise Refused(400, "`run_id` must be a string of 1 to 200 characters.")
        rate.take(principal.name)
        live = runs.start(chosen, task, principal, run_id=run_id)
        if body.get("wait") is True:  # the request owns the run: its client leaving stops it
            return await waited(request, live, principal)
        return _json({"run": await runs.summary(live.run_id, principal)}, 202)

    async def waited(request: Request, live: LiveRun, principal: Principal) -> Response:
        try:
            await cancel_on_disconnect(request, runs.wait(live))
        except ClientDisconnected:  # nobody to answer: the run is cancelled, say so in the log
            if live.stream is not None:
                live.stream.cancel()
            logger.info("run %s cancelled: its waiting client disconnected", live.run_id)
            return Response(status_code=499)
        except BaseException:
            if live.stream is not None:
                live.stream.cancel()
            raise
        return _json({"run": await runs.summary(live.run_id, principal)})

    async def list_runs(request: Request, principal: Principal) -> Response:
        query = request.query_params
        limit = _int(query.get("limit"), 100, 1, 1000)
        found = await runs.listing(
            principal, status=query.get("status") or None, agent=query.get("agent") or None,
            limit=limit,
        )  # fmt: skip
        return _json({"runs": found})

    async def get_run(request: Request, principal: Principal) -> Response:
        return _json({"run": await runs.summary(request.path_params["run_id"], principal)})

    async def cancel_run(request: Request, principal: Principal) -> Response:
        await guard.json_body(request)
        await runs.cancel(request.path_params["run_id"], principal)
        return _json({"cancelled": True}, 202)

    async def list_approvals(request: Request, principal: Principal) -> Response:
        found = await runs.approvals(request.path_params["run_id"], principal)
        return _json({"approvals": found})

    async def decide(request: Request, principal: Principal) -> Response:
        body = await guard.json_body(request)
        approved, reason = body.get("approved"), body.get("reason", "")
        if not isinstance(approved, bool) or not isinstance(reason, str) or len(reason) > 2000:
            raise Refused(400, "send `approved` (true or false) and maybe a `reason` string.")
        decision = ApprovalDecision(approved=approved, reason=reason)
        params = request.path_params
        await runs.decide(params["run_id"], params["approval_id"], decision, principal)
        return _json({"decided": True, "approved": approved})

    async def events(request: Request, principal: Principal) -> Response:
        run_id = request.path_params["run_id"]
        await runs.check_visible(run_id, principal)
        after = _int(
            request.headers.get("last-event-id") or request.query_params.get("after"), 0, 0, None
        )
        deltas = request.query_params.get("deltas") in ("1", "true")
        return StreamingResponse(
            _sse(hub.follow(run_id, after, deltas=deltas)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def open_session(request: Request, principal: Principal) -> Response:
        body = await guard.json_body(request)
        chosen = runs.served(body.get("agent", next(iter(served)) if len(served) == 1 else None))
        session_id = body.get("session_id")
        if session_id is not None and (
            not isinstance(session_id, str) or not 0 < len(session_id) <= 200
        ):
            raise Refused(400, "`session_id` must be a string of 1 to 200 characters.")
        return _json({"session": await sessions.open(chosen, principal, session_id)}, 201)

    async def get_session(request: Request, principal: Principal) -> Response:
        return _json({"session": sessions.get(request.path_params["session_id"], principal)})

    async def message(request: Request, principal: Principal) -> Response:
        body = await guard.json_body(request)
        task = await task_text(body)
        rate.take(principal.name)
        live = await sessions.message(request.path_params["session_id"], task, principal)
        if body.get("wait") is True:
            return await waited(request, live, principal)
        return _json({"run": await runs.summary(live.run_id, principal)}, 202)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        journaled = {id(s.agent): s.agent for s in served.values() if s.agent.journal}
        unlisten = [agent.listen_journal(hub.committed) for agent in journaled.values()]
        recovering = None
        if store is not None and recover_interval is not None:
            recovering = asyncio.create_task(_recover(runs, recover_interval))
        try:
            yield
        finally:
            if recovering is not None:
                recovering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovering
            for stop in unlisten:
                stop()
            if a2a is not None:
                await a2a.aclose()
            await sessions.aclose()
            await runs.aclose()
            await hub.aclose()
            if owns_agents:
                for each in {id(s.agent): s.agent for s in served.values()}.values():
                    await each.aclose()

    post_only = ["POST"]
    routes = [
        Route("/", route(console)),
        Route("/static/{name}", route(asset)),
        Route("/api/agents", route(list_agents)),
        Route("/api/runs", route(list_runs), methods=["GET"]),
        Route("/api/runs", route(start_run, changes_state=True), methods=post_only),
        Route("/api/runs/{run_id}", route(get_run)),
        Route(
            "/api/runs/{run_id}/cancel", route(cancel_run, changes_state=True), methods=post_only
        ),
        Route("/api/runs/{run_id}/events", route(events)),
        Route("/api/runs/{run_id}/approvals", route(list_approvals)),
        Route(
            "/api/runs/{run_id}/approvals/{approval_id}",
            route(decide, changes_state=True),
            methods=post_only,
        ),
        Route("/api/sessions", route(open_session, changes_state=True), methods=post_only),
        Route("/api/sessions/{session_id}", route(get_session)),
        Route(
            "/api/sessions/{session_id}/messages",
            route(message, changes_state=True),
            methods=post_only,
        ),
        *(a2a.routes if a2a is not None else []),
        *agui_routes(  # AG-UI (docs/protocols.md)
            route=route,
            runs=runs,
            sessions=sessions,
            hub=hub,
            guard=guard,
            rate=rate,
            max_task_chars=max_task_chars,
        ),
    ]
    middleware = (
        []
        if allowed_hosts is None
        else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    )
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.runs = runs
    app.state.hub = hub
    return app


async def _recover(runs: RunService, every: float) -> None:
    """Resume abandoned runs at startup and every `every` seconds (a failed pass is logged
    and tried again: the journal may be briefly unreachable)."""
    while True:
        try:
            await runs.recover()
        except Exception:
            logger.exception("looking for abandoned runs failed; trying again in %s s", every)
        await asyncio.sleep(every)


async def _sse(batches: AsyncIterator[list[Frame] | None]) -> AsyncIterator[str]:
    """SSE text of `batches`, one write per batch: a `: keep-alive` comment for each quiet
    interval (`None`)."""
    try:
        async for batch in batches:
            yield ": keep-alive\n\n" if batch is None else "".join(f.text for f in batch)
    finally:
        closing = getattr(batches, "aclose", None)
        if closing is not None:
            await asyncio.shield(closing())


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status)


def _int(text: str | None, default: int, least: int, most: int | None) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise Refused(400, f"{text!r:.40} is not a whole number.") from None
    if value < least or (most is not None and value > most):
        raise Refused(400, f"{value} is out of range.")
    return value


def _served(agents: Any) -> dict[str, ServedAgent]:
    if callable(getattr(agents, "astream", None)):
        agents = {getattr(agents, "name", None) or "agent": agents}
    if not isinstance(agents, Mapping) or not agents:
        raise InvalidArgumentsError(
            "`agents` must be an AsyncAgent or a non-empty mapping of names to agents."
        )
    served: dict[str, ServedAgent] = {}
    for name, value in agents.items():
        if isinstance(value, ServedAgent):
            served[name] = ServedAgent(
                name=name, agent=value.agent, title=value.title, task=value.task
            )
        elif callable(getattr(value, "astream", None)):
            served[name] = ServedAgent(name=name, agent=value)
        else:
            raise InvalidArgumentsError(
                f"`agents[{name!r}]` must be an AsyncAgent or a ServedAgent, "
                f"received {type(value).__name__}."
            )
    return served


def _journal_of(served: Mapping[str, ServedAgent], given: Journal | None) -> Journal | None:
    """The one journal the service reads: the agents' (all the same one, or none)."""
    journals = {id(s.agent.journal): s.agent.journal for s in served.values()}
    if len(journals) > 1:
        raise InvalidArgumentsError(
            "the agents have different journals (or some have none); a service reads one: "
            "create them with the same `journal=`."
        )
    (theirs,) = journals.values()
    if given is not None and theirs is not given:
        raise InvalidArgumentsError(
            "`journal` is not the agents' journal; the service reads the runs the agents "
            "write: create the agents with `journal=` that journal, and leave this out."
        )
    return theirs


def _console(name: str) -> str:
    return resources.files("agentloop.serve").joinpath("console", name).read_text(encoding="utf-8")
