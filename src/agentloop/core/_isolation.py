"""Fresh, fully configured copies of smolagents agents, without importing smolagents.

A smolagents agent is stateful (memory, step counter, monitor, executor variables) and must never
run twice at once. Every managed-agent task therefore runs on its own copy: configuration (model,
tools, prompts, `max_steps`, callbacks, executor settings) is kept, run state starts empty.
The copy is made by duck typing on the attributes `MultiStepAgent` defines, so the core stays
free of smolagents' agent module.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import AgentloopError
from ._budgets import CURRENT_BUDGET, metered
from ._cancellation import CURRENT_CANCEL
from ._limits_by_model import CURRENT_MODEL_LIMITS, limit_tree

__all__ = ["PortableAgentRun", "interrupt_tree", "isolated_copy"]


def isolated_copy(agent: Any) -> Any:
    """Return a copy of `agent` that shares configuration but no run state with it."""
    clone = copy.copy(agent)
    if hasattr(agent, "tools") and isinstance(agent.tools, dict):
        clone.tools = dict(agent.tools)
    if isinstance(getattr(agent, "managed_agents", None), dict):
        clone.managed_agents = {
            name: isolated_copy(sub) for name, sub in agent.managed_agents.items()
        }
    for attribute, fresh in (("state", {}), ("step_number", 0), ("task", None)):
        if hasattr(agent, attribute):
            setattr(clone, attribute, fresh)
    clone.interrupt_switch = False
    if hasattr(agent, "memory"):
        clone.memory = type(agent.memory)(clone.system_prompt)
    if hasattr(agent, "monitor"):
        clone.monitor = type(agent.monitor)(agent.model, agent.logger)
        _rebind_callbacks(agent, clone)
    if getattr(agent, "python_executor", None) is not None:
        clone.python_executor = _fresh_executor(agent)
    return clone


def _rebind_callbacks(original: Any, clone: Any) -> None:
    """Copy the callback registry, pointing callbacks bound to the old monitor at the new one."""
    registry = getattr(original, "step_callbacks", None)
    callbacks = getattr(registry, "_callbacks", None)
    if registry is None or not isinstance(callbacks, dict):
        return
    new_registry = copy.copy(registry)
    new_registry._callbacks = {
        step_cls: [_rebound(cb, original, clone) for cb in cbs]
        for step_cls, cbs in callbacks.items()
    }
    clone.step_callbacks = new_registry


def _rebound(callback: Any, original: Any, clone: Any) -> Any:
    owner = getattr(callback, "__self__", None)
    if owner is original.monitor:
        return getattr(clone.monitor, callback.__name__)
    if owner is original:
        return getattr(clone, callback.__name__)
    return callback


def _fresh_executor(agent: Any) -> Any:
    """A new executor with the same settings; its variables are not carried over."""
    executor = agent.python_executor
    settings = ("additional_authorized_imports", "max_print_outputs_length", "timeout_seconds")
    if all(hasattr(executor, name) for name in settings):
        try:
            return type(executor)(
                list(executor.additional_authorized_imports),
                max_print_outputs_length=executor.max_print_outputs_length,
                additional_functions=dict(getattr(executor, "additional_functions", {}) or {}),
                timeout_seconds=executor.timeout_seconds,
            )
        except TypeError:
            pass  # a subclass with another constructor: fall back to a deep copy below
    try:
        return copy.deepcopy(executor)
    except Exception as exc:
        raise AgentloopError(
            f"cannot run managed agent `{getattr(agent, 'name', agent)!s}` in isolation: its "
            f"executor `{type(executor).__name__}` cannot be copied ({type(exc).__name__}: {exc}). "
            "Give it a local executor, or register an object with an async `arun(task)` instead."
        ) from exc


class PortableAgentRun:
    """Runs one task on a fresh copy of a smolagents agent; picklable, for remote backends.

    Everything of the agent travels except its console logger (which holds a terminal and
    locks): it is rebuilt, with the same class and level, where the task runs.
    """

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def __call__(self, arguments: dict[str, Any]) -> Any:
        fresh = isolated_copy(self.agent)
        # Cancelling the task (or its run) stops the copy before its next step, and the
        # sub-agents it has, so none of them goes on calling its model.
        signal = CURRENT_CANCEL.get()
        if signal is not None:
            signal.add(lambda: interrupt_tree(fresh))
            if signal.fired:  # cancelled before the copy started: `run` would reset the switch
                raise AgentloopError("the task was cancelled before the agent started")
        by_id = CURRENT_MODEL_LIMITS.get()
        if by_id:  # its models' calls spend the agent's provider budgets (inside the metering)
            limit_tree(fresh, by_id)
        if CURRENT_BUDGET.get() is not None:  # its model calls count against the run's budget
            _meter_tree(fresh, str(getattr(fresh, "name", None) or type(fresh).__name__))
        extra = arguments.get("additional_args")
        return fresh(arguments["task"], **({"additional_args": extra} if extra else {}))

    def __getstate__(self) -> dict[str, Any]:
        template = isolated_copy(self.agent)
        logger = getattr(template, "logger", None)
        _set_loggers(template, None)
        return {
            "agent": template,
            "logger_type": type(logger) if logger is not None else None,
            "level": getattr(logger, "level", None),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        agent = state["agent"]
        if state["logger_type"] is not None:
            _set_loggers(agent, state["logger_type"](level=state["level"]))
        self.agent = agent


def _meter_tree(agent: Any, label: str) -> None:
    """Meter the models of `agent` and of its own managed agents, all under `label` (the
    sub-agent the run started: what its sub-agents spend is part of what it spent)."""
    model = getattr(agent, "model", None)
    if model is not None:
        agent.model = metered(model, label)
    for sub in (getattr(agent, "managed_agents", None) or {}).values():
        _meter_tree(sub, label)


def interrupt_tree(agent: Any) -> None:
    """`interrupt()` a smolagents agent and every managed agent below it (thread-safe: it
    sets a flag the agent checks before each step)."""
    interrupt = getattr(agent, "interrupt", None)
    if callable(interrupt):
        interrupt()
    for sub in (getattr(agent, "managed_agents", None) or {}).values():
        interrupt_tree(sub)


def _set_loggers(agent: Any, logger: Any) -> None:
    for holder in (agent, getattr(agent, "monitor", None)):
        if holder is not None and hasattr(holder, "logger"):
            holder.logger = logger
    for sub in (getattr(agent, "managed_agents", None) or {}).values():
        _set_loggers(sub, logger)
