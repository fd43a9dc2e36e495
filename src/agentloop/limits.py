"""Every bound agentloop enforces, in one typed place."""

from __future__ import annotations

import math
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
        retry_backoff: first pause between attempts, doubled each retry up to `retry_backoff_max`,
            each pause drawn at random from its upper half (jitter, so that retries of tasks that
            failed together do not hit a struggling service together again).
        thread_grace: how long `aclose()` waits for abandoned worker threads before returning.
        cancel_grace: how long cancelling a run (or a scope, or a task) waits for its tasks to
            end. Code that ignores cancellation is abandoned after it, and logged; its slots
            stay taken until it really ends. Timeouts are deadlines and do not wait at all.
        max_run_depth: how deeply runs may nest (an agent delegating to itself, or to agents
            that delegate back); deeper runs fail with `NestingTooDeepError`.
        max_model_calls: model calls one run (or session turn) may make, counting the
            controller's and those of every managed agent it runs (`None`: no bound); past it
            the run ends with `BudgetExceededError`.
        max_total_tokens: tokens (input + output, as the models report them) one run may use,
            sub-agents included (`None`: no bound).
        max_cost_usd: US dollars one run may spend on its models, sub-agents included, priced
            from LiteLLM's cost map (`None`: no bound). Every model of the agent must have a
            known price (docs/models.md, "Cost and metrics").
        loop_lag_warning: log a warning naming the async targets that were running when the
            event loop was blocked for longer than this many seconds (`None`: do not watch).
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
    cancel_grace: float = 2.0
    max_run_depth: int = 5
    loop_lag_warning: float | None = 0.25
    max_model_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_workers", "max_async_tasks", "max_history", "max_run_depth"):
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
        for name in ("retry_backoff", "retry_backoff_max", "thread_grace", "cancel_grace"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, received {getattr(self, name)!r}.")
        for name in ("max_model_calls", "max_total_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"`{name}` must be a positive integer or None, received {value!r}."
                )
        cost = self.max_cost_usd
        if cost is not None and (
            isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 < cost < math.inf
        ):
            raise ValueError(
                "`max_cost_usd` must be a positive number of US dollars or None, "
                f"received {cost!r}."
            )
        if self.loop_lag_warning is not None and not self.loop_lag_warning > 0:
            raise ValueError(
                f"`loop_lag_warning` must be positive or None, received {self.loop_lag_warning!r}."
            )
