"""agentloop: asyncio-native orchestration for smolagents.

A smolagents `CodeAgent` becomes the controller of its own parallel work: the model's code calls
`submit_task(...)`, keeps going, then `wait_for_tasks(...)` and `get_task_results(...)`, while an
asyncio event loop runs the tool calls and managed agents concurrently.
"""

from typing import TYPE_CHECKING, Any

from .approvals import ApprovalDecision, ApprovalRequest
from .errors import (
    AgentloopError,
    ApprovalRejectedError,
    BudgetExceededError,
    DependencyFailedError,
    DuplicateTaskIdError,
    InvalidArgumentsError,
    JournalError,
    JournalMismatchError,
    NestingTooDeepError,
    QuotaExceededError,
    RegistryClosedError,
    RunDivergedError,
    RunLeasedError,
    TaskFailedError,
    UnknownTargetError,
    UnknownTaskError,
    WouldBlockLoopError,
)
from .journal import EntryKind, Journal, JournalEntry, LeaseHolder, RunStatus, RunSummary
from .limits import Limits
from .references import result_of
from .registry import TaskRegistry
from .scope import RunScope
from .streaming import RunEvent, RunEventKind, RunStream, StepInfo, TaskEventInfo
from .tasks import (
    ReturnWhen,
    TaskEvent,
    TaskEventKind,
    TaskFailure,
    TaskInfo,
    TaskStatus,
    TaskType,
    WaitOutcome,
)

if TYPE_CHECKING:
    from ._durable import RunResult
    from .agent import AsyncAgent, create_async_agent
    from .postgres_journal import PostgresJournal
    from .session import AgentSession
    from .sqlite_journal import SQLiteJournal
    from .tools import ToolSettings

from ._version import __version__

# The agent layer imports smolagents (about half a second); the core does not. These names
# load on first use, so `import agentloop` and `agentloop --help` stay fast.
_LAZY = {
    "AgentSession": "session",
    "AsyncAgent": "agent",
    "PostgresJournal": "postgres_journal",
    "RunResult": "_durable",
    "SQLiteJournal": "sqlite_journal",
    "ToolSettings": "tools",
    "create_async_agent": "agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentloop' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentSession",
    "AgentloopError",
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
    "NestingTooDeepError",
    "PostgresJournal",
    "QuotaExceededError",
    "RegistryClosedError",
    "ReturnWhen",
    "RunDivergedError",
    "RunEvent",
    "RunEventKind",
    "RunLeasedError",
    "RunResult",
    "RunScope",
    "RunStatus",
    "RunStream",
    "RunSummary",
    "SQLiteJournal",
    "StepInfo",
    "TaskEvent",
    "TaskEventInfo",
    "TaskEventKind",
    "TaskFailedError",
    "TaskFailure",
    "TaskInfo",
    "TaskRegistry",
    "TaskStatus",
    "TaskType",
    "ToolSettings",
    "UnknownTargetError",
    "UnknownTaskError",
    "WaitOutcome",
    "WouldBlockLoopError",
    "__version__",
    "create_async_agent",
    "result_of",
]
