"""Running an agent's MCP server: over stdio (`serve_stdio`) or Streamable HTTP
(`streamable_http_app`, an ASGI app for uvicorn or to mount in a Starlette/FastAPI app).

stdio is the caller's own process: whoever started it is the only client, so there is no
authentication. The SDK's stdio transport points fd 1 at stderr while it serves, so a stray
`print` (a tool's, smolagents') cannot corrupt the protocol; it reads stdin in a worker thread
of anyio's (the SDK's transport, used as it is).

Streamable HTTP is secure by default, the way the run service is (docs/serve.md): without an
`auth` hook it answers loopback clients only; the SDK's DNS-rebinding protection is on (the
`Host` header must be a loopback name, or one of `allowed_hosts`; a browser's `Origin` too).
`auth` is the run service's kind of hook, a coroutine `(request) -> principal | None`
(`agentloop.serve.bearer_tokens({...})` is one): `None` is answered 401, and a principal's
`name` owns the MCP tasks it starts (another principal cannot see them). The hook is typed
structurally here, so this package does not import the service's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._agent_server import PRINCIPAL_KEY, agent_server

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ..agent.async_agent import AsyncAgent

__all__ = ["LOOPBACK_HOSTS", "Auth", "serve_stdio", "streamable_http_app"]

Auth = Callable[["Request"], Awaitable[Any]]
"""An authentication hook: the request's principal (its `name` is used), or `None` (401)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


async def serve_stdio(agent: AsyncAgent, **options: Any) -> None:
    """Serve `agent` over this process's stdin and stdout until the client closes stdin.

    `options` are `agent_server`'s (`owns_agent=True` opens and closes the agent here)."""
    from mcp.server.stdio import stdio_server

    server = agent_server(agent, **options)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def streamable_http_app(
    agent: AsyncAgent,
    *,
    path: str = "/mcp",
    auth: Auth | None = None,
    allowed_hosts: Sequence[str] = (),
    stateless: bool = False,
    json_response: bool = False,
    **options: Any,
) -> Starlette:
    """An ASGI app serving `agent` over MCP's Streamable HTTP transport at `path`.

    ```python
    app = streamable_http_app(agent, owns_agent=True)   # uvicorn myapp:app
    ```

    Args:
        agent: the agent to serve.
        path: the MCP endpoint.
        auth: a hook `(request) -> principal | None`; without one, only loopback clients are
            answered.
        allowed_hosts: names (or `name:port`) the server is reached by, besides the loopback
            names (DNS-rebinding protection).
        stateless: no MCP session between requests (each request stands alone).
        json_response: answer with JSON instead of an SSE stream (no progress then).
        options: `agent_server`'s.

    The app's lifespan starts the server (and, with `owns_agent=True`, opens the agent); when
    you mount it in another app, run its lifespan from yours (docs/mcp.md).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    hosts: list[str] = []
    for name in [*LOOPBACK_HOSTS, *allowed_hosts]:  # a bare name: on any port
        hosts += [name] if ":" in name.strip("[]") else [name, f"{name}:*"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")],
    )
    server = agent_server(agent, **options)
    app = server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=stateless,
        json_response=json_response,
        transport_security=security,
    )
    app.add_middleware(_Guard, auth=auth)
    return app


class _Guard:
    """ASGI middleware: who may call (the auth hook, or loopback clients only)."""

    def __init__(self, app: ASGIApp, auth: Auth | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.auth is None:
            client = scope.get("client")
            if not client or not _is_loopback(str(client[0])):
                await _refuse(
                    send,
                    403,
                    "this MCP server answers loopback clients only "
                    "(serve it with an `auth` hook to answer others)",
                )
                return
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        principal = await self.auth(Request(scope, receive))
        if principal is None:
            await _refuse(send, 401, "missing or wrong credentials", bearer=True)
            return
        name = getattr(principal, "name", principal)
        scope.setdefault("state", {})[PRINCIPAL_KEY] = str(name)
        await self.app(scope, receive, send)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _refuse(send: Send, status: int, message: str, *, bearer: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
