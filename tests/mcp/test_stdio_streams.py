"""The stdio session's two ends (`_stdio_streams`): lines in, lines out, and how they end.

The session reads the server's stdout through `MessageReader` in its own receive loop, and each
sender writes its line through `MessageWriter`: no task pumps messages between them. These
tests drive both over in-memory byte streams; tests/mcp/test_faults.py drives them against real
misbehaving servers.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, JSONRPCResponse

from agentloop.mcp._stdio import StdioDiagnostics
from agentloop.mcp._stdio_streams import THREAD_PARSE_BYTES, MessageReader, MessageWriter


class Stdout(ByteReceiveStream):
    """Hands out the given chunks one receive at a time, then ends."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)

    async def aclose(self) -> None:
        self.chunks.clear()


class Stdin(ByteSendStream):
    """Records each `send`; fails every send once `broken` is set."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.broken = False

    async def send(self, item: bytes) -> None:
        if self.broken:
            raise BrokenPipeError(32, "Broken pipe")
        self.sent.append(item)
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        pass


def answer(request_id: int, result: Any = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result or {}}).encode()


def reader_of(
    stdout: Stdout, events: list[Any], limit: int = 1 << 20
) -> tuple[MessageReader, StdioDiagnostics]:
    diagnostics = StdioDiagnostics()

    async def ended() -> None:
        events.append("ended")

    return MessageReader(stdout, diagnostics, limit, ended), diagnostics


async def read_all(reader: MessageReader, events: list[Any]) -> None:
    async with reader:
        async for item in reader:
            assert isinstance(item.message, JSONRPCResponse)
            events.append(item.message.id)


async def test_lines_split_across_chunks_and_packed_into_one_arrive_in_order() -> None:
    one, two, three = answer(1), answer(2), answer(3)
    stdout = Stdout(one[:5], one[5:] + b"\n" + two + b"\n\n" + three[:7], three[7:] + b"\n")
    events: list[Any] = []
    reader, diagnostics = reader_of(stdout, events)
    await read_all(reader, events)
    assert events == [1, 2, 3, "ended"]  # the end is reported before the stream ends
    assert diagnostics.bad_lines == 0


async def test_stray_lines_are_counted_and_dropped_and_a_partial_last_line_is_dropped() -> None:
    stdout = Stdout(b"starting up...\n" + answer(1) + b"\nnot json either\n" + answer(2)[:9])
    events: list[Any] = []
    reader, diagnostics = reader_of(stdout, events)
    await read_all(reader, events)
    assert events == [1, "ended"]
    assert diagnostics.bad_lines == 2
    assert diagnostics.first_bad_line == "starting up..."


async def test_a_line_over_the_limit_ends_the_stream_saying_so_after_the_lines_before_it() -> None:
    stdout = Stdout(answer(1) + b"\n" + b"x" * 600, b"y" * 600, answer(2) + b"\n")
    events: list[Any] = []
    reader, diagnostics = reader_of(stdout, events, limit=1000)
    await read_all(reader, events)
    assert events == [1, "ended"]
    assert diagnostics.failure is not None
    assert "longer than 1000 bytes" in diagnostics.failure
    assert stdout.chunks == [answer(2) + b"\n"]  # nothing more was read


async def test_a_long_line_is_parsed_off_the_loop_into_the_same_message() -> None:
    big = answer(7, {"text": "z" * THREAD_PARSE_BYTES})
    events: list[Any] = []
    reader, _ = reader_of(Stdout(big[:100_000], big[100_000:] + b"\n"), events)
    item = await reader.receive()
    assert isinstance(item.message, JSONRPCResponse)
    assert item.message.result == {"text": "z" * THREAD_PARSE_BYTES}


async def test_a_closed_reader_refuses_to_read() -> None:
    reader, _ = reader_of(Stdout(answer(1) + b"\n"), [])
    await reader.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await reader.receive()


def ping(request_id: int) -> SessionMessage:
    return SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method="ping"))


async def test_each_message_is_one_line_written_by_its_sender() -> None:
    stdin = Stdin()
    broken: list[str] = []

    async def on_broken() -> None:
        broken.append("broken")

    writer = MessageWriter(stdin, on_broken)
    async with anyio.create_task_group() as senders:
        for request_id in range(20):
            senders.start_soon(writer.send, ping(request_id))
    assert len(stdin.sent) == 20
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in stdin.sent)
    ids = sorted(json.loads(line)["id"] for line in stdin.sent)
    assert ids == list(range(20))
    assert broken == []


async def test_a_failed_write_ends_reading_and_later_sends_are_refused() -> None:
    stdin = Stdin()
    broken: list[str] = []

    async def on_broken() -> None:
        broken.append("broken")

    writer = MessageWriter(stdin, on_broken)
    stdin.broken = True
    await writer.send(ping(1))  # the session hears of it from the reader's end, with a reason
    assert broken == ["broken"]
    with pytest.raises(anyio.BrokenResourceError):
        await writer.send(ping(2))
    assert broken == ["broken"]
    await writer.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await writer.send(ping(3))
