"""`create_web_app`: the page, its two assets, the list of runnable agents, and the SSE route.

Routes (all relative, so the app works mounted under a prefix):

- `GET /` the page; `GET /static/app.js`, `GET /static/app.css` its assets.
- `GET /scenarios` the agents the form offers: `[{"name", "title", "task"}]`.
- `GET /runs/stream?scenario=NAME[&task=TEXT]` one run of that agent as `text/event-stream`
  (the scenario's default task when `task` is empty). A browser's `EventSource` can only GET,
  so the run starts on a GET; requests another site's page makes (`Sec-Fetch-Site:
  cross-site`) are refused, so visiting a hostile page cannot start runs on your server.
  Leaving the page closes the stream, which cancels the run and its tasks.

`allowed_hosts` refuses requests whose `Host` header names another host (Starlette's
`TrustedHostMiddleware`, 400): a page on a hostile domain that resolves to 127.0.0.1 (DNS
rebinding) is same-origin to the browser, so the fetch-metadata check above does not see it,
but its requests carry the hostile domain in `Host`. `agentloop demo --web` allows the loopback
names only; an app you serve under a real name lists that name.

The assets are read once, when the app is built, from the installed package
(`importlib.resources`), so a wheel serves exactly what it ships.
"""

from __future__ import annotations

import difflib
import html
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..asgi import sse_response
from ..errors import InvalidArgumentsError

if TYPE_CHECKING:
    from ..agent.async_agent import AsyncAgent

__all__ = ["LOOPBACK_HOSTS", "MAX_TASK_CHARS", "WebScenario", "create_web_app"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""The `Host` values a server bound to the loopback interface answers."""

MAX_TASK_CHARS = 10_000
"""Longest task text the form may send."""

_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_CROSS_SITE = "cross-site"


@dataclass(frozen=True, kw_only=True)
class WebScenario:
    """One entry of the page's form: an agent, with the task text the form starts with."""

    agent: AsyncAgent
    task: str = ""
    """The default task text (used when the form's task field is left empty)."""
    title: str = ""
    """What the form shows for it (default: the name)."""


def create_web_app(
    agents: Mapping[str, AsyncAgent | WebScenario],
    *,
    title: str = "agentloop live run",
    owns_agents: bool = False,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """A Starlette app serving the live web view for `agents` (by the name the form shows).

    Args:
        agents: the agents a visitor may run, by name; a `WebScenario` adds a default task
            and a title.
        title: the page's title.
        owns_agents: close the agents when the app shuts down (its lifespan). Leave it
            `False` when something else closes them, e.g. a FastAPI app that mounts this one
            (Starlette does not run a mounted app's lifespan).
        allowed_hosts: the `Host` values to answer (e.g. `LOOPBACK_HOSTS`, or your server's
            name; `*.example.com` matches subdomains); others get 400. `None` checks nothing
            (an app mounted in yours, behind your own checks).
    """
    scenarios = {name: _scenario(name, value) for name, value in agents.items()}
    if not scenarios:
        raise InvalidArgumentsError("`agents` is empty: give at least one agent to run, by name.")
    page = _asset("index.html").replace("{{title}}", html.escape(title))
    assets = {name: _asset(name) for name in _ASSETS}

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return JSONResponse({"error": f"no asset `{name}`"}, status_code=404)
        return Response(assets[name], media_type=_ASSETS[name], headers=_NO_STORE)

    async def listing(request: Request) -> Response:
        return JSONResponse(
            [{"name": n, "title": s.title or n, "task": s.task} for n, s in scenarios.items()]
        )

    async def stream(request: Request) -> Response:
        if request.headers.get("sec-fetch-site") == _CROSS_SITE:
            return _error(403, "runs start only from this app's own page (cross-site request).")
        name = request.query_params.get("scenario", "")
        chosen = scenarios.get(name)
        if chosen is None:
            return _error(404, _unknown(name, list(scenarios)))
        task = request.query_params.get("task", "").strip() or chosen.task
        if not task:
            return _error(400, f"`task` is empty and `{name}` has no default task: send one.")
        if len(task) > MAX_TASK_CHARS:
            return _error(
                400, f"`task` has {len(task)} characters; at most {MAX_TASK_CHARS} are accepted."
            )
        return sse_response(chosen.agent.astream(task))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_agents:
                for scenario in scenarios.values():
                    await scenario.agent.aclose()

    return Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", asset),
            Route("/scenarios", listing),
            Route("/runs/stream", stream),
        ],
        lifespan=lifespan,
        middleware=[]
        if allowed_hosts is None
        else [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
    )


_NO_STORE = {"Cache-Control": "no-store"}


def _scenario(name: str, value: AsyncAgent | WebScenario) -> WebScenario:
    if isinstance(value, WebScenario):
        return value
    if not callable(getattr(value, "astream", None)):
        raise InvalidArgumentsError(
            f"`agents[{name!r}]` must be an AsyncAgent or a WebScenario, "
            f"received {type(value).__name__}."
        )
    return WebScenario(agent=value)


def _unknown(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" did you mean `{close[0]}`?" if close else ""
    return f"unknown scenario `{name}`;{hint} available: {', '.join(names)}."


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _asset(name: str) -> str:
    return resources.files("agentloop.web").joinpath("static", name).read_text(encoding="utf-8")
