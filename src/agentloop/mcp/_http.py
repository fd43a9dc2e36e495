"""The Streamable HTTP transport: the SDK's `streamable_http_client`, with agentloop's bounds.

The SDK's transport is used as it is (sessions, SSE streams, resumption, origin-checked
redirects). Two things are added around it: headers come from the description and, at each
(re)connect, from its `auth` callable; and a JSON response body larger than the server's
`max_message_bytes` fails its request instead of being read into memory whole (the SDK bounds
each SSE event, to the same limit here, but reads a JSON body with no bound).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ._config import ServerConfig

if TYPE_CHECKING:
    import httpx2

__all__ = ["http_transport"]

CONNECT_TIMEOUT = 30.0


async def server_headers(server: ServerConfig) -> dict[str, str]:
    headers = dict(server.headers or {})
    if server.auth is not None:
        extra = server.auth()
        if inspect.isawaitable(extra):
            extra = await extra
        if not isinstance(extra, Mapping):
            raise TypeError(f"the `auth` callable returned {type(extra).__name__}, not headers")
        headers.update({str(k): str(v) for k, v in extra.items()})
    return headers


@contextlib.asynccontextmanager
async def http_transport(server: ServerConfig) -> AsyncIterator[tuple[Any, Any]]:
    """Yield the (read, write) streams a `ClientSession` takes, for `server.url`."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    assert server.url is not None
    read_timeout = max(server.call_timeout or 0.0, 300.0)  # SSE streams stay open for long
    client = httpx2.AsyncClient(
        headers=await server_headers(server),
        timeout=httpx2.Timeout(CONNECT_TIMEOUT, read=read_timeout),
        transport=_bounded_transport_class()(httpx2.AsyncHTTPTransport(), server.max_message_bytes),
    )
    async with (
        client,
        streamable_http_client(
            server.url, http_client=client, max_sse_event_size=server.max_message_bytes
        ) as (read, write),
    ):
        yield read, write


@functools.cache
def _bounded_transport_class() -> type[Any]:
    """Made on first use, once: `httpx2` is imported only when an HTTP server is used."""
    import httpx2

    class BoundedTransport(httpx2.AsyncBaseTransport):
        """Fails a non-SSE response whose body passes `limit` bytes, as it streams in."""

        def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
            self._inner = inner
            self._limit = limit

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            response = await self._inner.handle_async_request(request)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return response  # the SDK bounds each event itself
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self._limit:
                await response.aclose()
                raise httpx2.StreamError(self._too_big())
            return httpx2.Response(
                response.status_code,
                headers=response.headers,
                stream=_BoundedStream(response, self._limit, self._too_big()),
                request=request,
                extensions=response.extensions,
            )

        def _too_big(self) -> str:
            return f"the server sent a response larger than {self._limit} bytes (max_message_bytes)"

        async def aclose(self) -> None:
            await self._inner.aclose()

    class _BoundedStream(httpx2.AsyncByteStream):
        def __init__(self, response: httpx2.Response, limit: int, message: str) -> None:
            self._response = response
            self._limit = limit
            self._message = message

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self._response.aiter_raw():
                seen += len(chunk)
                if seen > self._limit:
                    raise httpx2.StreamError(self._message)
                yield chunk

        async def aclose(self) -> None:
            await self._response.aclose()

    return BoundedTransport
