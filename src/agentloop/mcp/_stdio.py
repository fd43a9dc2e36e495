"""The stdio transport: an MCP server as a subprocess, messages as lines on its stdin/stdout.

Why not the SDK's `stdio_client`: it joins stdout chunks into one string until a newline comes,
so a server that floods output without one (or sends a gigabyte result) takes all the memory;
it sends the server's stderr to a file object, where agentloop needs the last lines to say
why a server died; and it tells nobody when the process exits between calls. This one is the
same protocol (newline-delimited JSON-RPC, the SDK's message types and parser) with bounds:

- a message longer than `max_message_bytes` ends the connection with an error that says so;
- messages over `THREAD_PARSE_BYTES` (`_stdio_streams`) are parsed in a worker thread, so a
  big result never stalls the event loop; lines that are not JSON-RPC are counted and the
  first is kept for error messages, then dropped;
- the last `STDERR_TAIL_BYTES` of stderr are kept (older output is dropped as it comes);
- when stdout ends, `on_lost` hears why (the exit code, the signal, a limit hit) before the
  session sees the stream close, so the calls that were in flight can name the cause.

The session reads and writes the pipes itself (`_stdio_streams`: no task pumps the messages,
which saves an event-loop turn each way per call); only stderr is read by a task of its own.

Shutdown follows the MCP spec: close stdin, wait, then SIGTERM and SIGKILL to the server's
process group (it runs in a session of its own), each wait bounded, shielded from cancellation,
and the process is waited for (reaped) before the transport returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import Process

from ._config import ServerConfig
from ._stdio_streams import READ_CHUNK, MessageReader, MessageWriter

__all__ = ["StdioDiagnostics", "stdio_transport"]

logger = logging.getLogger("agentloop")

STDERR_TAIL_BYTES = 4096
EXIT_GRACE = 2.0
"""Seconds a server gets to exit after its stdin closes, and again after SIGTERM."""
SAFE_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR")
"""What a server inherits of this process's environment (the SDK's list, plus locale/tmp)."""


@dataclass(slots=True)
class StdioDiagnostics:
    """What the transport saw, for error messages: stderr's tail, stray lines, the exit."""

    stderr_tail: bytearray = field(default_factory=bytearray)
    bad_lines: int = 0
    first_bad_line: str = ""
    pid: int | None = None
    returncode: int | None = None
    failure: str | None = None
    """A limit the server broke (the transport ended the connection for it)."""

    def exit_text(self) -> str:
        code = self.returncode
        if code is None:
            return "closed its stdout"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def details(self) -> str:
        """Extra sentences for an error message (stray output, stderr's last lines)."""
        text = ""
        if self.bad_lines:
            text += (
                f" It wrote {self.bad_lines} line(s) that are not JSON-RPC on stdout (the "
                f"first: {self.first_bad_line!r}); a stdio server must write only MCP "
                "messages there (logs go to stderr)."
            )
        tail = self.stderr_tail.decode("utf-8", "replace").strip()
        if tail:
            lines = tail.splitlines()[-5:]
            text += " Its stderr ended with: " + " | ".join(line[:200] for line in lines)
        return text


def server_environment(server: ServerConfig) -> dict[str, str]:
    env = {key: os.environ[key] for key in SAFE_ENV if key in os.environ}
    return env | dict(server.env or {})


@contextlib.asynccontextmanager
async def stdio_transport(
    server: ServerConfig, diagnostics: StdioDiagnostics, on_lost: Callable[[str], None]
) -> AsyncIterator[tuple[MessageReader, MessageWriter]]:
    """Start the server and yield the (read, write) streams a `ClientSession` takes: they read
    and write the server's pipes directly (`_stdio_streams`); only stderr has a task."""
    assert server.command is not None
    process = await anyio.open_process(
        [server.command, *server.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=server.cwd,
        env=server_environment(server),
        start_new_session=True,  # its own process group: the whole tree is stopped at close
    )
    diagnostics.pid = process.pid
    assert process.stdin is not None
    assert process.stdout is not None

    async def stdout_ended() -> None:
        await _note_exit(process, diagnostics)
        on_lost(diagnostics.failure or diagnostics.exit_text())

    reader = MessageReader(process.stdout, diagnostics, server.max_message_bytes, stdout_ended)
    writer = MessageWriter(process.stdin, process.stdout.aclose)  # a failed write ends reading

    async def read_stderr() -> None:
        assert process.stderr is not None
        tail = diagnostics.stderr_tail
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, OSError):
            while True:
                tail += await process.stderr.receive(READ_CHUNK)
                if len(tail) > STDERR_TAIL_BYTES:
                    del tail[: len(tail) - STDERR_TAIL_BYTES]

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_stderr)
        try:
            yield reader, writer
        finally:
            with anyio.CancelScope(shield=True):
                await writer.aclose()
                await reader.aclose()
                await stop_process(process, failed=diagnostics.failure is not None)
                diagnostics.returncode = process.returncode
            tasks.cancel_scope.cancel()


async def _note_exit(process: Process, diagnostics: StdioDiagnostics) -> None:
    """Stdout ended: give the process a moment to be reaped, so the reason has its code."""
    with anyio.move_on_after(0.5):
        await process.wait()
    diagnostics.returncode = process.returncode


async def stop_process(process: Process, *, failed: bool = False) -> None:
    """Close stdin, wait; SIGTERM the group, wait; SIGKILL it, and reap the process. A
    server that broke a limit (`failed`) gets no grace: it is past listening to its stdin."""
    if process.returncode is None and process.stdin is not None and not failed:
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
        with anyio.move_on_after(EXIT_GRACE):
            await process.wait()
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if process.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        with anyio.move_on_after(EXIT_GRACE):
            await process.wait()
    if process.returncode is None:
        logger.warning("MCP server process %d survived SIGKILL; abandoning it", process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # what it left behind in its process group
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await stream.aclose()
    # asyncio's transport of the process stays open (and complains when collected after the
    # loop closed) until closed by hand; nothing public reaches it (the SDK does the same)
    transport = getattr(getattr(process, "_process", None), "_transport", None)
    close = getattr(transport, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
