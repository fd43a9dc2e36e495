"""The A2A routes of the run service: each served agent's card and JSON-RPC endpoint.

`/a2a/{agent}/` takes A2A's JSON-RPC (`SendMessage`, `SendStreamingMessage`, `GetTask`,
`CancelTask`, `SubscribeToTask`, ...), answered by a2a-sdk's request handler and JSON-RPC
dispatcher over a `RunExecutor`; `/a2a/{agent}/.well-known/agent-card.json` is its card, with
its URL as the request reached it. Before the SDK sees a request it passes what every route
of the service passes (`_guard`): the auth hook (401 / 403 otherwise), the browser checks, the
body bound (read here, then handed on); the `Host` allow-list is the app's middleware. A
malformed request is answered by the dispatcher with JSON-RPC's own error, never a traceback.

A message's task id is derived from who sent it and its message id, so a message sent twice
(a client retrying, or a caller resumed after a crash) finds the task the first one started
instead of starting another run.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from a2a.auth.user import User
from a2a.server.agent_execution import SimpleRequestContextBuilder
from a2a.server.agent_execution.context import RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import InMemoryTaskStore
from a2a.types.a2a_pb2 import SendMessageRequest, SubscribeToTaskRequest, Task, TaskState
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..._version import __version__
from .._auth import Principal
from .._guard import Guard, Refused, RunRate
from .._runs import RunService, ServedAgent
from .._sessions import SessionBook
from ._card import agent_card
from ._executor import PRINCIPAL, SESSION, RunExecutor

__all__ = ["A2AService", "a2a_service"]

CARD_PATH = ".well-known/agent-card.json"
_ENDED = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


@dataclass
class A2AService:
    """The routes to splice into the app, and what to close with it."""

    routes: list[Route] = field(default_factory=list)
    handlers: list[DefaultRequestHandlerV2] = field(default_factory=list)

    async def aclose(self) -> None:
        for handler in self.handlers:
            await handler.aclose()


def a2a_service(
    served: Mapping[str, ServedAgent],
    runs: RunService,
    sessions: SessionBook,
    guard: Guard,
    rate: RunRate,
    max_task_chars: int,
) -> A2AService:
    service = A2AService()
    for name, agent in served.items():
        executor = RunExecutor(agent, runs, sessions, rate, max_task_chars)
        handler = _Handler(
            agent_executor=executor,
            task_store=InMemoryTaskStore(),
            agent_card=agent_card(agent, "http://localhost/", authenticated=False, version="0"),
            request_context_builder=_TaskIds(),
        )
        dispatcher = JsonRpcDispatcher(request_handler=handler, context_builder=_CallContext())
        service.handlers.append(handler)
        service.routes += [
            Route(f"/a2a/{name}/", _rpc(dispatcher, guard), methods=["POST"]),
            Route(f"/a2a/{name}/{CARD_PATH}", _card(agent, guard), methods=["GET"]),
        ]
    return service


def _rpc(dispatcher: JsonRpcDispatcher, guard: Guard) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            guard.check_state_change(request)
            principal = await guard.principal(request)
            body = await _body(request, guard.max_body_bytes)
        except Refused as refused:
            error = {"code": -32600, "message": refused.message}
            return JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": error},
                refused.status,
                headers=refused.headers,
            )
        scope = {**request.scope, PRINCIPAL: principal}
        sent = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                return await request.receive()  # the client leaving, for the SSE response
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await dispatcher.handle_requests(Request(scope, receive))

    return endpoint


def _card(served: ServedAgent, guard: Guard) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            await guard.principal(request)
        except Refused as refused:
            return JSONResponse({"error": refused.message}, refused.status, refused.headers)
        url = str(request.url).split("?", 1)[0].removesuffix(CARD_PATH)
        card = agent_card(served, url, authenticated=guard.auth is not None, version=__version__)
        return JSONResponse(agent_card_to_dict(card), headers={"Cache-Control": "no-store"})

    return endpoint


async def _body(request: Request, most: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > most:
        raise Refused(413, f"the body is over {most} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise Refused(413, f"the body is over {most} bytes.")
    return bytes(body)


class _Caller(User):
    def __init__(self, principal: Principal) -> None:
        self._name = principal.name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._name


class _CallContext(DefaultServerCallContextBuilder):
    """The caller (from the guard) in the call context; tasks are kept per caller."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        principal = request.scope[PRINCIPAL]
        context.state[PRINCIPAL] = principal
        context.user = _Caller(principal)
        return context


def task_id_for(principal: str, message_id: str) -> str:
    """The task a message starts: the same message from the same caller, the same task."""
    digest = hashlib.sha256(f"{principal}\0{message_id}".encode()).hexdigest()
    return f"a2a-{digest[:32]}"


class _TaskIds(SimpleRequestContextBuilder):
    async def build(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: Task | None = None,
    ) -> RequestContext:
        if task_id is None and params is not None and params.message.message_id:
            task_id = task_id_for(context.state[PRINCIPAL].name, params.message.message_id)
        return await super().build(context, params, task_id, context_id, task)


class _Handler(DefaultRequestHandlerV2):
    """The SDK's handler, with a message sent twice finding the task the first started."""

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Any:
        found = await self._started(params, context)
        if found is not None:
            return found
        return await super().on_message_send(params, context)

    async def on_message_send_stream(  # type: ignore[override]
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncIterator[Any]:
        found = await self._started(params, context)
        if found is None:
            async for event in super().on_message_send_stream(params, context):
                yield event
        elif found.status.state in _ENDED:
            yield found
        else:
            request = SubscribeToTaskRequest(id=found.id)
            async for event in self.on_subscribe_to_task(request, context):
                yield event

    async def _started(self, params: SendMessageRequest, context: ServerCallContext) -> Task | None:
        message = params.message
        context.state[SESSION] = bool(message.context_id) and not message.task_id
        if message.task_id or not message.message_id:
            return None
        task_id = task_id_for(context.state[PRINCIPAL].name, message.message_id)
        stored = await self._versioned_store.get(task_id, context)
        return None if stored is None else stored.task
