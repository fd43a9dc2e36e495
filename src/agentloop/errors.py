"""The one error tree of agentloop.

Every error a user or a model can cause is an `AgentloopError`. Messages follow one pattern: name
the thing in backticks, show what was received, and say what would be valid. The agent-facing
tools let these propagate, so smolagents shows the text to the model as an observation and the
model can correct itself on its next step.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentloopError",
    "AnswerValidationError",
    "ApprovalRejectedError",
    "BudgetExceededError",
    "DependencyFailedError",
    "DuplicateTaskIdError",
    "InvalidArgumentsError",
    "JournalError",
    "JournalMismatchError",
    "MCPServerError",
    "MCPToolError",
    "NestingTooDeepError",
    "QuotaExceededError",
    "RegistryClosedError",
    "RunDivergedError",
    "RunLeasedError",
    "RunParkedError",
    "TaskFailedError",
    "UnknownRunError",
    "UnknownTargetError",
    "UnknownTaskError",
    "WouldBlockLoopError",
]


class AgentloopError(Exception):
    """Base class of every error agentloop raises on purpose."""


class AnswerValidationError(AgentloopError, ValueError):
    """A typed run (`arun(..., output_type=...)`) ended without an answer of that type: the
    model's answers still did not validate after `output_retries` corrections (or the run
    reached `max_steps` with one that does not).

    Attributes:
        last_value: the model's last answer, as it gave it (plain data, or an object its code
            made: do not trust its methods).
        problem: what was wrong with it (the text the model was shown).
    """

    def __init__(self, message: str, last_value: Any = None, problem: str = "") -> None:
        super().__init__(message)
        self.last_value = last_value
        self.problem = problem


class UnknownTargetError(AgentloopError, LookupError):
    """A task named a tool or managed agent that is not registered."""


class UnknownTaskError(AgentloopError, LookupError):
    """A task id that does not exist in the caller's scope (or was evicted from history)."""


class UnknownRunError(AgentloopError, LookupError):
    """A run id the journal has no run for."""


class DuplicateTaskIdError(AgentloopError, ValueError):
    """A caller-chosen task id is already taken in this scope."""


class InvalidArgumentsError(AgentloopError, ValueError):
    """Arguments that do not fit the target's declared inputs, or a malformed call."""


class QuotaExceededError(AgentloopError):
    """A configured bound (tasks per run, history, ...) was hit."""


class NestingTooDeepError(QuotaExceededError):
    """Runs nested inside runs (an agent delegating to itself, or to agents that delegate back)
    went deeper than `Limits.max_run_depth`."""


class BudgetExceededError(AgentloopError):
    """A run spent its model budget (`Limits.max_model_calls` / `max_total_tokens` /
    `max_cost_usd`), sub-agents included; the run ends and its tasks are cancelled."""


class TaskFailedError(AgentloopError):
    """A task ended without a result (failed, cancelled or timed out)."""


class ApprovalRejectedError(TaskFailedError):
    """A task that needed approval was rejected (or got no answer in time)."""


class DependencyFailedError(TaskFailedError):
    """A task could not start because a task it depends on did not complete."""


class MCPServerError(AgentloopError):
    """An MCP server could not be reached, did not answer `initialize` or a call in time,
    broke its connection (crashed, restarted) or sent what is not MCP. The message names the
    server and what happened; the next call reconnects."""


class MCPToolError(AgentloopError):
    """An MCP server's tool reported an error (a result with `isError`); the message is the
    tool's own text."""


class RegistryClosedError(AgentloopError, RuntimeError):
    """The registry, scope or event loop was closed; no new work is accepted."""


class WouldBlockLoopError(AgentloopError, RuntimeError):
    """A blocking call was made from the event loop's own thread, where it would deadlock."""


class JournalError(AgentloopError):
    """A journal that cannot be used: corrupt, foreign, of a newer schema, read-only, full or
    locked. The run fails loudly; no record is silently lost and the file is never rewritten."""


class RunLeasedError(JournalError):
    """Another process (or another call in this one) holds the lease on this run id."""


class JournalMismatchError(JournalError):
    """A run id was resumed with another task or another agent configuration (pass
    `force=True` to resume it anyway)."""


class RunDivergedError(JournalError):
    """Replaying a run, its code made a call other than the one recorded (the model's code, or
    what it depends on, is not deterministic)."""


class RunParkedError(AgentloopError):
    """The run parked: nothing was left but tasks awaiting a person's decision, so its attempt
    stopped and holds nothing (`park_after=`). Decide with `agent.decide(run_id, task_id,
    decision)`, from any process, then resume it (`agent.resume(run_id)`)."""

    def __init__(self, message: str, *, run_id: str, approval_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.approval_ids = approval_ids
        """The tasks it waits on (their approval ids are their task ids)."""
