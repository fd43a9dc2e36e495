"""An outcome the model's code saw is durable before the run moves on: killed with SIGKILL
as its second model call starts (right after step 1 waited for three tasks and read their
results), a run resumes in another process without running any of the three again.

Before the guarantee, outcomes were committed whenever the journal's writer got to them, and
a kill at that point could lose them: the resumed run treated the finished tasks as in flight
and ran them again. It is a race, so the test runs many trials (`TRIALS`;
`AGENTLOOP_STRESS=1` runs more), a few processes at a time, forked from a fork server that has
imported agentloop already (a trial costs no interpreter start). The worker's journal is slow
(see `model_crash_worker`), which widens the race's window.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from . import model_crash_worker

STRESS = bool(os.environ.get("AGENTLOOP_STRESS"))
TRIALS = 100 if STRESS else 8
"""With the guarantee removed (`shown()` a no-op), 15-17 of 20 trials ran finished tools
again (three runs, a loaded machine): 8 trials all pass by chance with odds ~0.25**8 < 1e-4."""
AT_ONCE = 4
DELAY = 0.02
"""Seconds each journal write of the worker takes on top of SQLite's."""
TIMEOUT = 60.0


def process(trial: Path, mode: str) -> multiprocessing.process.BaseProcess:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([model_crash_worker.__name__])
    child = context.Process(target=model_crash_worker.trial, args=(str(trial), mode, DELAY))
    child.start()
    return child


def kill_at_model_call_2(trial: Path, child: multiprocessing.process.BaseProcess) -> None:
    """Wait until the second model call starts (the worker's file says so), then SIGKILL."""
    deadline = time.monotonic() + TIMEOUT
    while not (trial / "at_model_2").exists():
        if not child.is_alive() or time.monotonic() > deadline:
            child.kill()
            child.join(TIMEOUT)
            pytest.fail(f"{trial.name}: the worker did not reach model call 2")
        time.sleep(0.002)  # a file between processes: no event to wait on
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(TIMEOUT)
    assert child.exitcode == -signal.SIGKILL


def lines_by_process(log: Path) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        pid, what = line.split(" ", 1)
        groups.setdefault(pid, []).append(what)
    return list(groups.values())


@pytest.mark.timeout(TIMEOUT * (TRIALS // AT_ONCE + 2))
def test_outcomes_the_model_saw_survive_a_kill_at_the_next_model_call(tmp_path: Path) -> None:
    trials = [tmp_path / f"trial-{i}" for i in range(TRIALS)]
    reran: list[str] = []
    for start in range(0, TRIALS, AT_ONCE):
        batch = trials[start : start + AT_ONCE]
        for trial in batch:
            trial.mkdir()
        crashing = [process(trial, "crash") for trial in batch]
        for trial, child in zip(batch, crashing, strict=True):
            kill_at_model_call_2(trial, child)
        resuming = [process(trial, "finish") for trial in batch]
        for trial, child in zip(batch, resuming, strict=True):
            child.join(TIMEOUT)
            assert child.exitcode == 0, f"{trial.name}: the resumed run failed"
            result = json.loads((trial / "result.json").read_text())
            assert result["answer"] == 60
            first, *rest = lines_by_process(trial / "log")
            assert first == ["model step 1", "fetch 1", "fetch 2", "fetch 3", "model step 2"]
            again = [line for line in (rest[0] if rest else []) if line.startswith("fetch")]
            if again or result["rerun_tasks"]:
                reran.append(f"{trial.name}: {again}")
    assert not reran, f"{len(reran)} of {TRIALS} trials ran finished tools again: {reran}"
