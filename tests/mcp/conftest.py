"""MCP servers for the tests, and what the tests check about processes.

`servers.py` is a real server written with the SDK (slow to start: its import takes one to
two seconds here, so tests share one per module); `tiny_server.py` speaks the same protocol
in plain Python and starts in milliseconds (for crashes and reconnects in the default suite);
`bad_servers.py` misbehaves.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from agentloop.mcp import MCPServer
from agentloop.testing import task_text

if importlib.util.find_spec("mcp") is None:  # without the `mcp` extra there is nothing to test
    collect_ignore_glob = ["test_*.py"]

HERE = Path(__file__).resolve().parent


def sdk_server(marks: Path | None = None, *, name: str = "sdk", **options: Any) -> MCPServer:
    env = {"AGENTLOOP_MCP_MARKS": str(marks)} if marks is not None else None
    return MCPServer.stdio(
        sys.executable, [str(HERE / "servers.py"), "stdio"], env=env, name=name, **options
    )


def tiny_server(marks: Path | None = None, *, name: str = "tiny", **options: Any) -> MCPServer:
    args = [str(HERE / "tiny_server.py"), *([str(marks)] if marks is not None else [])]
    options.setdefault("reconnect_backoff", 0.01)
    return MCPServer.stdio(sys.executable, args, name=name, **options)


def bad_server(mode: str, **options: Any) -> MCPServer:
    options.setdefault("reconnect_attempts", 0)
    return MCPServer.stdio(
        sys.executable, [str(HERE / "bad_servers.py"), mode], name=mode, **options
    )


def reaped(pid: int) -> bool:
    """The process is gone and was waited for: no zombie left (/proc has no entry)."""
    return not os.path.exists(f"/proc/{pid}")


def children() -> set[int]:
    """Pids of this process's children, zombies included."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry))
    return found


def code_in_task(messages: list[Any]) -> str:
    """A model whose reply is the run's task text: the tests write the model's code there."""
    return task_text(messages).split("New task:", 1)[-1].strip()


def server_pids(registry: Any) -> list[int]:
    """The pids of a registry's stdio servers (those started so far)."""
    return [pid for source in registry._sources._sources for pid in source.connection.pids]
