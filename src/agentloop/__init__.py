"""agentloop: asyncio-native orchestration for smolagents.

A smolagents `CodeAgent` becomes the controller of its own parallel work: the model's code calls
`submit_task(...)`, keeps going, then `wait_for_tasks(...)` and `get_task_results(...)`, while an
asyncio event loop runs the tool calls and managed agents concurrently.
"""

from .errors import (
    AgentloopError,
    DependencyFailedError,
    DuplicateTaskIdError,
    InvalidArgumentsError,
    QuotaExceededError,
    RegistryClosedError,
    TaskFailedError,
    UnknownTargetError,
    UnknownTaskError,
    WouldBlockLoopError,
)
from .limits import Limits
from .references import result_of
from .registry import TaskRegistry
from .scope import RunScope
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

__version__ = "0.1.0"

__all__ = [
    "AgentloopError",
    "DependencyFailedError",
    "DuplicateTaskIdError",
    "InvalidArgumentsError",
    "Limits",
    "QuotaExceededError",
    "RegistryClosedError",
    "ReturnWhen",
    "RunScope",
    "TaskEvent",
    "TaskEventKind",
    "TaskFailedError",
    "TaskFailure",
    "TaskInfo",
    "TaskRegistry",
    "TaskStatus",
    "TaskType",
    "UnknownTargetError",
    "UnknownTaskError",
    "WaitOutcome",
    "WouldBlockLoopError",
    "__version__",
    "result_of",
]
