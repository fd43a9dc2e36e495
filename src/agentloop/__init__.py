"""agentloop: asyncio-native orchestration for smolagents.

A smolagents `CodeAgent` becomes the controller of its own parallel work: the model's code calls
`submit_task(...)`, keeps going, then `wait_for_tasks(...)` and `get_task_results(...)`, while an
asyncio event loop runs the tool calls and managed agents concurrently.
"""

from typing import TYPE_CHECKING

from .agent.stream import (
    ModelDelta,
    RunEvent,
    RunEventKind,
    RunStream,
    StepInfo,
    TaskEventInfo,
)
from .core._effects import ReconcileState, Reconciliation, TaskContext, current_task
from .core._model_limits import ModelLimits
from .core._usage import ModelUsage
from .core.approvals import ApprovalDecision, ApprovalRequest
from .core.references import result_of
from .engine.registry import TaskRegistry
from .engine.scope import RunScope
from .errors import (
    AgentloopError,
    AnswerValidationError,
    ApprovalRejectedError,
    BudgetExceededError,
    DependencyFailedError,
    DuplicateTaskIdError,
    InvalidArgumentsError,
    JournalError,
    JournalMismatchError,
    MCPServerError,
    MCPToolError,
    NestingTooDeepError,
    QuotaExceededError,
    RegistryClosedError,
    RunDivergedError,
    RunLeasedError,
    RunParkedError,
    TaskFailedError,
    UnknownRunError,
    UnknownTargetError,
    UnknownTaskError,
    WouldBlockLoopError,
)
from .journal.base import EntryKind, Journal, JournalEntry, LeaseHolder, RunStatus, RunSummary
from .limits import Limits
from .tasks import (
    ReturnWhen,
    TaskEvent,
    TaskEventKind,
    TaskFailure,
    TaskInfo,
    TaskProgress,
    TaskStatus,
    TaskType,
    WaitOutcome,
)

if TYPE_CHECKING:
    from .agent._recovery import RecoveredRun, Recovering
    from .agent.async_agent import AsyncAgent, create_async_agent
    from .agent.run_result import RunResult
    from .agent.session import AgentSession
    from .agent.tools import ToolSettings
    from .journal.postgres import PostgresJournal
    from .journal.sqlite import SQLiteJournal

from . import _util
from ._version import __version__

# Before anything imports litellm (a user's LiteLLMModel does; `import agentloop` does not):
# its cost map from the copy installed with it, not a network fetch (`prefer_local_cost_map`).
_util.prefer_local_cost_map()

# The agent layer imports smolagents (about half a second); the core does not. These names
# load on first use, so `import agentloop` and `agentloop --help` stay fast.
_LAZY = {
    "AgentSession": "agent.session",
    "AsyncAgent": "agent.async_agent",
    "PostgresJournal": "journal.postgres",
    "RecoveredRun": "agent._recovery",
    "Recovering": "agent._recovery",
    "RunResult": "agent.run_result",
    "SQLiteJournal": "journal.sqlite",
    "ToolSettings": "agent.tools",
    "create_async_agent": "agent.async_agent",
}


__getattr__ = _util.loaded_on_first_use(globals(), _LAZY)


__all__ = [
    "AgentSession",
    "AgentloopError",
    "AnswerValidationError",
    "ApprovalDecision",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "AsyncAgent",
    "BudgetExceededError",
    "DependencyFailedError",
    "DuplicateTaskIdError",
    "EntryKind",
    "InvalidArgumentsError",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalMismatchError",
    "LeaseHolder",
    "Limits",
    "MCPServerError",
    "MCPToolError",
    "ModelDelta",
    "ModelLimits",
    "ModelUsage",
    "NestingTooDeepError",
    "PostgresJournal",
    "QuotaExceededError",
    "ReconcileState",
    "Reconciliation",
    "RecoveredRun",
    "Recovering",
    "RegistryClosedError",
    "ReturnWhen",
    "RunDivergedError",
    "RunEvent",
    "RunEventKind",
    "RunLeasedError",
    "RunParkedError",
    "RunResult",
    "RunScope",
    "RunStatus",
    "RunStream",
    "RunSummary",
    "SQLiteJournal",
    "StepInfo",
    "TaskContext",
    "TaskEvent",
    "TaskEventInfo",
    "TaskEventKind",
    "TaskFailedError",
    "TaskFailure",
    "TaskInfo",
    "TaskProgress",
    "TaskRegistry",
    "TaskStatus",
    "TaskType",
    "ToolSettings",
    "UnknownRunError",
    "UnknownTargetError",
    "UnknownTaskError",
    "WaitOutcome",
    "WouldBlockLoopError",
    "__version__",
    "create_async_agent",
    "current_task",
    "result_of",
]

_util.report_as(__name__, globals(), __all__)
