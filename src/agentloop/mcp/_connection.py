"""One MCP server's session, opened, used and closed by one owner task on agentloop's loop.

The MCP SDK is built on anyio, whose cancel scopes and task groups must be exited by the task
that entered them. Sessions entered in one task and closed in another are what peers' users
meet as "Attempted to exit cancel scope in a different task"; sessions run in a private thread
and loop are what they meet as "Event loop is closed". Here each session has an *owner task*
(the shape pydantic-ai, Microsoft's Agent Framework and the OpenAI Agents SDK arrived at): it
enters the transport and the `ClientSession`, initializes, then waits until it is told to stop
or the connection is lost, and exits both itself. Calls come from any task of any run: a
request only writes to the session's streams and waits for its answer, which anyio allows from
any task. The owner task runs in an empty context, so no run's span or task leaks into it.

A lost connection (the process died, a limit was hit, an HTTP server restarted and forgot the
session) ends its owner; calls in flight fail with `MCPServerError` naming the server and the
cause; the next call opens a new session, with bounded retries and backoff. `generation`
numbers the sessions, so a late failure of an old one cannot end a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._text import bounded, describe
from .._version import __version__
from ..errors import MCPServerError, RegistryClosedError
from ._config import ServerConfig
from ._stdio import StdioDiagnostics
from ._task_wire import negotiate, session_extensions, supports_tasks

if TYPE_CHECKING:
    from mcp.shared.dispatcher import ProgressFnT
    from mcp_types import CallToolResult, Result, Tool

    from mcp import ClientSession

__all__ = ["ServerConnection"]

logger = logging.getLogger("agentloop")

CLOSE_GRACE = 10.0
"""Seconds an owner task gets to close its session before it is cancelled (the stdio
transport's own shutdown, ~4 s at worst, is shielded and runs to its end either way)."""
MAX_TOOL_PAGES = 100
"""Pages of `tools/list` read at most (a server that pages forever cannot hang a run)."""


class ServerConnection:
    """The session with one server, shared by every run of one registry."""

    def __init__(self, server: ServerConfig, on_tools_changed: Callable[[], None]) -> None:
        self.server = server
        self._on_tools_changed = on_tools_changed
        self._session: ClientSession | None = None
        self._generation = 0
        self._stop: asyncio.Event | None = None
        self._owner: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[tuple[ClientSession, int]] | None = None
        self._diagnostics = StdioDiagnostics()
        self._lost_reason = ""
        self._closed = False
        self.connects = 0
        """Sessions opened so far (tests and statistics read it)."""
        self.pids: list[int] = []
        """The stdio server processes started so far (each reaped when its session ends)."""

    # -- the session --------------------------------------------------------------------------

    async def session(self) -> tuple[ClientSession, int]:
        """The open session and its generation, connecting first if there is none. Callers
        that arrive meanwhile share one connection attempt; cancelling one of them does not
        cancel it."""
        if self._session is not None:
            return self._session, self._generation
        if self._closed:
            raise RegistryClosedError(f"MCP server `{self.server.name}`: its registry is closed.")
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = asyncio.get_running_loop().create_task(
                self._connect(),
                name=f"agentloop-mcp-connect-{self.server.name}",
                context=contextvars.Context(),
            )
            connecting.add_done_callback(_retrieve)
            self._connecting = connecting
        return await asyncio.shield(connecting)

    async def _connect(self) -> tuple[ClientSession, int]:
        server = self.server
        # the SDK's first import takes a second or two: in a worker thread, not on the loop
        await anyio.to_thread.run_sync(_import_sdk, server.transport)
        attempts = 1 + server.reconnect_attempts
        error: MCPServerError | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(server.reconnect_backoff * 2 ** (attempt - 1))
            if self._closed:
                break
            try:
                return await self._open()
            except MCPServerError as exc:
                error = exc
                logger.info("MCP server `%s`: connection attempt %d failed: %s", server.name,
                            attempt + 1, exc)  # fmt: skip
        if error is None:
            raise RegistryClosedError(f"MCP server `{server.name}`: its registry is closed.")
        if attempts == 1:
            raise error
        raise MCPServerError(f"{error} (after {attempts} attempts)") from error

    async def _open(self) -> tuple[ClientSession, int]:
        """Start an owner task and wait until its session is initialized (or failed)."""
        loop = asyncio.get_running_loop()
        self._generation += 1
        generation = self._generation
        self._lost_reason = ""  # this generation's, once its transport or a call reports one
        ready: asyncio.Future[ClientSession] = loop.create_future()
        stop = self._stop = asyncio.Event()  # set when this generation's connection is lost
        owner = loop.create_task(
            self._own(generation, ready, stop),
            name=f"agentloop-mcp-{self.server.name}",
            context=contextvars.Context(),  # no run's span, task or lease inside the owner
        )
        try:
            session = await ready
        except BaseException:
            stop.set()
            await asyncio.shield(owner)  # it has cleaned up (or does so now, bounded)
            raise
        self._session, self._owner = session, owner
        self.connects += 1
        return session, generation

    async def _own(
        self, generation: int, ready: asyncio.Future[ClientSession], stop: asyncio.Event
    ) -> None:
        """The owner task: enter the transport and session, initialize, wait, exit."""
        from mcp_types import Implementation

        from mcp import ClientSession

        server = self.server
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(generation))
                if self._diagnostics.pid is not None and server.transport == "stdio":
                    self.pids.append(self._diagnostics.pid)
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        message_handler=self._message_handler(),
                        client_info=Implementation(name="agentloop", version=__version__),
                        **(session_extensions() if server.remote_tasks else {}),
                    )
                )
                initialized = False
                with anyio.move_on_after(server.connect_timeout):
                    handshake = negotiate(session) if server.remote_tasks else session.initialize()
                    await _until_set(handshake, stop)
                    initialized = True
                if not initialized:
                    raise TimeoutError
                if stop.is_set():  # lost while initializing
                    raise ConnectionError(self._lost_reason or "closed the connection")
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(self._connect_error(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                logger.debug("MCP server `%s`: session ended: %s", server.name, describe(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._ended(generation)

    def _transport(self, generation: int) -> Any:
        if self.server.transport == "stdio":
            from ._stdio import stdio_transport

            self._diagnostics = StdioDiagnostics()

            def lost(reason: str) -> None:
                self._lost(generation, reason)

            return stdio_transport(self.server, self._diagnostics, lost)
        from ._http import http_transport

        return http_transport(self.server)

    def _message_handler(self) -> Any:
        from mcp_types import ToolListChangedNotification

        async def handle(message: object) -> None:
            if isinstance(message, ToolListChangedNotification):
                self._on_tools_changed()
            elif isinstance(message, Exception):  # the transport's, reported in-band
                logger.debug("MCP server `%s`: %s", self.server.name, describe(message))

        return handle

    def _connect_error(self, exc: BaseException) -> MCPServerError:
        exc = _innermost(exc)
        server = self.server
        where = f"MCP server `{server.name}` ({server.where})"
        if isinstance(exc, TimeoutError):
            text = (
                f"{where} did not answer `initialize` within {server.connect_timeout:g}s "
                "(its connect_timeout)."
            )
        elif isinstance(exc, asyncio.CancelledError):
            text = f"{where}: connecting was cancelled."
        elif self._lost_reason and (isinstance(exc, ConnectionError) or _closed_answer(exc)):
            # the transport said why first (or the handshake's own answer came first: the
            # session's "connection closed", which the reason explains)
            text = f"{where} {self._lost_reason} before it was initialized."
        elif isinstance(exc, FileNotFoundError | PermissionError):
            text = f"{where} could not be started: {describe(exc)}."
        else:
            text = f"{where} could not be connected: {_cause(exc)}."
        return MCPServerError(text + self._details())

    def _details(self) -> str:
        return self._diagnostics.details() if self.server.transport == "stdio" else ""

    def _lost(self, generation: int, reason: str) -> None:
        """The connection of `generation` is gone: its owner stops, the next call reconnects."""
        if generation != self._generation:
            return
        if not self._lost_reason:  # the first word wins: the transport's, with the cause
            self._lost_reason = reason
        self._session = None
        if self._stop is not None:
            self._stop.set()

    def _ended(self, generation: int) -> None:
        if generation == self._generation:
            self._session = None

    def lost_text(self, generation: int) -> str:
        """Why the session of `generation` ended, for the message of a call it broke."""
        reason = self._lost_reason if generation == self._generation else ""
        return (reason or "closed the connection") + self._details()

    # -- calls --------------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool]:
        """Every tool of the server (all pages, bounded)."""
        from mcp_types import PaginatedRequestParams

        session, generation = await self.session()
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            for _ in range(MAX_TOOL_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                with anyio.fail_after(self.server.connect_timeout):
                    page = await session.list_tools(params=params)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except Exception as exc:
            raise self._call_error(exc, "tools/list", generation) from None
        return tools

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], progress: ProgressFnT | None
    ) -> CallToolResult | Result:
        """One `tools/call`; failures become `MCPServerError` naming the server and why.
        Cancelling the caller sends MCP's cancellation notification (the SDK does, shielded
        and bounded) and frees the caller at once. On a session that negotiated MCP's tasks
        extension the answer may be a remote task instead (`_task_wire.CreatedTask`)."""
        session, generation = await self.session()
        try:
            return await session.call_tool(
                tool,
                arguments,
                read_timeout_seconds=self.server.call_timeout,
                progress_callback=progress,
                allow_claimed=True,
            )
        except Exception as exc:
            raise self._call_error(exc, f"`{tool}`", generation) from None

    async def tasks_supported(self) -> bool:
        """Whether the server answers long calls with remote tasks (MCP's tasks extension,
        negotiated on this session: see `_task_wire`). Connects first if needed."""
        session, _ = await self.session()
        return self.server.remote_tasks and supports_tasks(session)

    async def request(self, request: Any, result_type: Any, what: str) -> Any:
        """Any other request (`tasks/get`, `tasks/cancel`), with the same errors as a call."""
        session, generation = await self.session()
        try:
            return await session.send_request(
                request, result_type, request_read_timeout_seconds=self.server.call_timeout
            )
        except Exception as exc:
            raise self._call_error(exc, what, generation) from None

    def _call_error(self, exc: Exception, what: str, generation: int) -> MCPServerError:
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        from mcp import MCPError

        name = self.server.name
        if isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT:
            return MCPServerError(
                f"{what} on MCP server `{name}` did not answer within "
                f"{self.server.call_timeout:g}s (the server's call_timeout); it was cancelled "
                "on the server." + self._details()
            )
        if isinstance(exc, TimeoutError):
            return MCPServerError(
                f"MCP server `{name}` did not answer {what} within "
                f"{self.server.connect_timeout:g}s (its connect_timeout)." + self._details()
            )
        text = exc.error.message if isinstance(exc, MCPError) else ""
        if "byte limit" in text or "larger than" in text:  # an HTTP answer over the bound
            return MCPServerError(
                f"MCP server `{name}` answered {what} with a message larger than "
                f"{self.server.max_message_bytes} bytes (its max_message_bytes): "
                f"{bounded(text, 300)}"
            )
        lost = (isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED) or isinstance(
            exc, anyio.ClosedResourceError | anyio.BrokenResourceError | ConnectionError
        )
        if lost or _session_gone(exc):
            self._lost(generation, "closed the connection")
            return MCPServerError(
                f"MCP server `{name}` ({self.server.where}) {self.lost_text(generation)} while "
                f"{what} was running; the next call reconnects."
            )
        if isinstance(exc, MCPError):
            return MCPServerError(
                f"MCP server `{name}` refused {what}: {bounded(exc.error.message, 500)} "
                f"(error {exc.code})."
            )
        return MCPServerError(f"MCP server `{name}`: {what} failed: {_cause(exc)}.")

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the owner task (it closes the session and reaps the subprocess); idempotent
        and bounded (the stdio transport's own waits are)."""
        self._closed = True
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        if self._stop is not None:
            self._stop.set()
        owner = self._owner
        if owner is not None and not owner.done():
            # the owner closes the session itself; one that hangs (an HTTP server that takes
            # the DELETE of its session and never answers) is cancelled after the grace
            await asyncio.wait({owner}, timeout=CLOSE_GRACE)
            if not owner.done():
                owner.cancel()
                await asyncio.wait({owner}, timeout=CLOSE_GRACE)
        self._session = None


async def _until_set(work: Any, stop: asyncio.Event) -> None:
    """Await `work`, but give up as soon as `stop` is set (the connection was lost)."""
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await stop.wait()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await work
        group.cancel_scope.cancel()


def _closed_answer(exc: BaseException) -> bool:
    """The session failed a request because the connection closed (`CONNECTION_CLOSED`)."""
    from mcp_types import CONNECTION_CLOSED

    from mcp import MCPError

    return isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED


def _session_gone(exc: Exception) -> bool:
    """An HTTP server that restarted answers a forgotten session with 404."""
    from mcp import MCPError

    return (
        isinstance(exc, MCPError)
        and "session" in exc.error.message.lower()
        and ("not found" in exc.error.message.lower() or "terminated" in exc.error.message.lower())
    )


def _innermost(exc: BaseException) -> BaseException:
    """`exc` out of the exception groups anyio wraps it in (one member each)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _cause(exc: BaseException) -> str:
    return describe(_innermost(exc))


def _import_sdk(transport: str) -> None:
    """Import what a session over `transport` needs (at once when it is imported already)."""
    for module in ("mcp", "mcp_types", "mcp.client.session"):
        importlib.import_module(module)
    if transport == "http":
        importlib.import_module("mcp.client.streamable_http")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # its callers may all have gone: nobody else reads it
