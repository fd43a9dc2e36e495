"""One MCP server as a source of targets: its tools listed as `Target`s, and how each runs.

A tool's target is an async target like any other: submitted, validated, bounded, timed out,
cancelled, traced and counted by the engine. What it adds: every call to one server takes a slot
of the server's own limiter (`max_concurrent`, so a full server's tasks wait as `pending`), runs
in a `tools/call {tool}` span (the MCP semantic conventions, a child of the task's span, whose
trace context the SDK puts in the request's `_meta`), and reports the server's progress
notifications as the task's progress. A call the server answers with a remote task (MCP's tasks
extension) is followed to its end by the same agentloop task (`_remote_task`); a resumed task
that recorded such a task re-attaches to it instead of calling again (`engine._handles`).
"""

from __future__ import annotations

import dataclasses
import keyword
import logging
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._text import bounded
from ..core._sources import ProgressSink, SourceContext
from ..core._targets import Target
from ..engine._handles import record_handle, take_handle
from ..errors import MCPServerError
from ..tasks import TaskProgress, TaskType
from ._config import ServerConfig
from ._connection import ServerConnection
from ._remote_task import follow
from ._results import tool_result
from ._schema import accepts_extra, inputs_from_schema, schema_check
from ._task_wire import wire

if TYPE_CHECKING:
    from mcp_types import Tool

__all__ = ["ServerSource", "target_name"]

logger = logging.getLogger("agentloop")

MAX_PROGRESS_MESSAGE = 200


class ServerSource:
    """The tools of one server, for one registry (a `core._sources.TargetSource`)."""

    def __init__(self, server: ServerConfig, context: SourceContext) -> None:
        self.server = server
        self._context = context
        self._connection = ServerConnection(server, self._tools_changed)
        self._limiter = anyio.CapacityLimiter(server.max_concurrent)
        self._listed = False
        self._changed = False

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def connection(self) -> ServerConnection:
        return self._connection

    @property
    def needs_listing(self) -> bool:
        return not self._listed or self._changed

    def _tools_changed(self) -> None:
        self._changed = True

    async def list_targets(self) -> list[Target]:
        self._changed = False  # before listing: a change announced meanwhile lists again
        tools = await self._connection.list_tools()
        targets: dict[str, Target] = {}
        for tool in tools:
            name = target_name(tool.name, self.server.prefix)
            if name in targets:
                logger.warning(
                    "MCP server `%s`: two tools are both named `%s` as Python names; keeping "
                    "the first, leaving out `%s`",
                    self.name,
                    name,
                    tool.name,
                )
                continue
            targets[name] = self._target(tool, name)
        self._listed = True
        return list(targets.values())

    def _target(self, tool: Tool, name: str) -> Target:
        schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
        description = tool.description or tool.title or ""
        connection, context, server_name = self._connection, self._context, self.name
        attributes = self._span_attributes(tool.name)

        async def run(arguments: dict[str, Any], sink: ProgressSink | None, span: Any) -> Any:
            handle = take_handle()  # a resumed task that was following a remote task
            if handle is not None and handle.get("mcp_server") == server_name:
                task_id = str(handle.get("task_id"))
                return tool_result(
                    await follow(connection, tool.name, task_id, None, sink, span),
                    tool,
                    server_name,
                )
            progress = _progress_callback(sink) if sink is not None else None
            answer = await connection.call_tool(tool.name, arguments, progress)
            if not isinstance(answer, wire().CallToolResult):
                answer = await _remote(connection, tool.name, answer, sink, span)
            return tool_result(answer, tool, server_name)

        async def call(arguments: dict[str, Any]) -> Any:
            sink = context.progress_sink()
            tracer = context.tracer()
            if tracer is None:
                return await run(arguments, sink, None)
            with tracer.start_as_current_span(
                f"tools/call {tool.name}",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    return await run(arguments, sink, span)
                except Exception as exc:
                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR, bounded(str(exc), 500)))
                    raise

        target = Target(
            name=name,
            task_type=TaskType.TOOL,
            description=description,
            inputs=inputs_from_schema(schema),
            accepts_extra=accepts_extra(schema),
            is_async=True,
            call=call,
            shared_limiter=self._limiter,
        )
        check = schema_check(schema)
        return target if check is None else dataclasses.replace(target, check=check)

    def _span_attributes(self, tool: str) -> dict[str, str | int]:
        server = self.server
        attributes: dict[str, str | int] = {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "agentloop.mcp.server": server.name,
            "network.transport": "pipe" if server.transport == "stdio" else "tcp",
        }
        if server.transport == "http" and server.url:
            parts = urlsplit(server.url)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            attributes["server.port"] = port
        return attributes

    async def aclose(self) -> None:
        await self._connection.aclose()


async def _remote(
    connection: ServerConnection, tool: str, answer: Any, sink: ProgressSink | None, span: Any
) -> Any:
    """The server answered with a remote task: record its handle (durable in a journaled run,
    before the task waits on it), then follow it to its end (`_remote_task`)."""
    if not isinstance(answer, wire().CreatedTask):
        raise MCPServerError(
            f"MCP server `{connection.server.name}` answered `{tool}` with a result of a kind "
            f"agentloop does not know ({type(answer).__name__})."
        )
    await record_handle({"mcp_server": connection.server.name, "task_id": answer.task_id})
    return await follow(connection, tool, answer.task_id, answer, sink, span)


def target_name(tool: str, prefix: str | None) -> str:
    """An MCP tool's name as a Python identifier (`get-weather` -> `get_weather`), prefixed."""
    name = re.sub(r"\W", "_", tool) or "tool"
    if prefix:
        name = prefix + name
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name):
        name += "_"
    return name


def _progress_callback(sink: ProgressSink) -> Any:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not math.isfinite(progress):
            return  # NaN or infinity: nothing to show (and not JSON)
        text = bounded(message, MAX_PROGRESS_MESSAGE) if message else None
        total = total if total is not None and math.isfinite(total) else None
        sink(TaskProgress(progress=progress, total=total, message=text))

    return on_progress
