"""Every bound agentloop enforces, in one typed place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Limits"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds for one registry. Each has a sane default and says so clearly when hit.

    Attributes:
        max_workers: sync tools and smolagents managed agents running at once (one worker
            thread each). Asyncio's default executor is never used.
        max_async_tasks: async targets running at once on the loop (they need no thread).
        target_limits: optional per-target bound, e.g. `{"query_db": 2}`.
        max_tasks_per_scope: tasks one run scope may submit in total (runaway model loops end
            here). `None` for no bound.
        max_history: finished tasks a scope keeps for inspection; the oldest are evicted.
        default_timeout: per-attempt timeout for tasks submitted without one (`None`: none).
        retry_backoff: first pause between attempts, doubled each retry up to `retry_backoff_max`.
        thread_grace: how long `aclose()` waits for abandoned worker threads before returning.
    """

    max_workers: int = 3
    max_async_tasks: int = 256
    target_limits: Mapping[str, int] = field(default_factory=dict)
    max_tasks_per_scope: int | None = 1000
    max_history: int = 10_000
    default_timeout: float | None = None
    retry_backoff: float = 0.1
    retry_backoff_max: float = 5.0
    thread_grace: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_async_tasks", "max_history"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, received {value!r}.")
        for target, bound in self.target_limits.items():
            if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
                raise ValueError(
                    f"target limit for `{target}` must be a positive integer, received {bound!r}."
                )
        if self.max_tasks_per_scope is not None and self.max_tasks_per_scope < 1:
            raise ValueError(
                "`max_tasks_per_scope` must be positive or None, "
                f"received {self.max_tasks_per_scope!r}."
            )
        for name in ("retry_backoff", "retry_backoff_max", "thread_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, received {getattr(self, name)!r}.")
