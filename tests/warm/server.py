"""The warm interpreter's server: imports the slow modules once, forks one child per command.

Run as `python server.py SOCKET CALL_TIME MODULE...` by `tests.warm` (see its docstring).
One thread only (a fork copies just the calling thread; a lock held by another would stay
locked in the child): a selector watches the listening socket, each client's connection
(closed: the client was killed, so its fork is killed), each fork's pidfd (readable: it
ended; its wait status goes to the client) and stdin (closed: the test process is gone;
every fork is killed, then the server ends).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import time
import types
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """What one fork runs: `python *argv` in `cwd` with `env`."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    ignored: list[int]
    """Signals the client inherited as ignored: ignored here too, as a cold start keeps them."""

    def run(self) -> None:
        """Become the command, as `python -m MODULE ARGS` / `-c CODE ARGS` / `SCRIPT ARGS`
        would."""
        os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.env)
        time.tzset()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in self.ignored:
            signal.signal(signum, signal.SIG_IGN)
        sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())  # type: ignore[union-attr]
        if self.argv[0] == "-m":
            module, *args = self.argv[1:]
            sys.argv = ["-m", *args]  # runpy puts the module's file in argv[0]
            sys.path.insert(0, self.cwd)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        elif self.argv[0] == "-c":
            code, *args = self.argv[1:]
            sys.argv = ["-c", *args]
            sys.path.insert(0, "")
            main = types.ModuleType("__main__")
            main.__builtins__ = __builtins__  # type: ignore[attr-defined]
            sys.modules["__main__"] = main
            exec(compile(code, "<string>", "exec"), main.__dict__)
        else:
            script, *args = self.argv
            sys.argv = [script, *args]
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
            runpy.run_path(script, run_name="__main__")


def receive_quietly(conn: socket.socket) -> bytes:
    """What a client sent after its request (nothing, ever): b"" once it has gone."""
    try:
        return conn.recv(1)
    except OSError:
        return b""


def receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """A request: a 4-byte length, JSON, and the client's descriptors 0, 1 and 2."""
    data, fds, _, _ = socket.recv_fds(conn, 65536, 3)
    if len(data) < 4 or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("a malformed request")
    (size,) = struct.unpack("!I", data[:4])
    body = data[4:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the client left mid-request")
        body += chunk
    return json.loads(body), fds


class Server:
    """The listening socket, the selector and the forks still running."""

    def __init__(self, socket_path: str, call_time: frozenset[str]) -> None:
        self.pid = os.getpid()
        self.socket_path = socket_path
        self.call_time = call_time
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(socket_path)
        self.listener.listen(64)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, ("lifeline", None))
        self.forks: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, client)

    def serve(self) -> Command | None:
        """Serve until stdin closes; in a fork, return the command it is to run."""
        os.write(sys.stdout.fileno(), b"ready\n")
        try:
            while True:
                for key, _ in self.selector.select():
                    what, item = key.data
                    if what == "lifeline":
                        if not os.read(sys.stdin.fileno(), 4096):
                            return None
                    elif what == "accept":
                        conn, _ = self.listener.accept()
                        command = self.start(conn)
                        if command is not None:  # this process is the fork
                            return command
                    elif what == "client":
                        pid, conn = item
                        if not receive_quietly(conn):  # the client closed: it was killed
                            self.selector.unregister(conn)
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                    else:  # "exit": a fork ended
                        self.ended(key.fd)
        finally:
            if os.getpid() == self.pid:
                self.close()

    def ended(self, pidfd: int) -> None:
        """Reap a fork and tell its client how it ended."""
        pid, conn = self.forks.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        with contextlib.suppress(OSError):
            conn.sendall(f"status {status}\n".encode())
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def close(self) -> None:
        """Kill and reap the forks still running, stop listening."""
        for pidfd, (pid, conn) in self.forks.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(pidfd)
            conn.close()
        self.forks.clear()
        self.selector.close()
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def start(self, conn: socket.socket) -> Command | None:
        """Fork for one client's request; in the fork, return its command."""
        conn.settimeout(30)
        try:
            request, fds = receive(conn)
        except (OSError, ValueError):
            conn.close()
            return None
        env, argv, cwd = request["env"], request["argv"], request["cwd"]
        ignored = request["ignored"]
        assert isinstance(env, dict) and isinstance(argv, list) and isinstance(cwd, str)
        assert isinstance(ignored, list)
        mine = {k: v for k, v in os.environ.items() if k not in self.call_time}
        theirs = {k: v for k, v in env.items() if k not in self.call_time}
        if mine != theirs:  # not the environment this server was started in: go cold
            for fd in fds:
                os.close(fd)
            conn.sendall(b"cold\n")
            conn.close()
            return None
        pid = os.fork()
        if pid == 0:
            for pidfd, (_, other) in self.forks.items():
                os.close(pidfd)
                other.close()
            self.forks.clear()
            self.selector.close()
            self.listener.close()
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            return Command(argv=argv, env=env, cwd=cwd, ignored=ignored)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        conn.sendall(f"pid {pid}\n".encode())
        pidfd = os.pidfd_open(pid)
        self.forks[pidfd] = (pid, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", None))
        self.selector.register(conn, selectors.EVENT_READ, ("client", (pid, conn)))
        return None


def main() -> None:
    socket_path, call_time, *preload = sys.argv[1:]
    del sys.path[0]  # this file's directory (tests/warm): no module is to be found there
    for module in preload:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # forks then copy fewer pages: the collector leaves these objects alone
    command = Server(socket_path, frozenset(call_time.split(","))).serve()
    if command is not None:
        command.run()  # a SystemExit from the command ends this process, as it would cold


if __name__ == "__main__":
    main()
