"""The load of `test_many_runs.py`, in a process of its own: N concurrent runs of one agent.

Each run waits for its model twice and, in between, submits an async tool that naps, waits for
it and reads its result; its final answer is built from its own `additional_args` and its own
tool's result (`expected_answer`), so a run that got another's answer shows.

Why a process of its own: while every run holds a thread, a few thousand runs starve every
Python thread of the GIL. Measured at 10,000 runs on 2 cores: 2,300 threads after 30 s, 90 %
of the CPU in the kernel, and for 400 s neither the event loop, nor a watchdog thread, nor
pytest-timeout's signal handler ran again. No deadline inside the process can end that; the
test runs this module as `python -m tests.reliability.many_runs_load`, reads its reports and
kills it when it stops answering.

It reports on stdout, one JSON object per line, each with an `event`: `ready` (before the
load), `beat` (every `BEAT_EVERY` s: the figures so far), `finished` (the load's outcome and
figures) and `closed` (threads left once the agent is closed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from agentloop import AsyncAgent, create_async_agent
from agentloop.testing import ScriptedModel, assert_no_leaks, settled_threads

from .helpers import LoopLagProbe, rss_bytes

TOOL_NAP = 0.1
"""Seconds the tool naps, awaited on the loop (no thread)."""
TICK = 0.01
"""Seconds between the monitor's ticks (each measures the loop's lag, threads and RSS)."""
ARRIVAL_SECONDS = 1.0
"""The runs arrive over this many seconds (each lasts at least 2 model delays + the nap)."""
ARRIVAL_SLICES = 100
LONG_PAUSE = 0.05
"""A collection at least this long counts as a pause; shorter ones (young generations, a
millisecond) are not what stalls the loop."""
BEAT_EVERY = 0.25
"""Seconds between two `beat` reports: a silence much longer than this is a stalled loop."""

STEPS = [
    # step 1: `tag` is this run's `additional_args`; the tool echoes it back
    'job = submit_task("tool", "nap", {"tag": tag})\n'
    "wait_for_tasks([job], max_wait_time=60)\n"
    "napped = get_task_results([job])[job]",
    # step 2: an answer only this run can give
    'final_answer(f"{tag}:{napped}")',
]


async def nap(tag: str) -> str:
    """Naps on the loop and returns something only this call can return."""
    await asyncio.sleep(TOOL_NAP)
    return tag.upper()


def expected_answer(tag: str) -> str:
    return f"{tag}:{tag.upper()}"


def report(event: str, **values: Any) -> None:
    """Write one report line for the test (it reads this process's stdout), stamped with the
    monotonic clock (the machine's, so the test reads the same clock)."""
    sys.stdout.write(json.dumps({"event": event, "at": time.monotonic(), **values}) + "\n")
    sys.stdout.flush()


class GcPauses:
    """CPython's cyclic collections while the load runs: when each ran and for how long.

    A full collection holds the GIL while it walks every tracked object; with 10,000 runs in
    one process that is two million objects and most of a second, during which no thread and
    not the loop runs (and after which the loop catches up on what came due meanwhile). The
    monitor tells the stalls that saw a collection apart from the loop's own."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.longest = 0.0
        self.count = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._started = now
        elif now - self._started >= LONG_PAUSE:  # the many short young collections stall nothing
            self.spans.append((self._started, now))
            self.longest = max(self.longest, now - self._started)
            self.count += 1

    def overlap(self, start: float, end: float) -> bool:
        """Whether a collection ran between `start` and `end` (older spans are dropped)."""
        self.spans = [span for span in self.spans if span[1] > start]
        return any(a < end for a, _ in self.spans)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


class LoadMonitor(LoopLagProbe):
    """The loop's worst lag (and the worst beyond CPython's collections), plus the process's
    threads and RSS, sampled at each tick; reported as a `beat` every `BEAT_EVERY` s."""

    def __init__(self, done: Callable[[], int], pauses: GcPauses) -> None:
        super().__init__(interval=TICK)
        self.peak_threads = threading.active_count()
        self.peak_rss = rss_bytes()
        self.worst_beyond_gc = 0.0
        self._pauses = pauses
        self._done = done
        self._next_beat = 0.0

    def lagged(self, lag: float) -> None:
        """A late tick whose wait saw a collection is the collection's: the pause itself, and
        the backlog of timers and thread hand-offs the loop then catches up on."""
        now = time.monotonic()
        if not self._pauses.overlap(now - lag - TICK, now):
            self.worst_beyond_gc = max(self.worst_beyond_gc, lag)

    def sample(self) -> None:
        self.peak_threads = max(self.peak_threads, threading.active_count())
        self.peak_rss = max(self.peak_rss, rss_bytes())
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + BEAT_EVERY
            report("beat", **self.figures(), done=self._done())

    def figures(self) -> dict[str, Any]:
        return {
            "max_lag": self.worst,
            "max_lag_beyond_gc": self.worst_beyond_gc,
            "longest_gc_pause": self._pauses.longest,
            "gc_pauses": self._pauses.count,
            "peak_threads": self.peak_threads,
            "peak_rss": self.peak_rss,
        }


async def arrive(
    agent: AsyncAgent, tags: list[str], done: Callable[[object], None]
) -> dict[asyncio.Task[Any], str]:
    """Start one run per tag, arriving over `ARRIVAL_SECONDS` as a server's requests do (in
    `ARRIVAL_SLICES` slices). All of them in one loop iteration would hold the loop for
    N x the loop's share of a run's start (~0.1 ms: a second at 10,000), in any framework."""
    runs: dict[asyncio.Task[Any], str] = {}
    per_slice = -(-len(tags) // ARRIVAL_SLICES)
    for first in range(0, len(tags), per_slice):
        for tag in tags[first : first + per_slice]:
            run = asyncio.create_task(
                agent.arun(f"Answer for {tag}.", additional_args={"tag": tag})
            )
            run.add_done_callback(done)
            runs[run] = tag
        await asyncio.sleep(ARRIVAL_SECONDS / ARRIVAL_SLICES)
    return runs


async def run_all(
    agent: AsyncAgent, tags: list[str], deadline: float, cancel_grace: float
) -> dict[str, Any]:
    """Start one run per tag at once and wait for all of them, at most `deadline` seconds;
    then cancel the runs still going and give them `cancel_grace` seconds to end."""
    done = 0

    def count(_: object) -> None:
        nonlocal done
        done += 1

    with GcPauses() as pauses:
        monitor = LoadMonitor(lambda: done, pauses)
        async with monitor:
            started = time.perf_counter()
            runs = await arrive(agent, tags, count)
            _, pending = await asyncio.wait(runs, timeout=deadline)
            seconds = time.perf_counter() - started
            for run in pending:
                run.cancel()
            if pending:
                await asyncio.wait(pending, timeout=cancel_grace)
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for run, tag in runs.items():
        if run in pending or run.cancelled():
            continue
        if (error := run.exception()) is not None:
            errors[tag] = f"{type(error).__name__}: {str(error)[:300]}"
        else:
            answers[tag] = run.result()
    return {
        "seconds": seconds,
        "answers": answers,
        "errors": errors,
        "unfinished": len(pending),
        **monitor.figures(),
    }


async def load(runs: int, model_delay: float, deadline: float, grace: float) -> None:
    """The whole load, reported as it goes; `grace` bounds the cancelling and the threads."""
    tags = [f"run{i:05d}" for i in range(runs)]
    before = set(threading.enumerate())
    model = ScriptedModel(STEPS, delay=model_delay)
    agent = create_async_agent(
        tools=[nap], model=model, max_concurrent_runs=runs, max_steps=len(STEPS)
    )
    report("ready", threads=threading.active_count(), rss=rss_bytes())
    async with agent:
        outcome = await run_all(agent, tags, deadline, grace)
        try:
            assert_no_leaks(agent)
            left_tasks = None
        except AssertionError as leak:
            left_tasks = str(leak)
        stats = agent.task_manager.get_statistics()
        report(
            "finished",
            **outcome,
            left_tasks=left_tasks,
            model_calls=model.calls,
            stats={k: v for k, v in stats.items() if isinstance(v, int)},
        )
    leaked = settled_threads(before, timeout=grace)
    report("closed", leaked_threads=sorted(t.name for t in leaked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int)
    parser.add_argument("--model-delay", type=float, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--grace", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(load(args.runs, args.model_delay, args.deadline, args.grace))


if __name__ == "__main__":
    main()
