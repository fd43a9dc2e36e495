"""The A2A crash test (`nox -s a2a`; set `AGENTLOOP_A2A_HEAVY=1`): the process calling a remote
A2A agent is SIGKILLed while the remote task runs; a second process resumes the run from the
journal, re-attaches to the remote task by its recorded id, and the remote agent ran the
message once. The remote service runs in this test's process under uvicorn on 127.0.0.1; the
callers are subprocesses (each imports agentloop cold: seconds, hence a nox session)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("a2a")

from agentloop import create_async_agent
from agentloop.journal import EntryKind, SQLiteJournal
from agentloop.serve import create_app
from agentloop.testing import ScriptedModel

from .conftest import serving, slow_plan

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not os.environ.get("AGENTLOOP_A2A_HEAVY"), reason="nox -s a2a (AGENTLOOP_A2A_HEAVY=1)"
    ),
]

ROOT = Path(__file__).resolve().parents[2]


async def _caller(url: str, journal: Path, run_id: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.serve.a2a_caller_worker",
        url,
        str(journal),
        run_id,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _remote_recorded(journal: Path, run_id: str, deadline: float) -> str:
    """The remote task id once the caller's journal holds it (read, bounded, off the loop)."""
    store = SQLiteJournal(journal)
    try:
        while time.monotonic() < deadline:
            entries = await asyncio.to_thread(store.entries, run_id)
            found = [e for e in entries if e.kind is EntryKind.HANDLE]
            if found:
                return str(found[0].data["handle"]["a2a_task_id"])
            await asyncio.sleep(0.05)  # another process's commit: nothing to wait on here
        raise AssertionError("the caller never recorded the remote task id")
    finally:
        store.close()


async def test_a_killed_caller_resumes_and_re_attaches_to_the_remote_task(
    tmp_path: Path,
) -> None:
    runs = 0
    entered = asyncio.Event()
    gate = asyncio.Event()

    async def slow(x: int) -> int:
        """Count the run, then wait for the gate.

        Args:
            x: a number.
        """
        nonlocal runs
        runs += 1
        entered.set()
        await gate.wait()
        return x

    model = ScriptedModel([slow_plan(5)] * 3)
    remote = create_async_agent(tools=[slow], model=model, name="slowpoke")
    journal = tmp_path / "caller.sqlite"
    async with remote, serving(create_app({"slowpoke": remote})) as url:
        agent_url = f"{url}/a2a/slowpoke/"
        first = await _caller(agent_url, journal, "crash-1")
        try:
            await asyncio.wait_for(entered.wait(), 60)
            remote_id = await _remote_recorded(journal, "crash-1", time.monotonic() + 30)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.communicate()
        assert first.returncode == -signal.SIGKILL

        second = await _caller(agent_url, journal, "crash-1")
        # the resumed caller follows the remote task, finished or not
        gate.set()
        out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1]) == {"r": {"s": 5}}
    assert runs == 1  # the remote tool ran once
    assert model.calls == 1  # and the remote agent got the message once
    store = SQLiteJournal(journal)
    try:
        remotes = [e for e in store.entries("crash-1") if e.kind is EntryKind.HANDLE]
    finally:
        store.close()
    assert [e.data["handle"]["a2a_task_id"] for e in remotes] == [
        remote_id
    ]  # re-attached, not sent again
