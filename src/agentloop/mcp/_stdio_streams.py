"""The session's two ends of a stdio server: messages read from its stdout, written to its stdin.

The SDK's `ClientSession` takes any objects that follow its stream protocols
(`mcp.shared._stream_protocols.ReadStream` / `WriteStream`). Its own stdio transport (and ours,
before) hands it two memory streams, each pumped by a task: a request went caller -> memory
stream -> writer task -> pipe, and an answer pipe -> reader task -> memory stream -> the
session's receive loop. Each pump is one more event-loop turn per message, and on a busy loop
one turn is a whole round of other tasks' callbacks: measured, a bare session over the pumps
took as long as one over the SDK's transport, and 40-90 us (3-5%) longer per sequential call
than over these two objects (~2 ms round trips, docs/performance.md). Here the caller writes
its line to the pipe itself, and the session's receive loop reads and parses the lines itself,
so a message crosses no extra task.

The bounds are the transport's (see `_stdio`): a line longer than `max_message_bytes` ends the
connection, a long one is parsed in a worker thread, lines that are not JSON-RPC are counted and
dropped, and when stdout ends `on_lost` hears why before the session sees the end of the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream

if TYPE_CHECKING:
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCMessage

__all__ = ["READ_CHUNK", "THREAD_PARSE_BYTES", "MessageReader", "MessageWriter", "ReadRecord"]

logger = logging.getLogger("agentloop")

THREAD_PARSE_BYTES = 256 * 1024
READ_CHUNK = 64 * 1024


class ReadRecord(Protocol):
    """What the reader notes for error messages (`_stdio.StdioDiagnostics` keeps it)."""

    bad_lines: int
    first_bad_line: str
    failure: str | None
    """A limit the server broke (the reader ended the connection for it)."""


class MessageReader:
    """The server's stdout as JSON-RPC messages, for the session's receive loop (its only
    reader). Ends (`EndOfStream`) at the end of stdout or at a line over the limit, after
    `on_end` has run (it notes the exit and tells the connection why)."""

    def __init__(
        self,
        stdout: ByteReceiveStream,
        diagnostics: ReadRecord,
        max_message_bytes: int,
        on_end: Callable[[], Awaitable[None]],
    ) -> None:
        self._stdout = stdout
        self._diagnostics = diagnostics
        self._limit = max_message_bytes
        self._on_end = on_end
        self._buffer = bytearray()
        self._searched = 0
        """Bytes at the start of the buffer known to hold no newline."""
        self._ended = False
        self._closed = False

    async def receive(self) -> SessionMessage:
        from mcp.shared.message import SessionMessage

        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            buffer = self._buffer
            end = buffer.find(b"\n", self._searched)
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                self._searched = 0
                message = await _parsed(line, self._diagnostics)
                if message is not None:
                    return SessionMessage(message)
                continue
            self._searched = len(buffer)
            if self._ended:
                raise anyio.EndOfStream
            if len(buffer) > self._limit:
                self._diagnostics.failure = (
                    f"sent a message longer than {self._limit} bytes (its max_message_bytes); "
                    "the connection was closed"
                )
                await self._end()
                continue
            try:
                chunk = await self._stdout.receive(READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, OSError):
                await self._end()
                continue
            buffer += chunk

    async def _end(self) -> None:
        self._ended = True
        self._buffer.clear()  # what is left is a partial line (or one over the limit)
        self._searched = 0
        await self._on_end()

    async def aclose(self) -> None:
        self._closed = True

    def __aiter__(self) -> MessageReader:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> MessageReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class MessageWriter:
    """The server's stdin for the session: each message is written as one line by the task
    that sends it (`write` is synchronous and takes the whole line, so concurrent senders'
    lines never interleave; `drain` waits only while the pipe is full).

    A write that fails (the server closed its stdin, or died) ends the connection the way the
    end of stdout does: `on_broken` stops the reader, which tells the connection why (its
    `on_end`) before the session fails the calls in flight, this one included. Raising here
    instead would fail the call before the reason is known. Later sends raise
    `BrokenResourceError`."""

    def __init__(self, stdin: ByteSendStream, on_broken: Callable[[], Awaitable[None]]) -> None:
        self._stdin = stdin
        self._on_broken = on_broken
        self._broken = False
        self._closed = False

    async def send(self, item: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._broken:
            raise anyio.BrokenResourceError
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        try:
            await self._stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self._broken = True
            logger.debug("writing to an MCP server's stdin failed: %r", exc)
            await self._on_broken()

    async def aclose(self) -> None:
        self._closed = True  # stdin itself is closed by the transport's shutdown

    async def __aenter__(self) -> MessageWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _parsed(line: bytes, diagnostics: ReadRecord) -> JSONRPCMessage | None:
    """A JSON-RPC message, or None for a blank or stray line (counted, the first kept)."""
    from mcp_types import jsonrpc_message_adapter

    if not line.strip():
        return None
    try:
        if len(line) > THREAD_PARSE_BYTES:
            return await anyio.to_thread.run_sync(_validate, line)
        return jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError:
        diagnostics.bad_lines += 1
        if diagnostics.bad_lines == 1:
            diagnostics.first_bad_line = line[:120].decode("utf-8", "replace")
        logger.debug("MCP server wrote a line that is not JSON-RPC: %r", line[:120])
        return None


def _validate(line: bytes) -> JSONRPCMessage:
    from mcp_types import jsonrpc_message_adapter

    return jsonrpc_message_adapter.validate_json(line, by_name=False)
