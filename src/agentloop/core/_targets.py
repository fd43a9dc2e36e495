"""What a task can run, and how arguments are checked before it runs.

Targets are adapted at the edge of the core: a smolagents `Tool` (anything with `name`, `inputs`
and `forward`), a plain sync or async callable, a smolagents agent (copied per task), or an
object with an async `arun(task)` such as an `AsyncAgent`. None of this imports smolagents.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._text import close_match_hint, shown
from ..errors import InvalidArgumentsError
from ..tasks import TaskType
from ..tracing._openinference import call_async_tool
from ._isolation import PortableAgentRun
from .references import is_reference

__all__ = ["InputSpec", "Target", "agent_target", "tool_target", "validate_arguments"]

RESERVED_NAMES = frozenset({"final_answer"})
"""Names that may never be task targets: `final_answer` ends the controller's run, not a task."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InputSpec:
    """One declared input of a target, in the JSON-schema type vocabulary smolagents uses."""

    name: str
    types: tuple[str, ...]
    required: bool
    nullable: bool = False
    description: str = ""
    default: str = "None"
    """How the default reads in a signature (for inputs that are not required)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A registered tool or managed agent, reduced to what the registry needs to run it."""

    name: str
    task_type: TaskType
    description: str
    inputs: Mapping[str, InputSpec]
    accepts_extra: bool
    is_async: bool
    call: Callable[[dict[str, Any]], Any]
    """Runs the target with validated arguments; returns an awaitable when `is_async`."""
    portable: Callable[[dict[str, Any]], Any] | None = None
    """A picklable equivalent of `call` for remote backends, or None: runs only locally."""
    interruptible: bool = False
    """Whether `call` listens for its task's cancellation (`cancellation.on_cancel`), as a
    smolagents agent does: the runner then gives each attempt a signal to fire."""
    shared_limiter: anyio.CapacityLimiter | None = None
    """A bound this target shares with others (all the tools of one MCP server): the runner
    takes a slot of it besides the pool's, so the task waits as `pending` while it is full."""
    check: Callable[[Mapping[str, Any]], str | None] | None = None
    """A further check of the arguments after the declared inputs' (an MCP tool's full JSON
    schema): returns what is wrong (`"input `x`: 0 is less than the minimum of 1"`) or None.
    Runs where the task is submitted."""
    source: str | None = None
    """The name of the source that registered it (an MCP server), or None for a target
    registered by hand."""
    reattaches: bool = False
    """Its work runs elsewhere (a remote A2A agent) and records a handle on it in the journal
    before it counts as started, so a rerun after a resume re-attaches instead of doing the
    work again: a resumed run reruns it like an idempotent target."""

    required: bool = field(init=False)
    """Whether any input must be given (worked out once: submit checks it every time)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", any(s.required for s in self.inputs.values()))

    def signature(self) -> str:
        """A one-line, Python-looking signature for prompts and error messages."""
        params = []
        for spec in self.inputs.values():
            kind = "|".join(spec.types)
            params.append(f"{spec.name}: {kind}" + ("" if spec.required else f" = {spec.default}"))
        return f"{self.name}({', '.join(params)})"


def check_target_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidArgumentsError(
            f"target name {name!r} is not valid: use a Python identifier such as `analyze_dataset`."
        )
    if name in RESERVED_NAMES:
        raise InvalidArgumentsError(
            f"`{name}` cannot be a task target: it ends the controller's run. Call it directly."
        )
    return name


def tool_target(obj: Any, name: str | None = None) -> Target:
    """Adapt a smolagents-style tool or a plain callable."""
    if _looks_like_smolagents_tool(obj):
        inputs = _inputs_from_tool_schema(obj.inputs)
        forward = obj.forward
        is_async = inspect.iscoroutinefunction(forward)

        def call_tool(arguments: dict[str, Any]) -> Any:
            return obj(**arguments)

        def call_async(arguments: dict[str, Any]) -> Any:
            # not `obj(...)`: openinference wraps `Tool.__call__` synchronously, so its TOOL
            # span would end before the coroutine starts; this one covers the awaited work.
            return call_async_tool(obj, arguments)

        return Target(
            name=check_target_name(name or obj.name),
            task_type=TaskType.TOOL,
            description=str(getattr(obj, "description", "") or ""),
            inputs=inputs,
            accepts_extra=False,
            is_async=is_async,
            call=call_async if is_async else call_tool,
            portable=call_async if is_async else call_tool,
        )
    if not callable(obj):
        raise InvalidArgumentsError(
            f"cannot register {obj!r} as a tool: expected a smolagents `Tool` or a callable."
        )
    inputs, accepts_extra = _inputs_from_signature(obj)
    is_async = inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - async callable objects
    )

    def call_function(arguments: dict[str, Any]) -> Any:
        return obj(**arguments)

    return Target(
        name=check_target_name(name or getattr(obj, "__name__", None)),
        task_type=TaskType.TOOL,
        description=(inspect.getdoc(obj) or "").strip().split("\n\n")[0],
        inputs=inputs,
        accepts_extra=accepts_extra,
        is_async=is_async,
        call=call_function,
        portable=call_function,
    )


_AGENT_INPUTS: Mapping[str, InputSpec] = {
    "task": InputSpec(
        name="task", types=("string",), required=True, description="What the agent should do."
    ),
    "additional_args": InputSpec(
        name="additional_args",
        types=("object",),
        required=False,
        nullable=True,
        description="Extra variables handed to the agent.",
    ),
}


def agent_target(agent: Any, context: Any = None) -> Target:
    """Adapt a managed agent: an object with async `arun`, or a smolagents agent copied per task.

    An agent that runs its work elsewhere (`agentloop.serve.a2a.A2AAgent`) may define
    `arun_in(context, task, **kw)`: it is called instead of `arun`, with the registry's
    `SourceContext` (`context`: where a task's progress goes, the tracer), and its
    `reattaches` attribute is the target's.
    """
    name = check_target_name(getattr(agent, "name", None))
    description = str(getattr(agent, "description", "") or "")
    if not description:
        raise InvalidArgumentsError(
            f"managed agent `{name}` has no `description`; the controller needs one to choose it."
        )
    arun = getattr(agent, "arun", None)
    arun_in = getattr(agent, "arun_in", None)
    if context is not None and arun_in is not None and inspect.iscoroutinefunction(arun_in):
        arun = functools.partial(arun_in, context)
    if arun is not None and (
        inspect.iscoroutinefunction(arun) or isinstance(arun, functools.partial)
    ):

        def call_async_agent(arguments: dict[str, Any]) -> Awaitable[Any]:
            extra = arguments.get("additional_args")
            return typing.cast(
                Awaitable[Any],
                arun(arguments["task"], **({"additional_args": extra} if extra else {})),
            )

        return Target(
            name=name,
            task_type=TaskType.MANAGED_AGENT,
            description=description,
            inputs=_AGENT_INPUTS,
            accepts_extra=False,
            is_async=True,
            call=call_async_agent,
            reattaches=bool(getattr(agent, "reattaches", False)),
        )
    if not callable(getattr(agent, "run", None)):
        raise InvalidArgumentsError(
            f"cannot register {agent!r} as a managed agent: expected a smolagents agent "
            "(with `run`) or an object with an async `arun(task)`."
        )

    run_fresh_copy = PortableAgentRun(agent)
    return Target(
        name=name,
        task_type=TaskType.MANAGED_AGENT,
        description=description,
        inputs=_AGENT_INPUTS,
        accepts_extra=False,
        is_async=False,
        call=run_fresh_copy,
        portable=run_fresh_copy,
        interruptible=True,
    )


def validate_arguments(target: Target, arguments: Mapping[str, Any]) -> None:
    """Refuse unknown names, missing required inputs and obviously wrong types."""
    if not arguments and not target.required:
        return
    for key in arguments:
        if key not in target.inputs and not target.accepts_extra:
            raise InvalidArgumentsError(
                f"`{target.name}` has no input `{key}`.{close_match_hint(key, target.inputs)} "
                f"Expected: {target.signature()}."
            )
    missing = [s.name for s in target.inputs.values() if s.required and s.name not in arguments]
    if missing:
        raise InvalidArgumentsError(
            f"`{target.name}` is missing required input(s) {', '.join(f'`{m}`' for m in missing)}. "
            f"Expected: {target.signature()}."
        )
    for key, value in arguments.items():
        spec = target.inputs.get(key)
        if spec is None or is_reference(value):
            continue
        received = _json_type(value)
        if not _type_fits(received, spec):
            raise InvalidArgumentsError(
                f"`{target.name}` input `{key}` expects {' or '.join(spec.types)}, "
                f"received {received} {_short_repr(value)}. Expected: {target.signature()}."
            )
    if target.check is not None:
        problem = target.check(arguments)
        if problem is not None:
            raise InvalidArgumentsError(
                f"`{target.name}` {problem}. Expected: {target.signature()}."
            )


_PY_TO_JSON: dict[type, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    tuple: "array",
    dict: "object",
    type(None): "null",
}
_CHECKED_TYPES = frozenset({"string", "boolean", "integer", "number", "array", "object", "null"})


def _json_type(value: Any) -> str:
    return _PY_TO_JSON.get(type(value), "any")


def _type_fits(received: str, spec: InputSpec) -> bool:
    if received == "null":
        return spec.nullable or not spec.required or "null" in spec.types
    if received == "any" or "any" in spec.types:
        return True
    if not _CHECKED_TYPES.issuperset(spec.types):
        return True  # image, audio, ...: not something we can judge
    return received in spec.types or (received == "integer" and "number" in spec.types)


def _short_repr(value: Any) -> str:
    return f"`{shown(value, 63)}`"  # bounded, and safe for values whose `__repr__` raises


def _looks_like_smolagents_tool(obj: Any) -> bool:
    return (
        isinstance(getattr(obj, "inputs", None), dict)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "forward", None))
    )


def _inputs_from_tool_schema(schema: Mapping[str, Any]) -> dict[str, InputSpec]:
    inputs = {}
    for name, entry in schema.items():
        declared = entry.get("type", "any")
        types_ = tuple(declared) if isinstance(declared, list) else (str(declared),)
        nullable = bool(entry.get("nullable", False))
        inputs[name] = InputSpec(
            name=name,
            types=types_,
            required=not nullable,
            nullable=nullable,
            description=str(entry.get("description", "")),
        )
    return inputs


def _inputs_from_signature(func: Callable[..., Any]) -> tuple[dict[str, InputSpec], bool]:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to no type checking
        hints = {}
    inputs: dict[str, InputSpec] = {}
    accepts_extra = False
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        types_, nullable = _json_types_of(hints.get(param.name, Any))
        required = param.default is inspect.Parameter.empty
        inputs[param.name] = InputSpec(
            name=param.name,
            types=types_,
            required=required,
            nullable=nullable,
            default="" if required else repr(param.default)[:40],
        )
    return inputs, accepts_extra


def _json_types_of(annotation: Any) -> tuple[tuple[str, ...], bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        nullable = type(None) in members
        found: list[str] = []
        for member in members:
            if member is not type(None):
                found.extend(_json_types_of(member)[0])
        return (tuple(dict.fromkeys(found)) or ("any",)), nullable
    base = origin or annotation
    if base in (list, tuple, set, frozenset) or (
        isinstance(base, type) and issubclass(base, (list, tuple))
    ):
        return ("array",), False
    if isinstance(base, type) and (issubclass(base, Mapping) or base is dict):
        return ("object",), False
    if isinstance(base, type) and base in _PY_TO_JSON:
        json_type = _PY_TO_JSON[base]
        return (json_type,), json_type == "null"
    return ("any",), False
