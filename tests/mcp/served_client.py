"""The SDK's own client, speaking to an agent served over MCP: task-augmented calls and the
`tasks/*` requests, which the SDK's `ClientSession` has types for but no methods."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from mcp import ClientSession


async def start_task(session: ClientSession, task: str, **arguments: Any) -> types.Task:
    params = types.CallToolRequestParams(
        name="helper", arguments={"task": task, **arguments}, task=types.TaskMetadata(ttl=60_000)
    )
    created = await session.send_request(
        types.CallToolRequest(params=params), types.CreateTaskResult
    )
    return created.task


async def get_task(session: ClientSession, task_id: str) -> types.GetTaskResult:
    return await session.send_request(
        types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id)),
        types.GetTaskResult,
    )


async def task_result(session: ClientSession, task_id: str) -> types.CallToolResult:
    return await session.send_request(
        types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id)),
        types.CallToolResult,
    )


async def cancel_task(session: ClientSession, task_id: str) -> types.CancelTaskResult:
    return await session.send_request(
        types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id)),
        types.CancelTaskResult,
    )


async def list_tasks(session: ClientSession) -> types.ListTasksResult:
    return await session.send_request(types.ListTasksRequest(), types.ListTasksResult)


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text
