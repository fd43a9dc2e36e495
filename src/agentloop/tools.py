"""The agent-facing task tools: smolagents `Tool`s whose sync `forward` bridges into the loop.

The controller's generated code runs in a plain thread; each call here crosses into the event
loop with `LoopBridge.call` (so contextvars travel along) and acts on the run's own scope only.
Errors are raised, never returned: smolagents shows the message to the model as an observation
and the model corrects itself on its next step. Outputs meant to be read are bounded in size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from smolagents import Tool

from ._render import bounded, task_detail, task_line
from .bridge import LoopBridge
from .errors import InvalidArgumentsError, RegistryClosedError, shown
from .scope import RunScope
from .tasks import ReturnWhen, WaitOutcome

__all__ = ["ToolSettings", "task_tools"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSettings:
    """Bounds of the agent-facing tools.

    Attributes:
        max_sleep: longest `sleep` in seconds; longer requests are capped and told so.
        default_wait: `wait_for_tasks`' `max_wait_time` when the model gives none.
        max_wait: longest single `wait_for_tasks`; longer requests are capped and told so.
        max_output_chars: longest text a tool returns for the model to read.
        call_timeout: bound on every other tool's round trip to the event loop.
    """

    max_sleep: float = 60.0
    default_wait: float = 30.0
    max_wait: float = 600.0
    max_output_chars: int = 2000
    call_timeout: float = 60.0


class _TaskTool(Tool):  # type: ignore[misc]
    """Shared plumbing: the run's scope, its bridge to the loop, and the settings."""

    output_type = "string"

    def __init__(self, scope: RunScope, bridge: LoopBridge, settings: ToolSettings) -> None:
        super().__init__()
        self._scope = scope
        self._bridge = bridge
        self._settings = settings

    def _on_loop(
        self, make: Callable[[], Coroutine[Any, Any, T]], *, timeout: float | None = None
    ) -> T:
        return self._bridge.call(
            make, timeout=timeout or self._settings.call_timeout, what=str(self.name)
        )


class SubmitTaskTool(_TaskTool):
    name = "submit_task"
    description = (
        "Start a tool call or a managed agent in the background and return its task id (a "
        "string) at once. Submit every independent subtask before waiting on any. "
        "`arguments` is a dict of the target's inputs. To feed one task's result into another "
        'without waiting yourself, use {"$result_of": other_id} as an argument value (optionally '
        'with "$path": [key, ...]); the task then starts when `other_id` completes.'
    )
    inputs = {
        "task_type": {"type": "string", "description": "'tool' or 'managed_agent'."},
        "target_name": {"type": "string", "description": "Name of the tool or managed agent."},
        "arguments": {
            "type": "any",
            "description": "Dict of the target's inputs (a JSON object string also works).",
            "nullable": True,
        },
        "task_id": {
            "type": "string",
            "description": "Optional id of your choice, unique in this run.",
            "nullable": True,
        },
        "depends_on": {
            "type": "any",
            "description": "Optional list of task ids that must complete first.",
            "nullable": True,
        },
        "timeout": {
            "type": "number",
            "description": "Optional seconds per attempt.",
            "nullable": True,
        },
        "retries": {
            "type": "integer",
            "description": "Optional extra attempts after a failure (0-10).",
            "nullable": True,
        },
    }

    def forward(
        self,
        task_type: str,
        target_name: str,
        arguments: Any | None = None,
        task_id: str | None = None,
        depends_on: Any | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> str:
        if self._bridge.closed:
            raise RegistryClosedError(f"`{self.name}`: {self._bridge.name} has ended.")
        # No round trip: everything is checked here and the start is queued on the loop,
        # ahead of any later call this thread makes (so a wait always finds the task).
        return self._scope.submit_threadsafe(
            task_type,
            target_name,
            _parse_arguments(arguments),
            task_id=task_id,
            depends_on=() if depends_on is None else depends_on,
            timeout=timeout,
            retries=0 if retries is None else retries,
        )


class WaitForTasksTool(_TaskTool):
    name = "wait_for_tasks"
    description = (
        "Block until the given tasks finish (or, with return_when='any', until one does), for "
        "at most `max_wait_time` seconds. Returns a summary with `.completed`, `.failed` and "
        "`.pending` id tuples; print it to read it. Then call get_task_results."
    )
    inputs = {
        "task_ids": {"type": "any", "description": "A list of task ids (or a single id)."},
        "max_wait_time": {
            "type": "number",
            "description": "Seconds to wait at most (default 30).",
            "nullable": True,
        },
        "return_when": {
            "type": "string",
            "description": "'all' (default) or 'any'.",
            "nullable": True,
        },
    }
    output_type = "object"

    def forward(
        self,
        task_ids: Any,
        max_wait_time: float | None = None,
        return_when: str | None = None,
    ) -> WaitOutcome:
        settings = self._settings
        requested = (
            settings.default_wait
            if max_wait_time is None
            else _seconds(max_wait_time, "max_wait_time")
        )
        wait, note = requested, ""
        if requested > settings.max_wait:
            note = (
                f"max_wait_time capped from {requested:g}s to {settings.max_wait:g}s (the limit)."
            )
            wait = settings.max_wait
        ids = _id_list(task_ids)
        if return_when is not None and not (
            isinstance(return_when, str) and return_when in ("all", "any")
        ):
            raise InvalidArgumentsError(
                f"`return_when` must be 'all' or 'any', received {shown(return_when)}."
            )
        mode: ReturnWhen = "any" if return_when == "any" else "all"
        outcome = self._on_loop(
            lambda: self._scope.wait(ids, timeout=wait, return_when=mode),
            timeout=wait + settings.call_timeout,
        )
        return outcome.with_note(note) if note else outcome


class SleepTool(_TaskTool):
    name = "sleep"
    description = (
        "Pause for `seconds` (capped at the configured limit) while background tasks run. "
        "Prefer wait_for_tasks, which returns as soon as tasks finish."
    )
    inputs = {
        "seconds": {"type": "number", "description": "How long to pause."},
        "reason": {"type": "string", "description": "Why, for the logs.", "nullable": True},
    }

    def forward(self, seconds: float, reason: str | None = None) -> str:
        requested = _seconds(seconds, "seconds")
        limit = self._settings.max_sleep
        capped = min(requested, limit)

        async def pause() -> None:
            import asyncio

            await asyncio.sleep(capped)

        self._on_loop(pause, timeout=capped + self._settings.call_timeout)
        text = f"slept {capped:g}s"
        if capped < requested:
            text += f" (capped from {requested:g}s: the limit is {limit:g}s)"
        why = reason if isinstance(reason, str) or reason is None else shown(reason)
        return bounded(text + (f" - {why}" if why else ""), self._settings.max_output_chars)


class GetTaskResultsTool(_TaskTool):
    name = "get_task_results"
    description = (
        "Return a dict {task_id: result} for the given ids. A task without a result (failed, "
        "cancelled, timed out, or not finished) maps to a falsy TaskFailure whose text says why; "
        "check with `if not value:` before using a result."
    )
    inputs = {"task_ids": {"type": "any", "description": "A list of task ids (or a single id)."}}
    output_type = "object"

    def forward(self, task_ids: Any) -> dict[str, Any]:
        ids = _id_list(task_ids)
        return self._on_loop(lambda: self._scope.results(ids))


class CheckTaskTool(_TaskTool):
    name = "check_task"
    description = "Describe one task: status, timing and result or error."
    inputs = {
        "task_id": {"type": "string", "description": "The task id."},
        "format": {
            "type": "string",
            "description": "'summary' (one line, default) or 'detailed'.",
            "nullable": True,
        },
    }

    def forward(self, task_id: str, format: str | None = None) -> str:
        style = "summary" if format is None or (isinstance(format, str) and not format) else format
        if not (isinstance(style, str) and style in ("summary", "detailed")):
            raise InvalidArgumentsError(
                f"`format` must be 'summary' or 'detailed', received {shown(format)}."
            )

        async def describe() -> str:
            info = self._scope.get(task_id)
            limit = self._settings.max_output_chars
            return task_line(info) if style == "summary" else task_detail(info, limit)

        return self._on_loop(describe)


class ListTasksTool(_TaskTool):
    name = "list_tasks"
    description = "List this run's most recent tasks, one line each, optionally by status."
    inputs = {
        "status_filter": {
            "type": "string",
            "description": "pending, running, completed, failed, cancelled or timed_out.",
            "nullable": True,
        },
        "limit": {
            "type": "integer",
            "description": "How many of the latest tasks (default 10).",
            "nullable": True,
        },
    }

    def forward(self, status_filter: str | None = None, limit: int | None = None) -> str:
        async def listing() -> str:
            infos = self._scope.list(status=status_filter, limit=10 if limit is None else limit)
            if not infos:
                return "no tasks" + (f" with status {status_filter}" if status_filter else "")
            text = "\n".join(task_line(info, limit=80) for info in infos)
            return bounded(text, self._settings.max_output_chars)

        return self._on_loop(listing)


class CancelTaskTool(_TaskTool):
    name = "cancel_task"
    description = "Cancel a pending or running task; returns its final state."
    inputs = {"task_id": {"type": "string", "description": "The task id."}}

    def forward(self, task_id: str) -> str:
        async def cancel() -> str:
            return task_line(await self._scope.cancel(task_id))

        return self._on_loop(cancel)


TASK_TOOL_TYPES: tuple[type[_TaskTool], ...] = (
    SubmitTaskTool,
    WaitForTasksTool,
    SleepTool,
    GetTaskResultsTool,
    CheckTaskTool,
    ListTasksTool,
    CancelTaskTool,
)


def task_tools(scope: RunScope, bridge: LoopBridge, settings: ToolSettings) -> list[Tool]:
    """The seven task tools, bound to one run's scope."""
    return [tool_type(scope, bridge, settings) for tool_type in TASK_TOOL_TYPES]


def _parse_arguments(arguments: Any) -> Any:
    """Accept a JSON object string where a dict is expected; leave everything else to submit."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as exc:  # also: nested too deep, int too long
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else shown(exc)
            raise InvalidArgumentsError(
                "`arguments` must be a dict such as {'path': 'a.csv'} (or a JSON object string); "
                f"received a string that is not JSON: {arguments[:80]!r} ({why})."
            ) from None
        return parsed
    return arguments


def _seconds(value: Any, name: str) -> float:
    """A model's non-negative number of seconds, as a float (NaN refused; past float: inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentsError(
            f"`{name}` must be a non-negative number of seconds, received {shown(value)}."
        )
    try:
        return float(value)
    except OverflowError:  # an int with hundreds of digits: as good as forever, then capped
        return math.inf


def _id_list(task_ids: Any) -> list[str]:
    """A single id where a list is expected is clearly meant as a list of one."""
    if isinstance(task_ids, str):
        return [task_ids]
    if isinstance(task_ids, (list, tuple, set, frozenset)):
        return list(task_ids)
    if isinstance(task_ids, dict):  # e.g. the dict get_task_results returned
        return list(task_ids)
    raise InvalidArgumentsError(
        f"`task_ids` must be a list of task ids, received {type(task_ids).__name__} "
        f"{shown(task_ids)}."
    )
