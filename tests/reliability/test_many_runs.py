"""Issue 26: the cost of a run must not grow with the number of concurrent runs.

N runs of one agent run at once (`max_concurrent_runs=N` admits them all), in a process of
their own (`many_runs_load`, which says why). Each waits for its model twice and naps in an
async tool in between; a waiting run should hold no thread (docs/architecture.md, "Waiting
costs no thread"), so N runs need far fewer than N threads.

Checked: every run answered with its own answer; the agent left no task running and, once
closed, no thread; nothing that runs on the event loop stalled it more than `MAX_LAG`; the
load never added more than `MAX_EXTRA_THREADS` threads. Measured, into the suite's figures:
makespan, worst loop lag, CPython's longest cyclic collection (a full one walks every object
of the 10,000 runs while holding the GIL: it pauses the loop and every thread alike, and is
reported apart from the loop's own stalls), peak threads, RSS growth. The runs arrive over a
second, as a server's requests do.

N comes from `AGENTLOOP_MANY_RUNS` (`nox -s many_runs` sets 10,000, with 1 s per model call);
without it the default suite runs a smoke of the same load (100 runs, 0.2 s per model call,
~2 s with the process start). The load is cut at `AGENTLOOP_MANY_RUNS_DEADLINE` seconds (the
runs still going are cancelled); a load process that stops answering is killed. Either way the
test fails with the figures seen so far, instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import agentloop

from .figures import Figures
from .many_runs_load import BEAT_EVERY, expected_answer

MANY_RUNS = os.environ.get("AGENTLOOP_MANY_RUNS")
RUNS = int(MANY_RUNS) if MANY_RUNS else 100
"""How many runs at once: `AGENTLOOP_MANY_RUNS`, else a smoke of the load."""
MODEL_DELAY = 1.0 if MANY_RUNS else 0.2
"""Seconds each model call takes: a run spends most of its life waiting for its model (the
smoke waits less, to stay cheap)."""
DEADLINE = float(os.environ.get("AGENTLOOP_MANY_RUNS_DEADLINE", "120"))
"""Seconds the load may take before the runs still going are cancelled."""
MAX_LAG = 0.5
"""Seconds the event loop may be late to wake, at worst."""
MAX_EXTRA_THREADS = 200
"""Threads the load may add to its process at once, whatever N is."""

GRACE = 30.0
"""Seconds the cancelled runs get to end, and then the agent's threads."""
START_LIMIT = 60.0
"""Seconds the load process gets to import and build its agent."""
SLACK = 30.0
"""Seconds the load process gets, beyond its own bounds, before it is deemed hung."""
SAMPLE_EVERY = 0.25
"""Seconds between two looks at the load process from outside (/proc), while it is silent."""
ROOT = Path(__file__).resolve().parents[2]


def proc_status(pid: int) -> tuple[int, int] | None:
    """(threads, resident bytes) of process `pid`, read from /proc without its help."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


@dataclass
class LoadProcess:
    """The load's process, watched from outside: its reports, and its threads, RSS and
    silences (while the load runs, it reports every `BEAT_EVERY` s) as /proc and the clock see
    them: they hold even when it stalls."""

    process: asyncio.subprocess.Process
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak_threads: int = 0
    peak_rss: int = 0
    longest_silence: float = 0.0

    @classmethod
    async def start(cls, *args: str) -> LoadProcess:
        # the agentloop this test imported, whether installed or on PYTHONPATH
        path = [str(Path(agentloop.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.many_runs_load",
            *args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,  # `finished` carries every run's answer on one line
        )
        return cls(process)

    async def until(self, event: str, limit: float) -> dict[str, Any] | None:
        """Read reports until `event`'s (returned); `None` if it has not come within `limit`
        seconds or the process ended without it."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + limit
        while event not in self.reports:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = await asyncio.wait_for(stdout.readline(), min(left, SAMPLE_EVERY))
            except TimeoutError:  # silent so far: how long, by its clock's last stamp
                self._silent_until(time.monotonic())
            else:
                if not line:
                    return None
                data = json.loads(line)
                self._silent_until(data["at"])
                self.reports[data["event"]] = data
            self._look()
        return self.reports[event]

    def _silent_until(self, now: float) -> None:
        """Count the time since the last report as a silence, while the load runs."""
        last = self.reports.get("beat") or self.reports.get("ready")
        if last is not None and "finished" not in self.reports:
            self.longest_silence = max(self.longest_silence, now - last["at"])

    def _look(self) -> None:
        seen = proc_status(self.process.pid)
        if seen is not None:
            self.peak_threads = max(self.peak_threads, seen[0])
            self.peak_rss = max(self.peak_rss, seen[1])

    @property
    def _latest(self) -> dict[str, Any]:
        """The latest report carrying the monitor's figures (empty before the first)."""
        return self.reports.get("finished") or self.reports.get("beat") or {}

    @property
    def extra_threads(self) -> int:
        """The most threads the load added at once (its own count, or /proc's if higher)."""
        peak = max(self.peak_threads, self._latest.get("peak_threads", 0))
        return int(peak - self.reports["ready"]["threads"])

    @property
    def rss_growth(self) -> int:
        peak = max(self.peak_rss, self._latest.get("peak_rss", 0))
        return int(peak - self.reports["ready"]["rss"])

    @property
    def max_lag(self) -> float | None:
        """The loop's worst lag by its own monitor (`None` if it never reported one)."""
        return self._latest.get("max_lag")

    @property
    def longest_gc_pause(self) -> float:
        return float(self._latest.get("longest_gc_pause", 0.0))

    @property
    def stall(self) -> float:
        """The longest the loop stalled by what runs on it, stalls that saw one of CPython's
        cyclic collections apart (reported on their own): by its monitor once the load has
        finished, else also by a silence longer than the beats' period and the longest
        collection (all there is to see when the loop never runs again)."""
        beyond_gc = float(self._latest.get("max_lag_beyond_gc", self.max_lag or 0.0))
        if "finished" in self.reports:
            return beyond_gc
        return max(beyond_gc, self.longest_silence - BEAT_EVERY - self.longest_gc_pause)

    async def stop(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def figures_of(load: LoadProcess) -> dict[str, Any]:
    """What the load measured, for the suite's figures and the failure message."""
    finished = load.reports.get("finished")
    lag = load.max_lag
    measured: dict[str, Any] = {
        "runs": RUNS,
        "model_delay_s": MODEL_DELAY,
        "seconds": round(finished["seconds"], 2) if finished else None,
        "finished": len(finished["answers"]) + len(finished["errors"]) if finished else None,
        "max_lag_s": None if lag is None else round(lag, 3),
        "stall_beyond_gc_s": round(load.stall, 3),
        "longest_gc_pause_s": round(load.longest_gc_pause, 3),
        "gc_pauses": load._latest.get("gc_pauses"),
        "longest_silence_s": round(load.longest_silence, 2),
        "peak_extra_threads": load.extra_threads,
        "thread_bound": MAX_EXTRA_THREADS,
        "rss_growth_mb": round(load.rss_growth / 2**20, 1),
        "rss_kb_per_run": round(load.rss_growth / 1024 / RUNS, 1),
    }
    if finished:
        measured["runs_per_s"] = round(measured["finished"] / finished["seconds"], 1)
        measured["model_calls"] = finished["model_calls"]
    return measured


def problems_with(load: LoadProcess, tags: list[str]) -> list[str]:
    """Each check the load failed, in words; none if it passed."""
    problems = []
    finished, closed = load.reports.get("finished"), load.reports.get("closed")
    if finished is None:
        beat = load.reports.get("beat")
        said = (
            f"{beat['done']} of {RUNS} runs done at its last report"
            if beat
            else "it never reported once the runs started"
        )
        problems.append(
            f"the load process gave no outcome within {DEADLINE + GRACE + SLACK:.0f} s "
            f"({said}), so it was killed"
        )
    else:
        problems += answer_problems(finished, tags)
    if load.stall > MAX_LAG:
        problems.append(f"the event loop stalled {load.stall:.2f} s (> {MAX_LAG} s)")
    if load.extra_threads > MAX_EXTRA_THREADS:
        problems.append(
            f"{load.extra_threads} threads ran at once beyond the "
            f"{load.reports['ready']['threads']} there before (> {MAX_EXTRA_THREADS})"
        )
    if finished and closed is None:
        problems.append(f"closing the agent took more than {GRACE + SLACK:.0f} s")
    if closed and closed["leaked_threads"]:
        names = closed["leaked_threads"]
        problems.append(f"{len(names)} threads outlived the agent, e.g. {names[:5]}")
    return problems


def answer_problems(finished: dict[str, Any], tags: list[str]) -> list[str]:
    """What the load's outcome got wrong: runs that failed, answered wrongly or did not
    finish, and tasks left behind."""
    problems = []
    if finished["unfinished"]:
        problems.append(
            f"{finished['unfinished']} of {len(tags)} runs had not finished after "
            f"{DEADLINE:g} s (AGENTLOOP_MANY_RUNS_DEADLINE) and were cancelled"
        )
    errors: dict[str, str] = finished["errors"]
    if errors:
        tag, error = next(iter(errors.items()))
        problems.append(f"{len(errors)} runs raised, e.g. run {tag}: {error}")
    answers: dict[str, Any] = finished["answers"]
    wrong = [tag for tag, answer in answers.items() if answer != expected_answer(tag)]
    if wrong:
        tag = wrong[0]
        problems.append(
            f"{len(wrong)} runs answered wrongly, e.g. run {tag}: {answers[tag]!r} "
            f"instead of {expected_answer(tag)!r}"
        )
    missing = len(tags) - len(answers) - len(errors) - finished["unfinished"]
    if missing:
        problems.append(f"{missing} runs ended without an answer or an error (cancelled)")
    if finished["left_tasks"]:
        problems.append(finished["left_tasks"])
    return problems


@pytest.mark.timeout(START_LIMIT + DEADLINE + 3 * GRACE + 2 * SLACK + 60)
async def test_many_concurrent_runs_cost_no_thread_while_they_wait(figures: Figures) -> None:
    tags = [f"run{i:05d}" for i in range(RUNS)]
    load = await LoadProcess.start(
        str(RUNS), f"--model-delay={MODEL_DELAY}", f"--deadline={DEADLINE}", f"--grace={GRACE}"
    )
    try:
        ready = await load.until("ready", START_LIMIT)
        finished = ready and await load.until("finished", DEADLINE + GRACE + SLACK)
        closed = finished and await load.until("closed", GRACE + SLACK)
    finally:
        await load.stop()
    if ready is None:
        pytest.fail(
            f"the load process did not start within {START_LIMIT:.0f} s (exit code "
            f"{load.process.returncode}; its stderr is captured above)",
            pytrace=False,
        )

    if finished:
        figures.tasks(finished["stats"])
    measured = figures_of(load)
    figures.measured("many runs", **measured)
    problems = problems_with(load, tags)
    if problems:
        shown = ", ".join(f"{k}={v}" for k, v in measured.items())
        pytest.fail(
            f"{RUNS:,} concurrent runs: " + "; ".join(problems) + f"\nfigures: {shown}",
            pytrace=False,
        )
    assert finished is not None and closed is not None
    assert finished["stats"]["total_completed"] == RUNS
    assert finished["model_calls"] == 2 * RUNS
