"""The A2A routes if `a2a-sdk` is installed (the `a2a` extra), else none: the run service
works without it, and says at debug level why it serves no A2A."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._guard import Guard, RunRate
    from .._runs import RunService, ServedAgent
    from .._sessions import SessionBook
    from ._routes import A2AService

__all__ = ["mount_a2a"]

logger = logging.getLogger("agentloop")


def mount_a2a(
    served: Mapping[str, ServedAgent],
    runs: RunService,
    sessions: SessionBook,
    guard: Guard,
    rate: RunRate,
    max_task_chars: int,
) -> A2AService | None:
    if importlib.util.find_spec("a2a") is None:
        logger.debug("no A2A routes: a2a-sdk is not installed (pip install 'agentloop-smol[a2a]')")
        return None
    from ._routes import a2a_service

    return a2a_service(served, runs, sessions, guard, rate, max_task_chars)
