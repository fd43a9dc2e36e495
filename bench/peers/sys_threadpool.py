"""The classic thread-pool task manager, re-created from its description, and its runs.

`async_task_system`'s task manager (the thread-pool predecessor, docs/migrating.md), as its
guide describes it: `submit_task` puts the task on a
queue; a scheduler thread hands queued tasks to a `ThreadPoolExecutor` (`max_workers=3` by
default); `wait_for_tasks` checks the tasks' statuses and sleeps 0.5 s between checks. A
coroutine function is run to completion in its worker thread with `asyncio.run`. Written here
from that description (its code is not published), giving it the benefit of the doubt
where the description is silent: the scheduler blocks on the queue instead of polling it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from ._common import WAKE_SLEEP, WAKE_TASKS, Probe, System

__all__ = ["THREADPOOL", "ThreadPoolTaskManager"]

POLL_INTERVAL = 0.5
_FINAL = ("completed", "failed")


@dataclass(slots=True)
class _Task:
    task_id: str
    target: Callable[..., Any]
    arguments: dict[str, Any]
    status: str = "pending"
    result: Any = None
    error: str | None = None


class ThreadPoolTaskManager:
    """Queue + scheduler thread + `ThreadPoolExecutor`, and a wait that polls."""

    def __init__(self, tools: Iterable[Callable[..., Any]], max_workers: int = 3) -> None:
        self._tools = {tool.__name__: tool for tool in tools}
        self._tasks: dict[str, _Task] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._executor = ThreadPoolExecutor(max_workers=max_workers)
        self._scheduler = threading.Thread(target=self._schedule, name="scheduler", daemon=True)
        self._scheduler.start()

    def submit_task(self, target_name: str, arguments: dict[str, Any] | None = None) -> str:
        with self._lock:
            task = _Task(f"task_{next(self._ids)}", self._tools[target_name], arguments or {})
            self._tasks[task.task_id] = task
        self._queue.put(task)
        return task.task_id

    def wait_for_tasks(self, task_ids: list[str], max_wait_time: float = 30.0) -> bool:
        deadline = time.monotonic() + max_wait_time
        while True:
            if all(self._tasks[task_id].status in _FINAL for task_id in task_ids):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def get_task_results(self, task_ids: list[str]) -> dict[str, Any]:
        return {task_id: self._tasks[task_id].result for task_id in task_ids}

    def shutdown(self) -> None:
        self._queue.put(None)
        self._scheduler.join()
        self._executor.shutdown(wait=True)

    def _schedule(self) -> None:
        while (task := self._queue.get()) is not None:
            self._executor.submit(self._execute, task)

    def _execute(self, task: _Task) -> None:
        task.status = "running"
        try:
            result = task.target(**task.arguments)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            task.result, task.status = result, "completed"
        except Exception as exc:
            task.error, task.status = repr(exc), "failed"


def nap_sync(seconds: float) -> None:
    time.sleep(seconds)


async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)


def noop_sync() -> None:
    pass


def _fanout(target: str, tools: int, arguments: dict[str, Any], workers: int | None) -> float:
    manager = ThreadPoolTaskManager([nap_sync, nap], **_workers(workers))
    try:
        start = perf_counter()
        ids = [manager.submit_task(target, arguments) for _ in range(tools)]
        manager.wait_for_tasks(ids, max_wait_time=600)
        manager.get_task_results(ids)
        return perf_counter() - start
    finally:
        manager.shutdown()


def _workers(workers: int | None) -> dict[str, int]:
    return {} if workers is None else {"max_workers": workers}


def _sync(tools: int, seconds: float, workers: int | None) -> float:
    return _fanout("nap_sync", tools, {"seconds": seconds}, workers)


def _async(tools: int, seconds: float) -> float:
    return _fanout("nap", tools, {"seconds": seconds}, None)


def _noops(tools: int, probe: Probe) -> None:
    manager = ThreadPoolTaskManager([noop_sync])
    try:
        with probe:
            ids = [manager.submit_task("noop_sync") for _ in range(tools)]
            manager.wait_for_tasks(ids, max_wait_time=600)
            manager.get_task_results(ids)
    finally:
        manager.shutdown()


def wake_durations(trials: int) -> list[float]:
    """How long the last task of each trial runs: spread evenly over one poll interval, so the
    trials sample every phase of the poll (the latency depends on nothing else)."""
    return [WAKE_SLEEP + POLL_INTERVAL * (i + 0.5) / trials for i in range(trials)]


def _wakeups(trials: int) -> list[float]:
    stamps: list[float] = []

    def stamped_nap(seconds: float) -> None:
        time.sleep(seconds)
        stamps.append(perf_counter())

    manager = ThreadPoolTaskManager([stamped_nap], max_workers=WAKE_TASKS)
    latencies = []
    try:
        for last in wake_durations(trials):
            stamps.clear()
            durations = [WAKE_SLEEP] * (WAKE_TASKS - 1) + [last]
            ids = [manager.submit_task("stamped_nap", {"seconds": d}) for d in durations]
            manager.wait_for_tasks(ids)
            latencies.append(perf_counter() - max(stamps))
    finally:
        manager.shutdown()
    return latencies


THREADPOOL = System(
    name="thread-pool manager (polling)",
    default_limit="3 workers",
    sync_fanout=_sync,
    async_fanout=_async,
    noops=_noops,
    wakeups=_wakeups,
    wake_trials=6,
    wake_point="`wait_for_tasks` returns (it polls every 0.5 s)",
    notes={"w2": "at its defaults: each coroutine takes a worker thread (asyncio.run)"},
)
