"""A real MCP server written with the SDK, for the tests: `python servers.py stdio`, or
`python servers.py http PORT` (Streamable HTTP under uvicorn on 127.0.0.1; it prints
`ready` on stdout once it listens).

Tools: plain values, structured output, errors, images, big results, progress, slow calls that
note their cancellation (in the file `AGENTLOOP_MCP_MARKS`, one line per event), the trace
context the request carried, and a tool that adds a tool (`tools/list_changed`).
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import Context, Image
from mcp.server.mcpserver import MCPServer as SDKServer

server = SDKServer("agentloop-test")
MARKS = os.environ.get("AGENTLOOP_MCP_MARKS")


def mark(line: str) -> None:
    if MARKS:
        with open(MARKS, "a") as marks:
            marks.write(line + "\n")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool(name="echo-text")
def echo_text(text: str, times: int = 1) -> str:
    """Repeat `text`."""
    return text * times


@server.tool()
def forecast(city: str) -> dict[str, object]:
    """A structured forecast for a city."""
    return {"city": city, "celsius": 18, "sky": "light rain"}


@server.tool()
def pick(color: str) -> str:
    """Pick a color: red, green or blue."""
    return color


pick_schema = server._tool_manager.get_tool("pick")
if pick_schema is not None:  # an enum the registry's type check alone would not catch
    pick_schema.parameters["properties"]["color"]["enum"] = ["red", "green", "blue"]


@server.tool()
def fail(message: str) -> str:
    """Always fails with `message`."""
    raise ValueError(message)


@server.tool()
def picture() -> Image:
    """A tiny PNG."""
    return Image(data=b"\x89PNG\r\n\x1a\n" + b"\0" * 100, format="png")


@server.tool()
def big(size: int) -> str:
    """A string of `size` characters."""
    return "x" * size


@server.tool()
async def slow(seconds: float, tag: str, ctx: Context) -> str:
    """Sleep `seconds`, reporting progress; notes `started`/`cancelled`/`done` with `tag`."""
    mark(f"started {tag}")
    try:
        steps = 4
        for step in range(steps):
            await ctx.report_progress(step, steps, f"step {step}")
            await anyio.sleep(seconds / steps)
    except anyio.get_cancelled_exc_class():
        mark(f"cancelled {tag}")
        raise
    mark(f"done {tag}")
    return f"slept {seconds}"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def traceparent(ctx: Context) -> str:
    """The W3C trace context this request carried in `_meta` (or "")."""
    meta = ctx.request_context.meta or {}
    value = (
        meta.get("traceparent") if isinstance(meta, dict) else getattr(meta, "traceparent", None)
    )
    return str(value or "")


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Add a tool called `name` and tell the client its tools changed."""

    def added() -> str:
        return f"I am {name}"

    server.add_tool(added, name=name, description=f"Added at run time: {name}.")
    await ctx.request_context.session.send_tool_list_changed()
    return "added"


def main() -> None:
    from _run_server import run_server  # beside this file: run as a script, it is on the path

    run_server(server, sys.argv[1:])


if __name__ == "__main__":
    main()
