"""Deciding on a task a crash left in flight: its reconcile hook, asked before it runs again.

After a resume, a task whose submission was recorded but whose outcome was not may or may not
have had its effect. Without a hook the rule is blunt (rerun it if its target is idempotent,
else fail it as "outcome unknown"). A target's reconcile hook (`create_async_agent(...,
reconcile={"charge": check_charge})`) asks the outside world instead, given the task's
`TaskContext` (the attempt that was in flight, and its idempotency key) and its arguments:

- done: the task completes with the hook's result (journaled like any result);
- not done: the task runs again, with the same key, as the next attempt;
- unknown: the task fails as "outcome unknown", with the hook's reason.

The hook is application code talking to another service, so it is bounded: it runs within the
task's timeout (`DEFAULT_TIMEOUT` when the task has none), a sync hook in a worker thread
(anyio's, abandoned at the deadline: the hook is called once per interrupted task, never on a
hot path), an async one on the loop. A hook that raises, times out or answers something other
than a `Reconciliation` counts as unknown, and the reason says which (and is logged): a bug in
the hook must never be read as "not done", which would repeat the effect.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from .._text import describe, shown
from .._util import reset_context_var
from ..core._effects import (
    CURRENT_TASK,
    ReconcileHook,
    ReconcileState,
    Reconciliation,
    task_context,
)
from ..tasks import TaskStatus
from ._record import TaskRecord

__all__ = ["DEFAULT_TIMEOUT", "outcome_unknown", "reconciled"]

logger = logging.getLogger("agentloop")

DEFAULT_TIMEOUT = 30.0
"""Seconds a reconcile hook may take when its task has no timeout of its own."""

Finish = Callable[..., None]
Abandon = Callable[[TaskRecord, "asyncio.Future[Any]"], None]
"""The runner's `abandon`: it keeps a cancelled piece of work until the work ends."""


def outcome_unknown(target: str, why: str) -> str:
    """The error of a task left in flight whose effect may have happened."""
    return (
        f"outcome unknown: the process running this run stopped while `{target}` was in "
        f"flight, and {why}. Check whether its effect happened before doing it again."
    )


async def reconciled(
    record: TaskRecord, arguments: dict[str, Any], finish: Finish, abandon: Abandon
) -> bool:
    """Ask the task's reconcile hook; `True`: run the task again. Otherwise the record is
    final (completed with the hook's result, or failed as unknown)."""
    hook, record.reconcile = record.reconcile, None
    journal = record.journal
    assert hook is not None  # set with `journal` by the scope's journal
    assert journal is not None
    answer = await _ask(hook, record, arguments, abandon)
    journal.reconciled(record, answer.state)
    if answer.state is ReconcileState.NOT_DONE:
        logger.info(
            "task %s (`%s`): its reconcile hook found the interrupted attempt had no effect; "
            "running it again",
            record.task_id,
            record.target.name,
        )
        return True
    if answer.state is ReconcileState.DONE:
        record.encoded = await journal.encode_result(record, answer.result)
        finish(record, TaskStatus.COMPLETED, result=answer.result)
        return False
    why = f"its reconcile hook could not tell whether it took effect: {answer.reason}"
    finish(record, TaskStatus.FAILED, error=outcome_unknown(record.target.name, why))
    return False


async def _ask(
    hook: ReconcileHook, record: TaskRecord, arguments: dict[str, Any], abandon: Abandon
) -> Any:
    """The hook's answer for the attempt that was in flight; any failure is `unknown`."""
    attempt = record.attempt_base
    context = task_context(record, attempt)
    timeout = record.timeout if record.timeout is not None else DEFAULT_TIMEOUT
    name = f"the reconcile hook of `{record.target.name}`"
    token = CURRENT_TASK.set((record, attempt))  # `current_task()` works in the hook too
    try:
        if _is_async(hook):
            call = hook(context, dict(arguments))
            if inspect.isawaitable(call):  # an `async def` hook's coroutine (see `_is_async`)
                answer = await _before_deadline(call, timeout, record, abandon)
            else:
                answer = call
        else:
            with anyio.fail_after(timeout):
                answer = await anyio.to_thread.run_sync(
                    hook, context, dict(arguments), abandon_on_cancel=True
                )
    except TimeoutError:
        logger.warning("task %s: %s did not answer within %gs", record.task_id, name, timeout)
        return Reconciliation.unknown(f"{name} did not answer within {timeout:g}s")
    except Exception as exc:
        logger.warning("task %s: %s raised", record.task_id, name, exc_info=exc)
        return Reconciliation.unknown(f"{name} raised {describe(exc)}")
    finally:
        reset_context_var(CURRENT_TASK, token)
    if isinstance(answer, Reconciliation):
        return answer
    if inspect.iscoroutine(answer):
        answer.close()
        problem = "returned a coroutine from a sync call; declare it `async def`"
    else:
        problem = (
            f"returned {shown(answer, 80)}, not a `Reconciliation`; answer "
            "`Reconciliation.done(result)`, `.not_done()` or `.unknown(reason)`"
        )
    logger.error("task %s: %s %s", record.task_id, name, problem)
    return Reconciliation.unknown(f"{name} {problem}")


async def _before_deadline(
    call: Awaitable[Any], timeout: float, record: TaskRecord, abandon: Abandon
) -> Any:
    """`await call` until `timeout`, as a child task: at the deadline the hook is cancelled
    and handed to the runner (`abandon`), which keeps it until it ends and warns if it ignores
    its cancellation, so a hook that swallows `CancelledError` cannot hold the run."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        abandon(record, task)
        raise
    if done:
        return task.result()
    abandon(record, task)
    raise TimeoutError


def _is_async(hook: Any) -> bool:
    """An `async def` function, or an object whose `__call__` is one."""
    call = vars(type(hook)).get("__call__")
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call)
