"""Following one remote MCP task to its end: the agentloop task waits while the model works.

When a server answers a call with a task handle (`_task_wire`), the agentloop task that made
the call stays `running` and follows the remote task: it records the handle (durable in a
journaled run, before anything else: `engine._handles`), then polls `tasks/get` until the task
ends, and returns (or raises) what the call would have. So `submit_task` of such a tool is a
background task like any other: `wait_for_tasks` wakes when the remote task ends, `check_task`
and the run's stream show its remote status as the task's progress, and `cancel_task` (or the
run ending) sends `tasks/cancel`.

Polling, not notifications: status notifications need a `subscriptions/listen` stream, which
agentloop does not open, and polling is the extension's baseline. The pace is the server's
`pollIntervalMs` when it gives one, else a backoff from 0.1 s doubling to 5 s; either way
within [10 ms, 30 s], so a server cannot make the client spin or go deaf. The wait is bounded
by the task's own `timeout=` and by the remote task's TTL (past `ttlMs` without an end the
task fails). A poll that fails (the connection was lost) is tried again, three times in a row
at most: the next poll reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import anyio

from .._text import bounded
from ..core._sources import ProgressSink
from ..errors import MCPServerError, MCPToolError
from ..tasks import TaskProgress
from ._task_wire import TERMINAL, wire

if TYPE_CHECKING:
    from mcp_types import CallToolResult
    from opentelemetry.trace import Span

    from ._connection import ServerConnection

__all__ = ["follow"]

logger = logging.getLogger("agentloop")

FIRST_POLL = 0.1
MAX_BACKOFF = 5.0
POLL_BOUNDS = (0.01, 30.0)
MAX_POLL_FAILURES = 3
CANCEL_GRACE = 5.0
"""Seconds a `tasks/cancel` may take once the task is cancelled (shielded, then given up)."""
MAX_STATUS_TEXT = 200


async def follow(
    connection: ServerConnection,
    tool: str,
    task_id: str,
    first: Any | None,
    progress: ProgressSink | None,
    span: Span | None,
) -> CallToolResult:
    """Wait for the remote task `task_id` (started by a call of `tool`, whose handle was
    `first`, or `None` when re-attaching after a resume) and return its tool result."""
    name = connection.server.name
    what = f"the remote task `{task_id}` of `{tool}` on MCP server `{name}`"
    if span is not None:
        span.set_attribute("agentloop.mcp.task_id", task_id)
    state = first
    delay = FIRST_POLL
    failures = 0
    started = time.monotonic()
    shown: tuple[str, str | None] | None = None
    try:
        while True:
            if state is not None:
                if progress is not None and (state.status, state.status_message) != shown:
                    shown = (state.status, state.status_message)  # a change, not every poll
                    progress(_progress(state))
                if state.status in TERMINAL:
                    if span is not None:
                        span.set_attribute("agentloop.mcp.task_status", state.status)
                    return _final(state, what)
                _check_ttl(state, started, what)
                delay = _next_delay(state, delay)
                await asyncio.sleep(delay)
            try:
                state = await connection.request(
                    wire().get(task_id), wire().TaskState, f"`tasks/get` for `{tool}`"
                )
                failures = 0
            except MCPServerError as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise MCPServerError(
                        f"{what} could not be followed: {exc} It was not started again; "
                        "whether it took effect is unknown."
                    ) from None
                logger.info("%s: polling failed (%s); trying again", what, exc)
                state = None
                await asyncio.sleep(min(delay * 2, MAX_BACKOFF))
    except asyncio.CancelledError:
        await _cancel_remotely(connection, task_id, what)
        raise


def _final(state: Any, what: str) -> CallToolResult:
    if state.status == "completed":
        return wire().CallToolResult.model_validate(state.result or {"content": []})  # type: ignore[no-any-return]
    reason = state.status_message or ""
    if state.status == "failed":
        error = state.error or {}
        reason = str(error.get("message") or reason or "no reason given")
        raise MCPToolError(f"{what} failed: {bounded(reason, 2000)}")
    raise MCPToolError(
        f"{what} was cancelled on the server" + (f": {bounded(reason, 500)}" if reason else ".")
    )


def _check_ttl(state: Any, started: float, what: str) -> None:
    """The extension's backstop: a task that has not ended `ttlMs` after we saw it may be
    gone from the server (which may then forget it); stop waiting rather than poll forever."""
    ttl = state.ttl_ms
    if ttl is not None and time.monotonic() - started > ttl / 1000:
        raise MCPServerError(
            f"{what} did not end within its time to live ({ttl / 1000:g}s, the server's "
            "ttlMs); it may have been discarded. Whether it took effect is unknown."
        )


def _next_delay(state: Any, delay: float) -> float:
    """The server's `pollIntervalMs` if it gives one, else the backoff; within bounds."""
    hint = state.poll_interval_ms
    if isinstance(hint, int | float) and math.isfinite(hint) and hint > 0:
        chosen = hint / 1000
    else:
        chosen = min(delay * 2, MAX_BACKOFF) if delay >= FIRST_POLL else FIRST_POLL
    low, high = POLL_BOUNDS
    return min(max(chosen, low), high)


def _progress(state: Any) -> TaskProgress:
    """The remote status as the task's progress (`check_task`: `[remote working: step 2]`)."""
    text = f"remote {state.status}"
    if state.status_message:
        text += f": {state.status_message}"
    return TaskProgress(progress=0, message=bounded(text, MAX_STATUS_TEXT))


async def _cancel_remotely(connection: ServerConnection, task_id: str, what: str) -> None:
    """`tasks/cancel`, shielded from the cancellation that asks for it and bounded: the
    server is told, and the cancelled task still ends within the grace."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_GRACE):
        try:
            await connection.request(wire().cancel(task_id), wire().Acknowledged, "`tasks/cancel`")
        except Exception as exc:
            logger.warning("%s: could not be cancelled on the server: %s", what, exc)
            return
        logger.debug("%s: cancelled on the server", what)
