"""Builds each run's controller `CodeAgent`, doing once per agent what every run would redo.

Every `arun` needs a fresh smolagents `CodeAgent` (fresh memory, step counter, monitor and
executor state: that is what keeps concurrent runs isolated). But constructing one the plain way
re-reads and YAML-parses its prompt templates, compiles the system-prompt Jinja template twice
(once in `__init__`, once more in `run`), builds a rich console for a logger that prints nothing
at verbosity OFF, and checks the authorized imports are installed: measured 15 of the 18 ms a
2-step run took, identical for every run of one agent (see `docs/performance.md`, W6).

`ControllerFactory` keeps that work per agent:

- the prompt templates are parsed once and passed through smolagents' public
  `prompt_templates=` parameter (shared read-only: smolagents never writes to them);
- the rendered system prompt is cached, keyed on everything it is rendered from (the tools'
  names, descriptions, inputs and output types, and the instructions), so registering a tool
  later, or a per-run tool with another schema, renders it again instead of showing a stale one;
- at verbosity OFF (agentloop's default) one `AgentLogger` is shared: it never prints, and has
  no other state;
- a cheaper `_Controller` subclass renders its prompt from that cache (smolagents' only way in
  is overriding `initialize_system_prompt`, which it documents as the hook for custom prompts).

- the executor's check that every authorized import is installed runs for the first run only.

Each controller also gets agentloop's final-answer check (`_answer_check`), after the user's.

What stays per run: the `CodeAgent` itself, its `AgentMemory`, `Monitor`, step callbacks
registry, tools dict, state and `LocalPythonExecutor` (fresh variables and `static_tools`).
"""

from __future__ import annotations

import importlib.resources
import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from smolagents import CodeAgent, MultiStepAgent, Tool
from smolagents.local_python_executor import LocalPythonExecutor
from smolagents.monitoring import AgentLogger, LogLevel

from .._text import close_match_hint
from ..errors import InvalidArgumentsError
from ._answer_check import answer_matches_output_type
from ._quiet_step import quiet_step_stream

__all__ = ["ControllerFactory", "check_codeagent_kwargs"]

_PromptKey = tuple[str | None, tuple[tuple[str, str, str, str], ...]]


class _Controller(CodeAgent):  # type: ignore[misc]
    """A `CodeAgent` whose system prompt comes from its factory's cache, and whose streaming
    step builds its display only when shown (`_quiet_step`).

    smolagents renders the prompt from the Jinja template on every `system_prompt` read (twice a
    run); the text only depends on what the factory keys it on, so it is rendered once.
    """

    def __init__(self, *, system_prompt: str | None, imports_checked: bool, **kwargs: Any) -> None:
        self._agentloop_prompt = system_prompt
        self._imports_checked = imports_checked
        super().__init__(**kwargs)

    def initialize_system_prompt(self) -> str:
        if self._agentloop_prompt is None:
            self._agentloop_prompt = str(super().initialize_system_prompt())
        return self._agentloop_prompt

    def _step_stream(self, memory_step: Any) -> Iterator[Any]:
        return quiet_step_stream(self, memory_step)

    def create_python_executor(self) -> Any:
        if self.executor_type != "local":
            return super().create_python_executor()
        return _ParseRetryingExecutor(
            self.additional_authorized_imports,
            imports_checked=self._imports_checked,
            **{"max_print_outputs_length": self.max_print_outputs_length} | self.executor_kwargs,
        )


class _ParseRetryingExecutor(LocalPythonExecutor):  # type: ignore[misc]
    """smolagents' local executor, retrying a parse that CPython spuriously failed.

    CPython 3.11 keeps the AST constructor's recursion-depth counter in interpreter-wide state,
    so two controller threads parsing model code at once can make `ast.parse` raise
    `SystemError: AST constructor recursion depth mismatch` (cpython gh-106905 and related)
    for perfectly good code. Measured: one run in about a thousand with a hundred concurrent
    runs (`tests/durability/test_many_runs.py`). The parse is the first thing smolagents'
    `evaluate_python_code` does, before any of the code runs, so that error is retried.
    """

    def __init__(self, *args: Any, imports_checked: bool = False, **kwargs: Any) -> None:
        self._imports_checked = imports_checked
        super().__init__(*args, **kwargs)

    def _check_authorized_imports_are_installed(self) -> None:
        """smolagents looks every authorized import up (`find_spec`) for each executor: 0.7 ms
        a run, measured. The answer is the same for every run of an agent: its factory has
        the first executor check, and the others skip it."""
        if not self._imports_checked:
            super()._check_authorized_imports_are_installed()

    def __call__(self, code_action: str) -> Any:
        for attempt in range(_PARSE_ATTEMPTS):
            try:
                return super().__call__(code_action)
            except SystemError as exc:
                if "recursion depth mismatch" not in str(exc) or attempt == _PARSE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


_PARSE_ATTEMPTS = 5


# It is a CodeAgent, and smolagents and its instrumentations name things after the class
# (`agent_name`, openinference's "CodeAgent.run" spans): keep the names users see unchanged.
_Controller.__name__ = _Controller.__qualname__ = "CodeAgent"


class _SilentLogger(AgentLogger):  # type: ignore[misc]
    """An `AgentLogger` for verbosity OFF that does not build what it would not print.

    smolagents builds its rich renderables (a syntax-highlighted panel of each code block, a
    Markdown view of each reply, the task's panel) before asking the level whether to print
    them. At OFF nothing is printed, so nothing is built; the logger holds no state, so one is
    shared by every run of an agent.
    """

    def log(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_error(self, error_message: str) -> None:
        return None

    def log_markdown(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_code(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_rule(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_task(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_messages(self, *args: Any, **kwargs: Any) -> None:
        return None


class _MuteConsole(Console):
    """The silent logger's console: prints nothing, and never starts a live display.

    A streaming step wraps each model call in a rich `Live` on the logger's console. The first
    `Live` on a console starts a refresh thread and redirects stdout; a nested one does
    neither. This console answers every `Live` as nested (rich's `set_live` returns whether a
    live display is the outermost) and drops what a nested one prints when it stops.
    """

    def set_live(self, live: Live) -> bool:
        return False

    def clear_live(self) -> None:
        return None

    def print(self, *args: Any, **kwargs: Any) -> None:
        return None


class ControllerFactory:
    """Makes fresh controllers for one agent's runs.

    `build` may be called from several threads (copies of an agent run as managed agents on
    loops of their own): the cache is a dict whose single reads and writes are atomic, and
    the worst a race can do is render one prompt twice.

    Args:
        codeagent_kwargs: the user's `CodeAgent` options, already checked by `AsyncAgent`.
        default_imports: imports authorized on top of the user's and smolagents' defaults.
    """

    def __init__(
        self,
        codeagent_kwargs: Mapping[str, Any],
        default_imports: Sequence[str] = (),
    ) -> None:
        kwargs = dict(codeagent_kwargs)
        imports = set(kwargs.pop("additional_authorized_imports", None) or ())
        self._executor_kwargs = {
            "timeout_seconds": None,
            **(kwargs.pop("executor_kwargs", None) or {}),
        }
        kwargs.setdefault("verbosity_level", LogLevel.OFF)
        if kwargs.get("prompt_templates") is None:
            kwargs["prompt_templates"] = _default_templates(
                bool(kwargs.get("use_structured_outputs_internally"))
            )
        if kwargs.get("logger") is None and kwargs["verbosity_level"] <= LogLevel.OFF:
            kwargs["logger"] = _SilentLogger(level=LogLevel.OFF, console=_MuteConsole())
        # How a run's step is cut at its model calls (see `_stepping`); the user's model is
        # called whole on the loop, whatever `stream_outputs` they gave.
        kwargs["stream_outputs"] = True
        # A typed turn's answer is checked here (the user's own checks run first).
        kwargs["final_answer_checks"] = [
            *(kwargs.get("final_answer_checks") or ()),
            answer_matches_output_type,
        ]
        self._imports = sorted(imports | set(default_imports))
        self._kwargs = kwargs
        self._prompts: dict[_PromptKey, str] = {}
        self._imports_checked = False

    def build(self, tools: Sequence[Tool], instructions: str | None, model: Any) -> CodeAgent:
        """A fresh controller with this run's `tools` (new instances each run), the agent's
        `instructions` (the guidance) and the run's `model` (its `StepModel`)."""
        key = _prompt_key(tools, instructions)
        controller = _Controller(
            system_prompt=self._prompts.get(key),
            imports_checked=self._imports_checked,
            tools=list(tools),
            model=model,
            instructions=instructions,
            additional_authorized_imports=self._imports,
            executor_kwargs=dict(self._executor_kwargs),
            **self._kwargs,
        )
        self._imports_checked = True  # checked by this build (or it raised)
        if key not in self._prompts:
            if len(self._prompts) >= _MAX_PROMPTS:  # tools re-registered many times: start over
                self._prompts.clear()
            self._prompts[key] = controller.system_prompt
        return controller


_MAX_PROMPTS = 16
"""Rendered prompts kept per agent: one per distinct tool set seen, which is one in practice."""


def _prompt_key(tools: Sequence[Tool], instructions: str | None) -> _PromptKey:
    """Everything the system prompt is rendered from that can differ between runs."""
    return instructions, tuple(
        (str(t.name), str(t.description), repr(t.inputs), str(t.output_type)) for t in tools
    )


def _default_templates(structured: bool) -> dict[str, Any]:
    """smolagents' own templates for a `CodeAgent`, as its constructor would load them."""
    import yaml  # type: ignore[import-untyped]

    name = "structured_code_agent.yaml" if structured else "code_agent.yaml"
    text = importlib.resources.files("smolagents.prompts").joinpath(name).read_text()
    templates: dict[str, Any] = yaml.safe_load(text)
    return templates


_REFUSED_CODEAGENT_KWARGS = {
    "executor": "one executor instance would be shared by concurrent runs; pass "
    "`executor_type=` and `executor_kwargs=` instead so each run gets its own",
}


def check_codeagent_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse an option the controller `CodeAgent` does not take (with the closest one), or
    one that would share state between concurrent runs."""
    accepted = {
        name
        for cls in (CodeAgent, MultiStepAgent)
        for name in inspect.signature(cls.__init__).parameters
        if name not in ("self", "kwargs", "tools", "model", "managed_agents", "instructions")
    }
    _check_executor_type(kwargs.get("executor_type", "local"))
    for key in kwargs:
        if key in _REFUSED_CODEAGENT_KWARGS:
            raise InvalidArgumentsError(
                f"`{key}` is not supported: {_REFUSED_CODEAGENT_KWARGS[key]}."
            )
        if key not in accepted:
            raise InvalidArgumentsError(
                f"unknown option `{key}` for the controller CodeAgent."
                f"{close_match_hint(key, accepted)} Accepted: {', '.join(sorted(accepted))}."
            )


def _check_executor_type(executor_type: Any) -> None:
    """Refuse smolagents' remote executors (docker, e2b, modal, blaxel, ...): the run's tools
    cannot work in them.

    A remote executor runs the model's code in a sandbox elsewhere and recreates the tools
    there from their source code (smolagents' `send_tools`). agentloop's task tools and direct
    calls are closures bound to this process's event loop (its `LoopBridge`), the run's scope
    and its limits: recreated elsewhere they reach none of it, and there is no channel back.
    Accepted, such a run crashed at its first step; refused, the user learns it at creation."""
    if executor_type == "local":
        return
    raise InvalidArgumentsError(
        f"`executor_type={executor_type!r}` is not supported: the controller's code calls "
        "agentloop's task tools (`submit_task`, `wait_for_tasks`, ...) and your tools and "
        "managed agents by name, and those reach this process's event loop, while a remote "
        "executor runs the code in a sandbox elsewhere with copies of the tools and no way "
        'back, so every run would fail. Use `executor_type="local"` (the default: smolagents\' '
        "restricted local interpreter, with `additional_authorized_imports` and "
        "`executor_kwargs`); to run your tools away from this process, use "
        '`backend="ray"` (docs/distributed.md).'
    )
