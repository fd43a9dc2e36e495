"""The crash test of remote MCP tasks: the agent's process is SIGKILLed while an MCP task runs
remotely; a second process resumes the run from the journal, re-attaches to the remote task
(polls it) instead of calling the tool again, and the tool's effect happens exactly once.

The server (tests/mcp/task_server.py over Streamable HTTP on 127.0.0.1) is a process of its
own that outlives the agent and writes each execution to a marks file. Runs in `nox -s mcp`
(AGENTLOOP_MCP_HEAVY=1): two agent processes and the SDK's server take several seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HERE
from .test_heavy import free_port

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("AGENTLOOP_MCP_HEAVY") != "1",
        reason="heavy MCP tests: run with `nox -s mcp` (AGENTLOOP_MCP_HEAVY=1)",
    ),
    pytest.mark.timeout(120),
]

ROOT = HERE.parents[1]


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", **(env or {})}
    return subprocess.Popen(
        argv, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip


def read_until(process: subprocess.Popen[str], word: str) -> list[str]:
    """The lines `process` printed up to the one that starts with `word` (bounded by the
    test's timeout: a process that dies first ends its stdout, which fails here)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line.rstrip("\n"))
        if line.startswith(word):
            return seen
    _, err = process.communicate(timeout=30)
    raise AssertionError(f"no {word!r} line; stdout {seen}, stderr {err[-3000:]}")


def test_a_killed_agent_resumes_by_re_attaching_and_the_effect_happens_once(
    tmp_path: Path,
) -> None:
    marks, journal = tmp_path / "marks", str(tmp_path / "runs.db")
    port = free_port()
    server = start(
        [sys.executable, str(HERE / "task_server.py"), "http", str(port)],
        env={"AGENTLOOP_MCP_MARKS": str(marks)},
    )
    try:
        read_until(server, "ready")
        url = f"http://127.0.0.1:{port}/mcp"
        worker = [sys.executable, "-m", "tests.mcp.task_crash_worker", url, journal, "order-7"]

        first = start(worker)
        read_until(first, "FOLLOWING")  # the remote task's id is durable in the journal now
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        created = [line for line in marks.read_text().splitlines() if line.startswith("created")]
        assert len(created) == 1
        remote_id = created[0].split()[-1]

        second = start(worker)
        answer = read_until(second, "ANSWER")[-1]
        second.communicate(timeout=30)
        assert second.returncode == 0
        assert json.loads(answer.removeprefix("ANSWER ")) == "built once"

        lines = marks.read_text().splitlines()
        assert [line for line in lines if not line.startswith("polled")] == [
            f"created once {remote_id}",
            "done once",
        ]  # one remote task, run once, never a plain call of the tool
        assert f"polled {remote_id}" in lines  # the second process followed the same task
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate(timeout=30)
