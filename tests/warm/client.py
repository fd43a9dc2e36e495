"""The warm interpreter's client: stands in for `python ARGV` in the test's `Popen`.

Run as `python -I -S client.py SOCKET ARGV...` by `tests.warm` (stdlib only, so it starts in
~20 ms). Hands the server its descriptors 0-2, environment, cwd and ARGV; relays signals to
the fork; ends as the fork ended. If the server answers `cold` (another environment), it
becomes `python ARGV` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)  # fmt: skip


def main() -> None:
    socket_path, *argv = sys.argv[1:]
    # a signal this process inherited as ignored (`cmd &` in a script ignores SIGINT) stays
    # ignored in the fork, as it would in a cold `python`: not relayed, and ignored there
    ignored = [int(s) for s in RELAYED if signal.getsignal(s) == signal.SIG_IGN]
    request = json.dumps(
        {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "ignored": ignored}
    ).encode()
    pending: list[int] = []
    child: list[int] = []

    def relay(signum: int, _frame: object) -> None:
        if child:
            os.kill(child[0], signum)
        else:
            pending.append(signum)

    for signum in RELAYED:
        if signum not in ignored:
            signal.signal(signum, relay)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    message = struct.pack("!I", len(request)) + request
    sent = socket.send_fds(conn, [message], [0, 1, 2])
    if sent < len(message):  # (a send of nothing to a server that has answered is EPIPE)
        conn.sendall(message[sent:])
    replies = conn.makefile("rb")
    for line in replies:
        word, _, value = line.decode().strip().partition(" ")
        if word == "cold":
            os.execv(sys.executable, [sys.executable, *argv])
        elif word == "pid":
            child.append(int(value))
            for signum in pending:
                os.kill(child[0], signum)
        elif word == "status":
            end(int(value))
    os.write(2, b"warm interpreter: the server went away\n")
    os._exit(70)


def end(status: int) -> None:
    """Exit as the fork did."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum != signal.SIGKILL:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
