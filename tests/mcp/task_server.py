"""An MCP server written with the SDK that answers long calls with remote tasks (the
`io.modelcontextprotocol/tasks` extension of the 2026-07-28 protocol, SEP-2663), for the tests:
`python task_server.py stdio`, or `python task_server.py http PORT` (Streamable HTTP under
uvicorn on 127.0.0.1; it prints `ready` once it listens).

The SDK (2.3) has the extension's hooks but not the extension itself, so it is written here
with them: `intercept_tool_call` answers a call of `build` with a `CreateTaskResult` when the
request declared the extension (a plain result otherwise), and `tasks/get` and `tasks/cancel`
are extension methods. Each task's work runs in an asyncio task of the server's own loop.

`build(seconds, tag)` works for `seconds` (its status message says which step), then
answers `built {tag}`; `build(..., fail=True)` completes with a tool error. With
`AGENTLOOP_MCP_MARKS` set, each event is a line of that file: `created {tag} {task_id}`,
`done {tag}`, `cancelled {tag}`, `polled {task_id}`, so a test can count executions.
`add` is an ordinary tool (a plain call on the same server).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import sys
from typing import Any

from mcp.server.mcpserver import Extension, MethodBinding, require_client_extension
from mcp.server.mcpserver import MCPServer as SDKServer
from mcp_types import INVALID_PARAMS, CallToolRequestParams, RequestParams

from mcp import MCPError

EXTENSION = "io.modelcontextprotocol/tasks"
MARKS = os.environ.get("AGENTLOOP_MCP_MARKS")
STEPS = 4


def mark(line: str) -> None:
    if MARKS:
        with open(MARKS, "a") as marks:
            marks.write(line + "\n")
            marks.flush()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class TaskParams(RequestParams):
    task_id: str


class RemoteTasks(Extension):
    """The tasks extension, server side, for the `build` tool."""

    identifier = EXTENSION

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.work: dict[str, asyncio.Task[None]] = {}

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding(method="tasks/get", params_type=TaskParams, handler=self.get),
            MethodBinding(method="tasks/cancel", params_type=TaskParams, handler=self.cancel),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: Any, call_next: Any
    ) -> Any:
        if params.name != "build":
            return await call_next(ctx)
        try:
            require_client_extension(ctx, EXTENSION)
        except MCPError:
            return await call_next(ctx)  # a client without the extension: a plain call
        arguments = params.arguments or {}
        task_id = secrets.token_hex(16)
        stamp = now()
        self.tasks[task_id] = {
            "taskId": task_id,
            "status": "working",
            "statusMessage": "queued",
            "createdAt": stamp,
            "lastUpdatedAt": stamp,
            "ttlMs": 600_000,
            "pollIntervalMs": 20,
        }
        mark(f"created {arguments.get('tag')} {task_id}")
        self.work[task_id] = asyncio.get_running_loop().create_task(self._run(task_id, arguments))
        return {"resultType": "task", **self.tasks[task_id]}

    async def _run(self, task_id: str, arguments: dict[str, Any]) -> None:
        task, tag = self.tasks[task_id], arguments.get("tag")
        try:
            for step in range(STEPS):
                self._update(task, statusMessage=f"step {step + 1} of {STEPS}")
                await asyncio.sleep(float(arguments.get("seconds", 0.1)) / STEPS)
        except asyncio.CancelledError:
            mark(f"cancelled {tag}")
            self._update(task, status="cancelled", statusMessage="cancelled by the client")
            return
        mark(f"done {tag}")
        if arguments.get("fail"):
            result = {"content": [{"type": "text", "text": f"{tag} broke"}], "isError": True}
        else:
            result = {"content": [{"type": "text", "text": f"built {tag}"}], "isError": False}
        self._update(task, status="completed", statusMessage="done", result=result)

    def _update(self, task: dict[str, Any], **fields: Any) -> None:
        task.update(fields, lastUpdatedAt=now())

    def _task(self, task_id: str) -> dict[str, Any]:
        task = self.tasks.get(task_id)
        if task is None:
            raise MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found")
        return task

    async def get(self, ctx: Any, params: TaskParams) -> dict[str, Any]:
        mark(f"polled {params.task_id}")
        return {"resultType": "complete", **self._task(params.task_id)}

    async def cancel(self, ctx: Any, params: TaskParams) -> dict[str, Any]:
        self._task(params.task_id)
        work = self.work.get(params.task_id)
        if work is not None and not work.done():
            work.cancel()
            await asyncio.wait({work}, timeout=5)  # its `cancelled` mark is written: ack
        return {"resultType": "complete"}


server = SDKServer("agentloop-task-test", extensions=[RemoteTasks()])


@server.tool()
async def build(seconds: float, tag: str, fail: bool = False) -> str:
    """Build `tag` for `seconds` (as a remote task where the client supports them)."""
    mark(f"plain {tag}")
    await asyncio.sleep(seconds)
    return f"built {tag}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def main() -> None:
    from _run_server import run_server  # beside this file: run as a script, it is on the path

    run_server(server, sys.argv[1:])


if __name__ == "__main__":
    main()
