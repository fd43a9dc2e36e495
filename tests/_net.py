"""Local servers for tests: a stdlib socket server served from one thread for a `with` block."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator

__all__ = ["served"]


@contextlib.contextmanager
def served(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    """Serve `server` from a daemon thread named `name` while in the block, then shut it down,
    close its socket and join the thread.

    The thread polls for shutdown every 50 ms, so leaving the block does not wait long.
    """
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
