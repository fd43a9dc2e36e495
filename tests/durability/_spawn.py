"""The crash tests' worker processes: `python -m tests.durability.WORKER ARGS`, forked from a
warm interpreter (`tests.warm`) that has imported agentloop's agent and journal once, so a
kill-and-resume test pays for its runs, not for three cold imports (~1 s each here).

Killing one is as sure as killing a cold process: the tests SIGKILL it and then
`communicate()`, which returns only once every writer of its pipes, the fork too, is gone.
`cold=True` where a test compares the process's pid with a lease holder's (`process.pid` is
the client's, not the fork's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .. import warm

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = ("agentloop.agent.async_agent", "agentloop.testing", "agentloop.journal", "httpx")


def worker(module: str, *args: str, cold: bool = False) -> subprocess.Popen[str]:
    """Start `python -m tests.durability.MODULE ARGS` in the repository, its output piped."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    argv = ["-m", f"tests.durability.{module}", *args]
    return subprocess.Popen(
        [sys.executable, *argv] if cold else warm.python(*argv, env=env, preload=PRELOAD),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
