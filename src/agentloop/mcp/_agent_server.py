"""An `AsyncAgent` as an MCP server: `agent_server(agent)` is the SDK's low-level `Server`
offering one tool that runs the agent (`_agent_tool`), with long runs as MCP tasks.

Why the low-level `Server` and not the SDK's decorator-based `MCPServer`: the tool's schema is
fixed (`task: string`) rather than read from a Python signature, and task-augmented calls need
two hooks `MCPServer` does not expose: a middleware that answers `tools/call` with a task
handle (the SDK checks every `tools/call` answer against `CallToolResult`, which a handle is
not), and the `tasks/*` methods, registered as request handlers of their own.

A plain call runs the agent in the call's handler: concurrent calls are concurrent runs (the
SDK serves each request in a task of its own), and the client's `notifications/cancelled`
cancels the handler and so the run. A call with `task` (protocol 2025-11-25) starts the run in
the server's task store (`_served_tasks`) and answers at once; `tasks/get`, `tasks/result`,
`tasks/cancel` and `tasks/list` read and act on it. The store lives in the server's lifespan,
so stopping the server cancels the runs still going and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .._version import __version__
from ._agent_tool import AgentTool, error_result, run_agent
from ._served_tasks import ServedTask, ServedTasks, TaskNotFound, TaskRefused

if TYPE_CHECKING:
    from ..agent.async_agent import AsyncAgent

__all__ = ["PRINCIPAL_KEY", "agent_server"]

logger = logging.getLogger("agentloop")

PRINCIPAL_KEY = "agentloop_mcp_principal"
"""Where the HTTP guard leaves the caller's name in the request's ASGI `state`."""
RELATED_TASK = "io.modelcontextprotocol/related-task"
LIST_PAGE = 100
"""Tasks per page of `tasks/list`."""


@dataclass(frozen=True)
class _Served:
    """What the server's lifespan holds: the agent's tool and its tasks."""

    tool: AgentTool
    tasks: ServedTasks
    agent: AsyncAgent


Context = ServerRequestContext[_Served, Any]


class _AgentServer(Server[_Served]):
    """The SDK's low-level server, declaring task support on the protocols that have it."""

    def get_capabilities(
        self,
        notification_options: Any = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            notification_options,
            experimental_capabilities,
            extensions,
            protocol_version=protocol_version,
        )
        if protocol_version not in MODERN_PROTOCOL_VERSIONS:
            capabilities.tasks = types.ServerTasksCapability(
                list=types.TasksListCapability(),
                cancel=types.TasksCancelCapability(),
                requests=types.ServerTasksRequestsCapability(
                    tools=types.TasksToolsCapability(call=types.TasksCallCapability())
                ),
            )
        return capabilities


def agent_server(
    agent: AsyncAgent,
    *,
    name: str | None = None,
    tool_name: str | None = None,
    description: str | None = None,
    output_type: Any = None,
    owns_agent: bool = False,
    max_running_tasks: int = 32,
    task_ttl: float = 3600.0,
    poll_interval: float = 1.0,
) -> Server[Any]:
    """The MCP server (the SDK's low-level `Server`) that serves `agent` as one tool.

    Run it with `serve_stdio` or `streamable_http_app`, or with the SDK's own transports.

    Args:
        agent: the agent each call runs (`agent.astream(task)`); calls run concurrently.
        name: the server's name in `initialize` (default: the agent's name, or `agentloop`).
        tool_name: the tool's name (default: the agent's name made a tool name, or
            `run_agent`).
        description: the tool's description (default: the agent's description).
        output_type: the type of the agent's answer (as `arun(output_type=...)`): the tool
            declares its JSON schema and answers with `structuredContent`.
        owns_agent: open the agent when the server starts (`async with agent`: its MCP
            servers connect) and close it when the server stops.
        max_running_tasks: runs started as MCP tasks that may go at once.
        task_ttl: seconds an MCP task is kept from its creation when the client asks for no
            `ttl` (a client's `ttl` is capped at 24 h); a run still going is never dropped.
        poll_interval: the `pollInterval` a task suggests to its client, in seconds.
    """
    tool = AgentTool.for_agent(
        agent, name=tool_name, description=description, output_type=output_type
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Server[_Served]) -> AsyncIterator[_Served]:
        tasks = ServedTasks(
            max_running=max_running_tasks, default_ttl=task_ttl, poll_interval=poll_interval
        )
        async with contextlib.AsyncExitStack() as stack:
            if owns_agent:
                await stack.enter_async_context(agent)
            try:
                yield _Served(tool, tasks, agent)
            finally:
                await tasks.aclose()  # before the agent closes: its runs end first

    server = _AgentServer(
        name or agent.name or "agentloop",
        version=__version__,
        instructions=f"Call `{tool.name}` with a complete task description; the agent plans "
        "the work, runs it and answers. Long tasks may be run as MCP tasks.",
        lifespan=lifespan,
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )
    server.middleware.append(_task_augmented_calls)
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, _get_task)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, _task_result)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, _cancel_task)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, _list_tasks)
    return server


# -- tools ---------------------------------------------------------------------------------------


async def _list_tools(
    ctx: Context, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    served = ctx.lifespan_context
    tasks = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
    return types.ListToolsResult.model_validate(
        {"tools": [served.tool.listing(tasks=tasks)]}, by_name=False
    )


async def _call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
    served = ctx.lifespan_context
    _check_tool(served.tool, params.name)
    task = served.tool.task_of(params.arguments)
    if isinstance(task, dict):
        return types.CallToolResult.model_validate(task, by_name=False)
    result = await run_agent(served.agent, served.tool, task, _request_progress(ctx))
    return types.CallToolResult.model_validate(result, by_name=False)


def _check_tool(tool: AgentTool, name: str) -> None:
    if name != tool.name:
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=f"unknown tool `{name}`; this server has one tool, `{tool.name}`.",
        )


def _request_progress(ctx: Context) -> Any:
    async def report(value: float, message: str) -> None:
        await ctx.session.report_progress(value, None, message)  # no-op without a token

    return report


# -- task-augmented calls and the tasks/* methods ------------------------------------------------


async def _task_augmented_calls(ctx: Context, call_next: CallNext) -> HandlerResult:
    """Answer a `tools/call` that asks for a task with the task's handle; pass the rest on."""
    raw = ctx.params
    if (
        ctx.method != "tools/call"
        or ctx.request_id is None
        or not isinstance(raw, Mapping)
        or raw.get("task") is None
        or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
    ):
        return await call_next(ctx)
    params = types.CallToolRequestParams.model_validate(raw, by_name=False)
    served = ctx.lifespan_context
    _check_tool(served.tool, params.name)
    text = served.tool.task_of(params.arguments)
    if isinstance(text, dict):  # the arguments are wrong: say so now, start nothing
        return text
    token = progress_token_from_params(raw)
    session = ctx.session

    async def work(task: ServedTask) -> dict[str, Any]:
        async def report(value: float, message: str) -> None:
            task.note(message)
            if token is not None:  # the request has been answered: the connection's channel
                await session.send_progress_notification(token, value, None, message)

        return await run_agent(served.agent, served.tool, text, report)

    ttl = params.task.ttl if params.task is not None else None
    try:
        task = served.tasks.start(_owner(ctx), ttl, work)
    except TaskRefused as refused:
        return error_result(str(refused))
    # `content` too: the SDK's client checks every `tools/call` answer against
    # `CallToolResult`, which needs it; a client that knows tasks reads `task`.
    return {"task": task.wire(), "content": []}


async def _get_task(ctx: Context, params: types.GetTaskRequestParams) -> dict[str, Any]:
    return _lookup(lambda: ctx.lifespan_context.tasks.get(_owner(ctx), params.task_id)).wire()


async def _task_result(ctx: Context, params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
    tasks = ctx.lifespan_context.tasks
    found = _lookup(lambda: tasks.get(_owner(ctx), params.task_id))
    task = await tasks.result(_owner(ctx), found.task_id)
    if task.result is None:  # cancelled: there is no result to give
        raise MCPError(code=types.INVALID_PARAMS, message=f"task `{task.task_id}` was cancelled.")
    meta = {**task.result.get("_meta", {}), RELATED_TASK: {"taskId": task.task_id}}
    return {**task.result, "_meta": meta}


async def _cancel_task(ctx: Context, params: types.CancelTaskRequestParams) -> dict[str, Any]:
    tasks = ctx.lifespan_context.tasks
    try:
        return (await tasks.cancel(_owner(ctx), params.task_id)).wire()
    except (TaskNotFound, TaskRefused) as exc:
        raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None


async def _list_tasks(ctx: Context, params: types.PaginatedRequestParams) -> dict[str, Any]:
    listed = ctx.lifespan_context.tasks.listed(_owner(ctx))
    start = 0
    if params.cursor is not None:
        start = next((i + 1 for i, t in enumerate(listed) if t.task_id == params.cursor), 0)
    page = listed[start : start + LIST_PAGE]
    result: dict[str, Any] = {"tasks": [task.wire() for task in page]}
    if start + LIST_PAGE < len(listed):
        result["nextCursor"] = page[-1].task_id
    return result


def _lookup(find: Any) -> ServedTask:
    try:
        task: ServedTask = find()
    except TaskNotFound as exc:
        raise MCPError(code=types.INVALID_PARAMS, message=str(exc)) from None
    return task


def _owner(ctx: Context) -> str | None:
    """Who is asking: the name the HTTP guard found, or `None` (stdio, or HTTP without auth:
    one caller)."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    owner = state.get(PRINCIPAL_KEY) if isinstance(state, dict) else None
    return owner if isinstance(owner, str) else None
