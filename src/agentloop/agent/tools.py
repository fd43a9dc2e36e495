"""The agent-facing task tools: smolagents `Tool`s whose sync `forward` bridges into the loop.

The controller's generated code runs in a plain thread; each call here crosses into the event
loop with `LoopBridge.call` (so contextvars travel along) and acts on the run's own scope only.
Errors are raised, never returned: smolagents shows the message to the model as an observation
and the model corrects itself on its next step. Outputs meant to be read are bounded in size.

Model code is hostile input, and smolagents' interpreter lets it read every attribute that is
not a dunder. So a tool holds *no* reference to run state: each run's `forward` is a closure
over the scope, the bridge and the settings (closures are reachable only through `__closure__`,
a dunder), set on an instance that carries nothing else but the class's name, description and
inputs. Inputs are checked here, in the controller's thread, before anything reaches the loop,
and user objects (results, arguments) are rendered here too, so no call can stall the loop.

Per-run instances skip `Tool.__init__` and its validation (`Tool.validate_arguments`, about
1 ms a run, and the same for every run); the test suite runs that validation on them instead
(`tests/reliability/test_boundary.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from smolagents import Tool

from .._text import bounded, shown
from ..core._bridge import LoopBridge
from ..core._targets import Target
from ..core._validation import (
    checked_limit,
    checked_return_when,
    checked_seconds,
    checked_status,
    checked_task_id,
    id_list,
)
from ..engine.scope import RunScope
from ..errors import InvalidArgumentsError, RegistryClosedError, TaskFailedError
from ..tasks import TaskFailure, TaskStatus, WaitOutcome
from ._observations import task_detail, task_line

__all__ = [
    "TASK_TOOL_NAMES",
    "ToolSettings",
    "check_direct_call_names",
    "direct_call_tools",
    "reserved_call_names",
    "task_tools",
]

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
    """A task tool's public face; `forward` is set per run (see `task_tools`)."""

    output_type = "string"
    skip_forward_signature_validation = True  # forward is a per-run closure, checked in tests


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


class GetTaskResultsTool(_TaskTool):
    name = "get_task_results"
    description = (
        "Return a dict {task_id: result} for the given ids. A task without a result (failed, "
        "cancelled, timed out, or not finished) maps to a falsy TaskFailure whose text says why; "
        "check with `if not value:` before using a result."
    )
    inputs = {"task_ids": {"type": "any", "description": "A list of task ids (or a single id)."}}
    output_type = "object"


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


class CancelTaskTool(_TaskTool):
    name = "cancel_task"
    description = "Cancel a pending or running task; returns its final state."
    inputs = {"task_id": {"type": "string", "description": "The task id."}}


TASK_TOOL_NAMES = (
    "submit_task",
    "wait_for_tasks",
    "sleep",
    "get_task_results",
    "check_task",
    "list_tasks",
    "cancel_task",
)


def task_tools(scope: RunScope, bridge: LoopBridge, settings: ToolSettings) -> list[Tool]:
    """The seven task tools of one run. Their state lives in the closures made here."""

    def on_loop(
        what: str, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None
    ) -> T:
        return bridge.call(make, timeout=timeout or settings.call_timeout, what=what)

    def submit_task(
        task_type: str,
        target_name: str,
        arguments: Any | None = None,
        task_id: str | None = None,
        depends_on: Any | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> str:
        if bridge.closed:
            raise RegistryClosedError(f"`submit_task`: {bridge.name} has ended.")
        # No round trip: everything is checked here and the start is queued on the loop,
        # ahead of any later call this thread makes (so a wait always finds the task).
        return scope.submit_threadsafe(
            task_type,
            target_name,
            _parse_arguments(arguments),
            task_id=task_id,
            depends_on=() if depends_on is None else depends_on,
            timeout=timeout,
            retries=0 if retries is None else retries,
        )

    def wait_for_tasks(
        task_ids: Any, max_wait_time: float | None = None, return_when: str | None = None
    ) -> WaitOutcome:
        requested = (
            settings.default_wait
            if max_wait_time is None
            else checked_seconds(max_wait_time, "max_wait_time")
        )
        wait, note = requested, ""
        if requested > settings.max_wait:
            note = (
                f"max_wait_time capped from {requested:g}s to {settings.max_wait:g}s (the limit)."
            )
            wait = settings.max_wait
        ids = _id_list(task_ids)
        mode = "all" if return_when is None else checked_return_when(return_when)
        outcome = on_loop(
            "wait_for_tasks",
            lambda: scope.wait(ids, timeout=wait, return_when=mode),
            timeout=wait + settings.call_timeout,
        )
        return outcome.with_note(note) if note else outcome

    def sleep(seconds: float, reason: str | None = None) -> str:
        requested = checked_seconds(seconds, "seconds")
        limit = settings.max_sleep
        capped = min(requested, limit)
        on_loop("sleep", lambda: scope.sleep(capped), timeout=capped + settings.call_timeout)
        text = f"slept {capped:g}s"
        if capped < requested:
            text += f" (capped from {requested:g}s: the limit is {limit:g}s)"
        why = reason if isinstance(reason, str) or reason is None else shown(reason)
        return bounded(text + (f" - {why}" if why else ""), settings.max_output_chars)

    def get_task_results(task_ids: Any) -> dict[str, Any]:
        ids = _id_list(task_ids)
        return on_loop("get_task_results", lambda: scope.results(ids))

    def check_task(task_id: str, format: str | None = None) -> str:
        style = "summary" if format is None or (isinstance(format, str) and not format) else format
        if not (isinstance(style, str) and style in ("summary", "detailed")):
            raise InvalidArgumentsError(
                f"`format` must be 'summary' or 'detailed', received {shown(format)}."
            )
        wanted = checked_task_id(task_id)

        async def snapshot() -> Any:
            info = scope.get(wanted)
            await scope.durable()  # what the model reads is committed first
            return info

        info = on_loop("check_task", snapshot)
        limit = settings.max_output_chars
        return task_line(info) if style == "summary" else task_detail(info, limit)

    def list_tasks(status_filter: str | None = None, limit: int | None = None) -> str:
        status = checked_status(status_filter)
        count = checked_limit(10 if limit is None else limit)

        async def snapshots() -> Any:
            infos = scope.list(status=status, limit=count)
            await scope.durable()  # what the model reads is committed first
            return infos

        infos = on_loop("list_tasks", snapshots)
        if not infos:
            return "no tasks" + (f" with status {status.value}" if status else "")
        text = "\n".join(task_line(info, limit=80) for info in infos)
        return bounded(text, settings.max_output_chars)

    def cancel_task(task_id: str) -> str:
        wanted = checked_task_id(task_id)
        return task_line(on_loop("cancel_task", lambda: scope.cancel(wanted)))

    forwards: list[tuple[type[_TaskTool], Callable[..., Any]]] = [
        (SubmitTaskTool, submit_task),
        (WaitForTasksTool, wait_for_tasks),
        (SleepTool, sleep),
        (GetTaskResultsTool, get_task_results),
        (CheckTaskTool, check_task),
        (ListTasksTool, list_tasks),
        (CancelTaskTool, cancel_task),
    ]
    return [_instance(cls, forward) for cls, forward in forwards]


# -- direct calls -------------------------------------------------------------------------------


class _DirectCallTool(Tool):  # type: ignore[misc]
    """A registered target, callable by name from model code; name, description, inputs and
    `forward` are set per instance (see `direct_call_tools`)."""

    output_type = "any"
    skip_forward_signature_validation = True


RESERVED_CALL_NAMES = frozenset({*TASK_TOOL_NAMES, "final_answer"})


def reserved_call_names() -> frozenset[str]:
    """Names a target cannot take, since model code calls it by name: the task tools,
    `final_answer`, and the builtins smolagents gives model code."""
    from smolagents.local_python_executor import BASE_PYTHON_TOOLS

    return RESERVED_CALL_NAMES | frozenset(BASE_PYTHON_TOOLS)


def check_direct_call_names(names: list[str]) -> None:
    """Refuse target names that would shadow a task tool, `final_answer`, or a builtin the
    model's code relies on (each target is also callable by its name)."""
    from smolagents.local_python_executor import BASE_PYTHON_TOOLS

    for name in names:
        if name in RESERVED_CALL_NAMES or name in BASE_PYTHON_TOOLS:
            what = "a task tool" if name in TASK_TOOL_NAMES else "a function model code uses"
            if name == "final_answer":
                what = "the tool that ends the run"
            raise InvalidArgumentsError(
                f"a target may not be named `{name}`: every target is also callable by its name "
                f"from the model's code, and `{name}` is {what}. Register it under another "
                "name (e.g. `tools={'my_" + name + "': ...}`)."
            )


def direct_call_tools(
    scope: RunScope, bridge: LoopBridge, settings: ToolSettings, targets: list[Target]
) -> list[Tool]:
    """One tool per registered target, for calling it directly from model code as a
    *foreground task*: submitted to the run's scope like any task (same slots, limits, quota,
    timeouts, spans, statistics, `list_tasks`), and the call blocks until it ends. It returns
    the result, or raises `TaskFailedError` naming the target and why (an observation the
    model reads). State lives in closures, as for the task tools."""
    return [_direct_call_tool(scope, bridge, settings, target) for target in targets]


def _direct_call_tool(
    scope: RunScope, bridge: LoopBridge, settings: ToolSettings, target: Target
) -> Tool:
    name, kind, limit = target.name, target.task_type, settings.max_wait
    positional = list(target.inputs)

    async def wait_and_take(task_id: str) -> Any:
        outcome = await scope.wait([task_id], timeout=limit)
        if outcome.pending:
            await scope.cancel(task_id)
            raise TaskFailedError(
                f"`{name}` (task `{task_id}`) was still running after {limit:g}s, the limit of "
                "one direct call, and was cancelled; submit it with submit_task instead and "
                "wait for it in the background."
            )
        return (await scope.results([task_id]))[task_id]

    def forward(*args: Any, **kwargs: Any) -> Any:
        if bridge.closed:
            raise RegistryClosedError(f"`{name}`: {bridge.name} has ended.")
        arguments = _bound_arguments(target, positional, args, kwargs)
        task_id = scope.submit_threadsafe(kind, name, arguments)
        value = bridge.call(
            lambda: wait_and_take(task_id), timeout=limit + settings.call_timeout, what=name
        )
        if isinstance(value, TaskFailure):
            verb = "was cancelled" if value.status is TaskStatus.CANCELLED else "failed"
            raise TaskFailedError(f"`{name}` {verb} (task `{task_id}`): {value.error}")
        return value

    tool = _DirectCallTool.__new__(_DirectCallTool)
    tool.is_initialized = True
    tool.name = name
    tool.description = target.description or f"The {kind.value.replace('_', ' ')} `{name}`."
    tool.inputs = {spec.name: _schema(spec) for spec in target.inputs.values()}  # a fresh copy
    tool.forward = forward
    return tool


def _schema(spec: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": spec.types[0] if len(spec.types) == 1 else list(spec.types),
        "description": spec.description or spec.name,
    }
    if not spec.required:
        entry["nullable"] = True
    return entry


def _bound_arguments(
    target: Target, positional: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Positional arguments as smolagents passes them, bound to the target's input names."""
    if len(args) > len(positional):
        raise InvalidArgumentsError(
            f"`{target.name}` takes at most {len(positional)} positional argument(s), received "
            f"{len(args)}. Expected: {target.signature()}."
        )
    arguments = dict(zip(positional, args, strict=False))
    for key, value in kwargs.items():
        if key in arguments:
            raise InvalidArgumentsError(
                f"`{target.name}` got two values for `{key}`. Expected: {target.signature()}."
            )
        arguments[key] = value
    return arguments


def _instance(cls: type[_TaskTool], forward: Callable[..., Any]) -> Tool:
    """A tool of class `cls` whose `forward` is the given closure, without `Tool.__init__`'s
    validation (the same for every run: see the module docstring)."""
    tool = cls.__new__(cls)
    tool.is_initialized = True
    tool.forward = forward
    return tool


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


def _id_list(task_ids: Any) -> list[str]:
    """A single id where a list is expected is clearly meant as a list of one."""
    if not isinstance(task_ids, (str, list, tuple, set, frozenset, dict)):
        raise InvalidArgumentsError(
            f"`task_ids` must be a list of task ids, received {type(task_ids).__name__} "
            f"{shown(task_ids)}."
        )
    return id_list(task_ids)
