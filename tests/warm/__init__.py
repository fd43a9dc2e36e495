"""Warm interpreters: `python -m MODULE ARGS` in a process that skips the slow imports.

Why: a CLI test that starts `python -m agentloop run ...` pays 3-7 s on this 2-core machine
before the command does anything, almost all of it importing litellm (pydantic builds ~2,500
models) and smolagents. Thirty such tests spent two of the suite's five minutes importing the
same modules. Here one server process per environment imports them once; each command is a
fork of it.

How: `python(*argv, env=...)` returns an argv for `subprocess.run` / `Popen` that starts a small
client (stdlib only, `-I -S`: ~20 ms). The client hands its own stdin, stdout and stderr and its
environment, cwd and arguments to the server over a unix socket; the server forks, and the
fork takes those descriptors as its 0, 1 and 2 and runs the module as `python -m` would
(`runpy`, `sys.argv`, `sys.path[0]`), then exits the ordinary way (atexit handlers, non-daemon
threads joined). The client relays signals to the fork (SIGINT, SIGTERM, ...) and ends as the
fork ended: the same exit code, or killed by the same signal. So the test keeps a real
`Popen`: `communicate`, `send_signal`, pipes, pseudo-terminals and `timeout=` all work. If the
client is killed (a test's `kill()` or `timeout=`), the server kills the fork at once. A signal
the test process ignores (`pytest &` in a script ignores SIGINT) stays ignored in the fork, as
it would in a cold child.

What differs from a cold start, and why it does not matter for the tests that use this:
- the preloaded modules are imported before the command runs. A test about *import order*
  (a first line printed before smolagents loads) must start a cold process: pass Python
  options (`-X importtime`) and `python()` returns a cold argv.
- the fork's pid is not the client's (`process.pid`): a test that compares pids must go cold.
- environment variables are read by the preloaded modules when the server starts. A server is
  started per environment, keyed on every variable but `CALL_TIME` (names only the command
  reads, as it runs), which the fork takes from the client.
- every fork shares the server's hash seed (`PYTHONHASHSEED`); `random` reseeds after a fork.

`AGENTLOOP_TEST_COLD=1` turns the whole mechanism off (every argv is a cold one), to check that
a test means the same either way. Only on Linux (`os.pidfd_open`); elsewhere argvs are cold.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["CALL_TIME", "python"]

HERE = Path(__file__).resolve().parent
CLIENT, SERVER = HERE / "client.py", HERE / "server.py"

CALL_TIME = frozenset(
    {
        "PYTEST_CURRENT_TEST",  # pytest sets it per test
        "API_KEY",
        "BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_BASE",
        "COLUMNS",
        "LINES",
        "TERM",
        "TZ",  # the fork calls time.tzset()
    }
)
"""Variables the commands under test read when they run, never at import: they may differ
from the server's."""

DEFAULT_PRELOAD = ("litellm", "smolagents", "agentloop.cli")
START_TIMEOUT = 120.0
"""Seconds a server may take to import its modules (a cold litellm import is 3-7 s here)."""


def _supported() -> bool:
    return (
        hasattr(os, "pidfd_open")
        and hasattr(os, "fork")
        and not os.environ.get("AGENTLOOP_TEST_COLD")
    )


def python(
    *argv: str, env: Mapping[str, str] | None = None, preload: Iterable[str] = DEFAULT_PRELOAD
) -> list[str]:
    """An argv that runs `python *argv` with `env` (what the caller passes to `Popen`; `None`:
    this process's environment), forked from a server that has imported `preload`.

    Only the `-m MODULE ...`, `-c CODE ...` and `SCRIPT ...` forms are served warm; any other
    (a Python option such as `-X importtime`) is returned cold: `[sys.executable, *argv]`.
    """
    cold = [sys.executable, *argv]
    if not argv or (argv[0] not in ("-m", "-c") and argv[0].startswith("-")) or not _supported():
        return cold
    socket_path = _SERVERS.socket_for(dict(os.environ if env is None else env), tuple(preload))
    return [sys.executable, "-I", "-S", str(CLIENT), socket_path, *argv]


def _key(env: Mapping[str, str], preload: tuple[str, ...]) -> str:
    fixed = {name: value for name, value in env.items() if name not in CALL_TIME}
    text = json.dumps([sorted(fixed.items()), preload, sys.executable])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Servers:
    """The servers this pytest process started, one per environment; stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        self._dir: str | None = None

    def socket_for(self, env: dict[str, str], preload: tuple[str, ...]) -> str:
        key = _key(env, preload)
        with self._lock:
            found = self._running.get(key)
            if found is not None and found[0].poll() is None:
                return found[1]
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="agentloop-warm-")
                atexit.register(self.stop)
            socket_path = os.path.join(self._dir, f"{key}.sock")
            self._running[key] = (self._start(env, preload, socket_path), socket_path)
            return socket_path

    def _start(
        self, env: dict[str, str], preload: tuple[str, ...], socket_path: str
    ) -> subprocess.Popen[bytes]:
        server_env = {name: value for name, value in env.items() if name not in CALL_TIME}
        assert self._dir is not None
        log_path = socket_path.removesuffix(".sock") + ".log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, str(SERVER), socket_path, ",".join(sorted(CALL_TIME)), *preload],
                env=server_env,
                stdin=subprocess.PIPE,  # the lifeline: the server ends when it closes
                stdout=subprocess.PIPE,  # one line once it listens
                stderr=log,
            )
        assert server.stdout is not None
        with selectors.DefaultSelector() as selector:  # a bounded wait for the ready line
            selector.register(server.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT) and server.stdout.readline() == b"ready\n"
        if not ready:
            server.kill()
            server.wait()
            raise RuntimeError(
                f"the warm interpreter did not start: {Path(log_path).read_text()[-3000:]}"
            )
        return server

    def stop(self) -> None:
        with self._lock:
            servers, self._running = list(self._running.values()), {}
        for server, _ in servers:
            assert server.stdin is not None
            server.stdin.close()  # the server kills its forks and exits
        for server, _ in servers:
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


_SERVERS = _Servers()
