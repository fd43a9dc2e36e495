"""A journaled run killed with a real SIGKILL resumes in a second process without redoing work.

The worker (`crash_worker.py`) runs step 1 (three `fetch` tasks) and is killed while step 2's
`charge` task runs. A second process resumes the run id: the model is not called for the
recorded steps, the fetches do not run again, and `charge` runs again if it is idempotent or is
reported to the model as of unknown outcome if it is not. The same test runs on PostgreSQL when
`AGENTLOOP_POSTGRES_DSN` is set (`nox -s postgres`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import _spawn

TIMEOUT = 60


def journals() -> list[str]:
    found = ["sqlite"]
    if os.environ.get("AGENTLOOP_POSTGRES_DSN"):
        found.append("postgres")
    return found


@pytest.fixture(params=journals())
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "runs.sqlite")
    else:
        yield os.environ["AGENTLOOP_POSTGRES_DSN"]


def worker(
    journal: str, run_id: str, log: Path, mode: str, idempotent: bool, *, cold: bool = False
) -> subprocess.Popen[str]:
    args = (journal, run_id, str(log), mode, "idempotent" if idempotent else "not")
    return _spawn.worker("crash_worker", *args, cold=cold)


def kill_when_in_flight(process: subprocess.Popen[str]) -> None:
    """Wait (on the pipe, not the clock) until `charge` runs, then SIGKILL the process."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "IN_FLIGHT":
        process.kill()
        _, stderr = process.communicate(timeout=TIMEOUT)
        pytest.fail(f"the worker did not reach the charge task: {line!r}\n{stderr}")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL


def finished(process: subprocess.Popen[str]) -> dict[str, object]:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    result: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return result


def lines_by_process(log: Path) -> list[list[str]]:
    """The log's lines grouped by the process that wrote them, in order."""
    groups: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        pid, what = line.split(" ", 1)
        groups.setdefault(pid, []).append(what)
    return list(groups.values())


@pytest.mark.timeout(TIMEOUT * 3)
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
def test_a_killed_run_resumes_in_another_process_without_redoing_work(
    journal: str, tmp_path: Path, idempotent: bool
) -> None:
    run_id = f"order-{os.getpid()}-{idempotent}-{tmp_path.name}"
    log = tmp_path / "executions.log"
    kill_when_in_flight(worker(journal, run_id, log, "crash", idempotent))

    result = finished(worker(journal, run_id, log, "finish", idempotent))

    first, *rest = lines_by_process(log)
    assert first == ["model step 1", "fetch 1", "fetch 2", "fetch 3", "model step 2", "charge 60"]
    second = rest[0] if rest else []
    assert "model step 1" not in second  # recorded steps replay without the model
    assert not [line for line in second if line.startswith("fetch")]  # tasks 1-3 ran once
    assert result["resumed"] is True and result["replayed_steps"] == 2
    if idempotent:
        assert second == ["charge 60"]  # the in-flight task ran again
        assert result["answer"] == {"total": 60, "receipt": "receipt-60"}
        assert result["rerun_tasks"] == 1
    else:
        assert second == []  # not run again: its effect may have happened
        answer = result["answer"]
        assert isinstance(answer, dict) and answer["total"] == 60
        assert "outcome unknown" in str(answer["receipt"]), answer
        assert result["unknown_tasks"] == 1

    again = finished(worker(journal, run_id, log, "finish", idempotent))
    assert again["answer"] == result["answer"]  # a finished run id returns its answer
    assert len(lines_by_process(log)) == len(rest) + 1  # ... and runs nothing


@pytest.mark.timeout(TIMEOUT * 3)
def test_two_processes_resuming_one_run_one_wins(journal: str, tmp_path: Path) -> None:
    run_id = f"race-{os.getpid()}-{tmp_path.name}"
    log = tmp_path / "executions.log"
    kill_when_in_flight(worker(journal, run_id, log, "crash", True))

    # reruns charge and hangs in it; cold: its pid is compared with the lease holder's
    resumer = worker(journal, run_id, log, "crash", True, cold=True)
    assert resumer.stdout is not None
    try:
        assert resumer.stdout.readline().strip() == "IN_FLIGHT"
        loser = worker(journal, run_id, log, "finish", True)
        stdout, stderr = loser.communicate(timeout=TIMEOUT)
        assert loser.returncode == 3, stderr
        refused = json.loads(stdout.strip().splitlines()[-1])
        assert refused["error"] == "RunLeasedError"
        assert f"pid {resumer.pid}" in refused["message"]
    finally:
        resumer.kill()
        resumer.communicate(timeout=TIMEOUT)
