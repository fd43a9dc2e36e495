"""MCP's tasks extension on the wire: what a session declares, and the messages it exchanges.

MCP's "tasks" utility lets a server answer a `tools/call` with a *task handle* instead of the
result; the client then polls `tasks/get` until the task ends, and may send `tasks/cancel`.
It first shipped as an experimental part of the 2025-11-25 protocol; the 2026-07-28 protocol
moved it to the official extension `io.modelcontextprotocol/tasks` (SEP-2663), where task
creation is server-directed: the client declares the extension in its per-request
capabilities, and the server decides per call whether to create a task (`resultType: "task"`).

The `mcp` SDK (2.3) implements neither as such: its 2025-11-25 task types are "types only"
(a `CreateTaskResult` answering `tools/call` on a 2025-11-25 session fails the SDK's result
validation on both sides), and it has no tasks extension yet. It does have the hooks an
extension needs, which this module uses: a `ResultClaim` for `resultType: "task"` (so
`call_tool(..., allow_claimed=True)` returns the parsed handle), the capability declaration,
and `send_request` with our own request types for `tasks/get` and `tasks/cancel` (whose
`Mcp-Name` header the SDK sets from `name_param`, as the extension asks over HTTP). So
agentloop speaks the 2026-07-28 extension, and only on sessions that negotiated the 2026-07-28
protocol (`server/discover`). Status notifications (`notifications/tasks`, which need a
`subscriptions/listen` stream) are not used: the client polls, as the extension's baseline.

The SDK's types are built on first use (`wire()`), so importing this module does not import
the SDK (its first import is done in a worker thread when a session opens).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mcp import ClientSession

__all__ = [
    "EXTENSION",
    "TERMINAL",
    "negotiate",
    "session_extensions",
    "supports_tasks",
    "wire",
]

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
"""The task statuses after which nothing changes."""


@functools.cache
def wire() -> SimpleNamespace:
    """The extension's message types, as pydantic models over the SDK's base classes:
    `CreatedTask` (a `tools/call` answered with a task), `TaskState` (a `tasks/get` answer),
    `Acknowledged` (a `tasks/cancel` answer), and `get(task_id)` / `cancel(task_id)`, the two
    requests."""
    import mcp_types as types

    class TaskFields(types.Result):
        task_id: str
        status: str
        status_message: str | None = None
        created_at: str | None = None
        last_updated_at: str | None = None
        ttl_ms: int | None = None
        poll_interval_ms: int | None = None

    class CreatedTask(TaskFields):
        """`CreateTaskResult`: the call goes on as a remote task."""

        result_type: Literal["task"] = "task"

    class TaskState(TaskFields):
        """A task as `tasks/get` shows it; `result` once completed, `error` once failed."""

        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None

    class Acknowledged(types.Result):
        pass

    class TaskParams(types.RequestParams):
        task_id: str

    class GetTask(types.Request[TaskParams, Literal["tasks/get"]]):
        method: Literal["tasks/get"] = "tasks/get"
        params: TaskParams
        name_param = "taskId"

    class CancelTask(types.Request[TaskParams, Literal["tasks/cancel"]]):
        method: Literal["tasks/cancel"] = "tasks/cancel"
        params: TaskParams
        name_param = "taskId"

    def get(task_id: str) -> GetTask:
        return GetTask(params=TaskParams(task_id=task_id))

    def cancel(task_id: str) -> CancelTask:
        return CancelTask(params=TaskParams(task_id=task_id))

    return SimpleNamespace(
        CreatedTask=CreatedTask,
        TaskState=TaskState,
        Acknowledged=Acknowledged,
        CallToolResult=types.CallToolResult,
        get=get,
        cancel=cancel,
    )


def session_extensions() -> dict[str, Any]:
    """`ClientSession` keywords that declare the extension and parse its task handles."""
    from mcp.client.extension import ResultClaim

    async def unused(result: Any, context: Any) -> Any:
        # agentloop takes the handle itself (`allow_claimed=True`) and drives the task as an
        # agentloop task; the SDK calls a claim's resolver only for its high-level `Client`
        raise NotImplementedError

    claim = ResultClaim(result_type="task", model=wire().CreatedTask, resolve=unused)
    return {"extensions": {EXTENSION: {}}, "result_claims": {EXTENSION: [claim]}}


async def negotiate(session: ClientSession) -> None:
    """The 2026-07-28 protocol if the server speaks it (`server/discover`), else the
    2025-11-25 handshake (`initialize`), as the SDK's own `Client(mode="auto")` does: any
    protocol error answering the probe means a server of the earlier era."""
    from mcp import MCPError

    try:
        await session.discover()
    except (MCPError, RuntimeError):
        await session.initialize()


def supports_tasks(session: ClientSession) -> bool:
    """The server declared the tasks extension on a 2026-07-28 session."""
    result = session.discover_result
    extensions = result.capabilities.extensions if result is not None else None
    return bool(extensions) and EXTENSION in extensions  # type: ignore[operator]
