"""Recovery by replicas that share one PostgreSQL journal (`nox -s postgres`).

Three real processes run `agent.recovering()`; one of them also runs a few runs and is killed
with `SIGKILL` while they are all in flight. It poses as another machine, so the others may
take its runs over only when their leases expire (2 s here), by the server's clock. Every run
must then finish exactly once, by one of the two survivors, within a bounded time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agentloop import PostgresJournal, RunStatus
from agentloop.journal.base import LeaseHolder

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2.0
RUNS = [f"order-{n}" for n in range(6)]
TIMEOUT = 60
BOUND = LEASE + 15
"""Seconds after the kill by which every run must have finished: the lease, a pass interval,
and room for a loaded machine."""


def replica(
    dsn: str, schema: str, log: Path, *run_ids: str, host: str | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "AGENTLOOP_TEST_SCHEMA": schema,
        "AGENTLOOP_TEST_LEASE": str(LEASE),
        "AGENTLOOP_TEST_HOLD": "1" if run_ids else "0",
    }
    if host is not None:
        env["AGENTLOOP_TEST_HOST"] = host
    return subprocess.Popen(
        [sys.executable, "-m", "tests.durability.recovery_worker", dsn, str(log), "replica",
         *run_ids],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def read_until(process: subprocess.Popen[str], wanted: set[str]) -> None:
    """Read the process's lines (blocking on the pipe) until each of `wanted` was said."""
    assert process.stdout is not None
    missing = set(wanted)
    while missing:
        line = process.stdout.readline()
        if not line:
            process.kill()
            _, stderr = process.communicate(timeout=TIMEOUT)
            pytest.fail(f"replica {process.pid} ended before saying {sorted(missing)}:\n{stderr}")
        missing.discard(line.strip())


def stopped(process: subprocess.Popen[str]) -> dict[str, object]:
    """Close its stdin (the replica leaves `recovering()`), and return what it said it did."""
    stdout, stderr = process.communicate(input="", timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    said: dict[str, object] = json.loads(stdout.strip().splitlines()[-1])
    return said


@pytest.mark.timeout(TIMEOUT * 3)
def test_replicas_recover_a_killed_replicas_runs_exactly_once(
    postgres_dsn: str, postgres_schema: str, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    PostgresJournal(postgres_dsn, schema=postgres_schema).close()  # the tables, made once
    survivors = [replica(postgres_dsn, postgres_schema, log) for _ in range(2)]
    victim = replica(postgres_dsn, postgres_schema, log, *RUNS, host="far-away")
    try:
        for survivor in survivors:
            read_until(survivor, {"READY"})
        read_until(victim, {"READY", *(f"IN_FLIGHT {run_id}" for run_id in RUNS)})
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=TIMEOUT)
        killed_at = time.monotonic()

        with PostgresJournal(postgres_dsn, schema=postgres_schema, read_only=True) as journal:
            while True:  # observable state, with a bound: the assertion of this test
                runs = {s.run_id: s for s in journal.runs()}
                if all(runs[r].status is RunStatus.COMPLETED for r in RUNS):
                    break
                elapsed = time.monotonic() - killed_at
                assert elapsed < BOUND, {r: runs[r].status for r in RUNS}
                time.sleep(0.1)
        finished_after = time.monotonic() - killed_at
    finally:
        if victim.poll() is None:
            victim.kill()
        said = [stopped(survivor) for survivor in survivors]

    assert finished_after < BOUND
    for run_id in RUNS:
        summary = runs[run_id]
        assert summary.answer == f"done-{run_id}"
        assert summary.attempts == 2  # one claim won; the losers' claims changed nothing

    recovered = [r for s in said for r in s["recovered"]]  # type: ignore[attr-defined]
    assert sorted(r["run_id"] for r in recovered) == RUNS  # each by exactly one survivor
    assert all(r["ok"] and "lease expired" in r["previous_holder"] for r in recovered)

    executions = Counter(line.split(" ", 2)[2] for line in log.read_text().splitlines())
    assert executions == Counter({run_id: 2 for run_id in RUNS})  # victim once, survivor once
    pids = {int(line.split(" ", 1)[0]) for line in log.read_text().splitlines()}
    assert pids <= {victim.pid, *(s.pid for s in survivors)}


def test_recoverable_reads_leases_by_the_servers_clock(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresJournal(postgres_dsn, schema=postgres_schema) as journal:
        far = LeaseHolder(host="far-away", pid=1)
        for run_id, lease in (("expired", 0.0), ("live", 60.0)):
            journal.claim(
                run_id, task="t", fingerprint="f", holder=far, lease_seconds=lease, force=False
            )
        journal.claim(
            "handed-back", task="t", fingerprint="f", holder=far, lease_seconds=60, force=False
        )
        journal.finish("handed-back", far, RunStatus.RUNNING)
        journal.claim("done", task="t", fingerprint="f", holder=far, lease_seconds=60, force=False)
        journal.finish("done", far, RunStatus.COMPLETED, answer={"json": 1})

        found = [s.run_id for s in journal.recoverable()]
        assert sorted(found) == ["expired", "handed-back"]
        assert [s.run_id for s in journal.recoverable(limit=1)] == ["expired"]  # oldest first
