"""A run scope: the tasks one run (or session) submitted, and nothing else.

Every task belongs to exactly one scope. A scope's methods see only its own tasks, so another
run's id is "unknown" here, never readable. Closing a scope cancels its unfinished tasks and
waits until each is in a final state: nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._record import TaskRecord
from .errors import (
    DuplicateTaskIdError,
    InvalidArgumentsError,
    QuotaExceededError,
    RegistryClosedError,
    TaskFailedError,
    UnknownTaskError,
    clipped,
    close_match_hint,
    shown,
)
from .events import Subscription
from .references import find_references
from .targets import validate_arguments
from .tasks import (
    FINAL_STATUSES,
    ReturnWhen,
    TaskEventKind,
    TaskInfo,
    TaskStatus,
    TaskType,
    WaitOutcome,
)

if TYPE_CHECKING:
    from .registry import TaskRegistry

__all__ = ["RunScope"]

logger = logging.getLogger("agentloop")

_COMPLETED = TaskStatus.COMPLETED  # hot path: cheaper than the enum attribute

MAX_TASK_ID_LENGTH = 128
MAX_RETRIES = 10


class RunScope:
    """The tasks of one run. Obtain one from `TaskRegistry.scope()`; do not construct it."""

    def __init__(
        self,
        registry: TaskRegistry,
        scope_id: str,
        *,
        max_tasks: int | None,
        max_history: int,
    ) -> None:
        self._registry = registry
        self.scope_id = scope_id
        self._max_tasks = max_tasks
        self._max_history = max_history
        self._records: dict[str, TaskRecord] = {}
        self._finished: deque[str] = deque()
        self._submitted = 0
        self._evicted = 0
        self._id_counter = itertools.count(1)
        self._closed = False
        self._reserved: dict[str, TaskRecord] = {}
        """Submitted from a thread, not yet started on the loop (see `submit_threadsafe`)."""
        self._launches: deque[tuple[TaskRecord, list[TaskRecord], contextvars.Context | None]] = (
            deque()
        )
        self._drain_scheduled = False
        self._lock = threading.RLock()
        """Guards id reservation and quota; the loop thread owns everything else."""

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> RunScope:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Refuse new tasks, cancel the unfinished ones and wait until all are final."""
        self._closed = True
        self._registry._forget_scope(self)
        await self.cancel_all()

    async def cancel_all(self) -> int:
        """Cancel every unfinished task of this scope; return how many were cancelled."""
        live = [r for r in self._records.values() if r.task is not None and not r.task.done()]
        await self._cancel_and_settle(live)
        return len(live)

    async def _cancel_and_settle(self, records: list[TaskRecord]) -> None:
        tasks = [r.task for r in records if r.task is not None]
        if tasks and tasks[0].get_loop().is_closed():
            # The owner was garbage-collected after its loop closed (nothing is running): no
            # task of ours can run again, so mark them without touching the loop.
            for record in records:
                self._registry._runner.finish(
                    record, TaskStatus.CANCELLED, error="its event loop closed"
                )
            return
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for record in records:
            if not record.status.is_final:  # cancelled before its first step
                self._registry._runner.finish(
                    record, TaskStatus.CANCELLED, error="cancelled before it started"
                )
                self._settled(record)

    # -- submitting ---------------------------------------------------------------------------

    async def submit(
        self,
        task_type: TaskType | str,
        target_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] | str = (),
        timeout: float | None = None,
        retries: int = 0,
    ) -> str:
        """Start a task in the background and return its id at once.

        Everything is checked before anything is created, so a refused submission leaves no
        half-made task behind.

        Args:
            task_type: `"tool"` or `"managed_agent"`.
            target_name: a registered tool or managed agent.
            arguments: the target's inputs; deep-copied, so later mutation changes nothing.
                A value `{"$result_of": "<task id>"}` stands for that task's result.
            task_id: your own id (unique in this scope); generated when omitted.
            depends_on: ids that must complete before this task starts. Tasks referenced in
                `arguments` are added automatically.
            timeout: seconds per attempt (default: the registry's `default_timeout`).
            retries: extra attempts after a failure or timeout, with exponential backoff.
        """
        registry = self._registry
        if asyncio.get_running_loop() is not registry._loop:
            registry._bind_loop()
        record, upstream = self._prepare(
            task_type, target_name, arguments, task_id, depends_on, timeout, retries
        )
        self._launch(record, upstream, None)
        return record.task_id

    def submit_threadsafe(
        self,
        task_type: TaskType | str,
        target_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] | str = (),
        timeout: float | None = None,
        retries: int = 0,
    ) -> str:
        """`submit` for plain threads (the controller's code): checks everything in the
        calling thread, hands the start of the task to the loop, and returns without waiting
        for the loop to answer.

        A bad submission still raises here, at once. The task starts in a copy of the calling
        thread's context. Calls a thread makes afterwards through the loop (wait, results)
        are queued behind the start, so they always find the task.
        """
        loop = self._registry._loop
        if loop is None or loop.is_closed():
            raise RegistryClosedError(
                f"scope `{self.scope_id}` has no running event loop; submit from async code "
                "first, or use `await scope.submit(...)`."
            )
        context = contextvars.copy_context()
        with self._lock:
            record, upstream = self._prepare(
                task_type, target_name, arguments, task_id, depends_on, timeout, retries
            )
            # Queued under the lock, so tasks start in the order they were reserved; the loop
            # is woken once per burst of submissions, not once per task.
            self._launches.append((record, upstream, context))
            if not self._drain_scheduled:
                try:
                    loop.call_soon_threadsafe(self._drain_launches)
                except RuntimeError:  # the loop closed meanwhile
                    self._launches.pop()
                    self._reserved.pop(record.task_id, None)
                    raise RegistryClosedError(
                        f"scope `{self.scope_id}`: the event loop is closed."
                    ) from None
                self._drain_scheduled = True
        return record.task_id

    def _drain_launches(self) -> None:
        """On the loop: start every task submitted from threads since the last drain."""
        with self._lock:
            batch = list(self._launches)
            self._launches.clear()
            self._drain_scheduled = False
        for record, upstream, context in batch:
            self._launch(record, upstream, context)

    def _prepare(
        self,
        task_type: TaskType | str,
        target_name: str,
        arguments: Mapping[str, Any] | None,
        task_id: str | None,
        depends_on: Iterable[str] | str,
        timeout: float | None,
        retries: int,
    ) -> tuple[TaskRecord, list[TaskRecord]]:
        """Check everything and reserve the id; nothing runs and nothing is visible yet.

        Thread-safe: the checks that read this scope's tasks run under `_lock`."""
        registry = self._registry
        if self._closed or registry.closed:
            raise RegistryClosedError(
                f"scope `{self.scope_id}` is closed; it accepts no new tasks."
            )
        target = registry._target(task_type, target_name)
        if arguments is None and not target.required:  # the no-input fast path
            args: dict[str, Any] = {}
        else:
            args = _copied_arguments(arguments, target.name)
            validate_arguments(target, args)
        registry.backend.check(target, args)
        timeout = registry.limits.default_timeout if timeout is None else _checked_timeout(timeout)
        if type(retries) is not int or retries != 0:
            retries = _checked_retries(retries)
        with self._lock:
            upstream = self._upstream(depends_on, args)
            new_id = self._new_task_id(task_id, target.name)
            if self._max_tasks is not None and self._submitted >= self._max_tasks:
                raise QuotaExceededError(
                    f"scope `{self.scope_id}` reached its limit of {self._max_tasks} tasks; "
                    "wait for and use the results you have (the limit is "
                    "`max_tasks_per_scope`)."
                )
            record = TaskRecord(
                task_id=new_id,
                scope_id=self.scope_id,
                target=target,
                arguments=args,
                depends_on=tuple([up.task_id for up in upstream]) if upstream else (),
                timeout=timeout,
                retries=retries,
                created_at=time.time(),
            )
            self._reserved[new_id] = record
            self._submitted += 1
        return record, upstream

    def _launch(
        self,
        record: TaskRecord,
        upstream: list[TaskRecord],
        context: contextvars.Context | None,
    ) -> None:
        """On the loop: make the reserved task visible and start it."""
        registry = self._registry
        self._records[record.task_id] = record
        self._reserved.pop(record.task_id, None)
        registry._notify(record, TaskEventKind.SUBMITTED, None)
        if self._closed:  # the scope closed between reservation and launch
            registry._runner.finish(record, TaskStatus.CANCELLED, error="run ended first")
            self._settled(record)
            return
        record.task = asyncio.get_running_loop().create_task(
            registry._runner.execute(record, upstream, self._settled),
            name=record.task_id,
            context=context,
        )

    def _settled(self, record: TaskRecord) -> None:
        record.task = None
        self._finished.append(record.task_id)
        while len(self._finished) > self._max_history:
            evicted = self._finished.popleft()
            self._records.pop(evicted, None)
            self._evicted += 1

    def _new_task_id(self, task_id: str | None, target_name: str) -> str:
        if task_id is None:
            while (
                candidate := f"{target_name}_{next(self._id_counter)}"
            ) in self._records or candidate in self._reserved:
                pass
            return candidate
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidArgumentsError(
                f"`task_id` must be a non-empty string, received {shown(task_id)}; "
                "or omit it to get a generated id."
            )
        if len(task_id) > MAX_TASK_ID_LENGTH:
            raise InvalidArgumentsError(
                f"`task_id` is {len(task_id)} characters; the limit is {MAX_TASK_ID_LENGTH}."
            )
        taken = self._records.get(task_id) or self._reserved.get(task_id)
        if taken is not None:
            raise DuplicateTaskIdError(
                f"task id `{task_id}` is already used in this run "
                f"(by a `{taken.target.name}` task); choose another or omit it."
            )
        return task_id

    def _upstream(
        self, depends_on: Iterable[str] | str, arguments: Mapping[str, Any]
    ) -> list[TaskRecord]:
        if type(depends_on) is tuple and not depends_on and not arguments:
            return []  # the common case, the default
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        try:  # any value may come from model code: iterate it once, then check each item
            listed = list(depends_on)
        except Exception as exc:
            raise InvalidArgumentsError(
                f"`depends_on` must be a list of task ids, received "
                f"{type(depends_on).__name__} {shown(depends_on)}."
            ) from exc
        if not listed and not arguments:
            return []
        for item in listed:
            if not isinstance(item, str):
                raise InvalidArgumentsError(
                    f"`depends_on` must be a list of task ids, received "
                    f"{type(item).__name__} {shown(item)} in it."
                )
        ids = list(dict.fromkeys([*listed, *find_references(arguments)]))
        return [
            (self._reserved.get(task_id) if isinstance(task_id, str) else None)
            or self._record(task_id)
            for task_id in ids
        ]

    # -- observing ----------------------------------------------------------------------------

    def _record(self, task_id: object) -> TaskRecord:
        if not isinstance(task_id, str):
            raise InvalidArgumentsError(
                f"a task id must be a string such as the one `submit` returned, "
                f"received {type(task_id).__name__} {shown(task_id)}."
            )
        record = self._records.get(task_id)
        if record is None:
            known = list(self._records)
            hint = close_match_hint(task_id, known)
            recent = ", ".join(f"`{k}`" for k in known[-5:]) or "none yet"
            evicted = (
                f" {self._evicted} older finished tasks were evicted from history."
                if self._evicted
                else ""
            )
            raise UnknownTaskError(
                f"no task `{clipped(task_id)}` in this run.{hint} "
                f"Recent task ids: {recent}.{evicted}"
            )
        return record

    def _records_for(self, task_ids: Iterable[str] | str) -> list[TaskRecord]:
        if isinstance(task_ids, str):
            task_ids = [task_ids]
        try:  # any value may come from model code: iterate it once, then check each item
            listed = list(task_ids)
        except Exception as exc:
            raise InvalidArgumentsError(
                "expected a list of task ids, received "
                f"{type(task_ids).__name__} {shown(task_ids)}."
            ) from exc
        records = [self._record(task_id) for task_id in listed]  # refuses non-strings first
        return list({record.task_id: record for record in records}.values())

    def get(self, task_id: str) -> TaskInfo:
        """A snapshot of one task."""
        return self._record(task_id).snapshot()

    def list(
        self, status: TaskStatus | str | None = None, limit: int | None = None
    ) -> list[TaskInfo]:
        """Snapshots of this scope's tasks in submission order, the last `limit` of them."""
        wanted = _checked_status(status)
        records = [r for r in self._records.values() if wanted is None or r.status is wanted]
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InvalidArgumentsError(
                    f"`limit` must be a non-negative integer or None, received {shown(limit)}."
                )
            records = records[-limit:] if limit else []
        return [r.snapshot() for r in records]

    async def wait(
        self,
        task_ids: Iterable[str] | str,
        timeout: float | None = None,
        return_when: ReturnWhen = "all",
    ) -> WaitOutcome:
        """Wait until the tasks finish (`"all"`) or one of them does (`"any"`), or `timeout`.

        Event-driven: the waiter wakes when a task settles, never by polling. Waiting from
        inside a running task lends that task's slots to the tasks it waits for.
        """
        records = self._records_for(task_ids)
        if not (isinstance(return_when, str) and return_when in ("all", "any")):
            raise InvalidArgumentsError(
                f"`return_when` must be 'all' or 'any', received {shown(return_when)}."
            )
        if timeout is not None:
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float))
                or not timeout >= 0
            ):
                raise InvalidArgumentsError(
                    "`timeout` must be a non-negative number of seconds or None, "
                    f"received {shown(timeout)}."
                )
            timeout = _seconds(timeout)
        started = time.monotonic()
        live = {r.task for r in records if r.status not in FINAL_STATUSES and r.task is not None}
        already_one = len(live) < len(records)
        if live and not (return_when == "any" and already_one):
            tracing = self._registry.tracing
            with tracing.wait_span(records, return_when):
                async with self._registry._runner.lend_slots():
                    await asyncio.wait(
                        live,
                        timeout=timeout,
                        return_when=(
                            asyncio.FIRST_COMPLETED
                            if return_when == "any"
                            else asyncio.ALL_COMPLETED
                        ),
                    )
        return _outcome(records, return_when, time.monotonic() - started)

    async def results(self, task_ids: Iterable[str] | str) -> dict[str, Any]:
        """`{task_id: result}`; a task without a result maps to a falsy `TaskFailure`."""
        return {
            r.task_id: (r.result if r.status is _COMPLETED else r.failure())
            for r in self._records_for(task_ids)
        }

    async def result(self, task_id: str) -> Any:
        """The result of a completed task; raises `TaskFailedError` for any other state."""
        record = self._record(task_id)
        if record.status is not TaskStatus.COMPLETED:
            raise TaskFailedError(str(record.failure()))
        return record.result

    async def cancel(self, task_id: str) -> TaskInfo:
        """Cancel a task and return its final snapshot (a no-op for a finished task).

        A sync task's thread cannot be killed: the task is final at once and its thread keeps
        its worker slot until it ends.
        """
        record = self._record(task_id)
        if record.task is not None and not record.task.done():
            await self._cancel_and_settle([record])
        return record.snapshot()

    def events(self) -> Subscription:
        """Task events of this scope, as an async iterator (ends when the registry closes).

        The subscription starts when this is called (not at the first `anext`)."""
        scope_id = self.scope_id
        return self._registry._bus.subscribe(lambda event: event.scope_id == scope_id)

    def counts(self) -> dict[TaskStatus, int]:
        """How many of this scope's retained tasks are in each status."""
        counts = dict.fromkeys(TaskStatus, 0)
        for record in self._records.values():
            counts[record.status] += 1
        return counts


def _outcome(records: list[TaskRecord], return_when: ReturnWhen, waited: float) -> WaitOutcome:
    completed: list[str] = []
    pending: list[str] = []
    errors: dict[str, str] = {}
    for r in records:
        if r.status is _COMPLETED:
            completed.append(r.task_id)
        elif r.status in FINAL_STATUSES:
            errors[r.task_id] = f"{r.status.value}: {r.error}"
        else:
            pending.append(r.task_id)
    enough = bool(completed or errors) if return_when == "any" else not pending
    return WaitOutcome(
        completed=tuple(completed),
        failed=tuple(errors),
        pending=tuple(pending),
        timed_out=not enough,
        waited_seconds=waited,
        errors=errors,
    )


def _copied_arguments(arguments: Mapping[str, Any] | None, target_name: str) -> dict[str, Any]:
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        raise InvalidArgumentsError(
            f"arguments for `{target_name}` must be a dict of input names to values, "
            f"received {type(arguments).__name__} {shown(arguments)}."
        )
    if not arguments:
        return {}
    bad_keys = [key for key in arguments if not isinstance(key, str)]
    if bad_keys:
        raise InvalidArgumentsError(
            f"argument names for `{target_name}` must be strings, received {shown(bad_keys)}."
        )
    try:
        return copy.deepcopy(dict(arguments))
    except Exception as exc:
        raise InvalidArgumentsError(
            f"arguments for `{target_name}` cannot be copied ({shown(exc, 200)}); "
            "pass plain data (str, numbers, lists, dicts) or objects that support deepcopy."
        ) from exc


def _checked_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgumentsError(
            f"`timeout` must be a positive number of seconds or None, received {shown(timeout)}."
        )
    return _seconds(timeout)


def _checked_retries(retries: int) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise InvalidArgumentsError(
            f"`retries` must be an integer from 0 to {MAX_RETRIES}, received {shown(retries)}."
        )
    return retries


def _checked_status(status: TaskStatus | str | None) -> TaskStatus | None:
    if status is None or isinstance(status, TaskStatus):
        return status
    valid = ", ".join(f"'{s.value}'" for s in TaskStatus)
    if not isinstance(status, str):  # checked first: the enum lookup would hash any value
        raise InvalidArgumentsError(
            f"a status must be a string, received {type(status).__name__} {shown(status)}."
            f" Valid: {valid}, or None for all."
        )
    try:
        return TaskStatus(status)
    except ValueError:
        raise InvalidArgumentsError(
            f"unknown status {shown(status)}.{close_match_hint(status, TaskStatus)}"
            f" Valid: {valid}, or None for all."
        ) from None


def _seconds(value: float) -> float:
    """A checked non-negative number as a float; an int beyond float's range is infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf
