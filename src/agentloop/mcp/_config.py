"""What describes one MCP server: how to reach it and its bounds, checked once.

`ServerConfig` holds the fields and their checks, for the modules that connect (the transports,
the connection, the source); `MCPServer` (`_server`) is its public face, with the constructors
and the hook that opens a source for a registry.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._text import close_match_hint, shown
from ..errors import InvalidArgumentsError

__all__ = [
    "HeadersFactory",
    "ServerConfig",
    "check_identifier",
    "identifier",
    "known_options",
    "name_from_command",
]

HeadersFactory = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]
"""Returns headers (say a fresh bearer token) for an HTTP server; called at each (re)connect."""

DEFAULT_CALL_TIMEOUT = 300.0
"""Generous: MCP tools that crawl, build or query for minutes are common (never a 5 s cut)."""
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENT = 16
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """An MCP server's description (see `MCPServer`, its public face).

    Attributes:
        name: the server's name in messages, spans and name clashes (`{name}_{tool}`).
        transport: `"stdio"` (a subprocess) or `"http"` (Streamable HTTP).
        prefix: put before every tool name (say `"gh_"`); by default a tool keeps its own
            name, and only a name taken elsewhere becomes `{name}_{tool}`.
        max_concurrent: calls to this server in flight at once; more wait as `pending`.
        call_timeout: seconds one call may take (a deadline: at it the call is cancelled on
            the server and the task fails, naming the server); `None` for no deadline.
        connect_timeout: seconds to start the server and get its answer to `initialize`.
        reconnect_attempts: further tries when connecting fails, with backoff doubling from
            `reconnect_backoff` seconds; a call that finds the server gone reconnects.
        max_message_bytes: the largest message the server may send (a bigger result fails
            its call with a clear error, never takes all memory).
        remote_tasks: speak MCP's 2026-07-28 protocol with its tasks extension when the
            server does, so the server may answer a long call with a remote task: the
            agentloop task then follows it (polls), cancels it remotely, and, in a journaled
            run, re-attaches to it after a crash (docs/mcp.md, "MCP tasks as background
            tasks"). Off by default: on such a session `tools/list_changed` is not received.
    """

    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    auth: HeadersFactory | None = None
    prefix: str | None = None
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    call_timeout: float | None = DEFAULT_CALL_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    reconnect_attempts: int = 3
    reconnect_backoff: float = 0.5
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    remote_tasks: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.name, "name")
        if not isinstance(self.remote_tasks, bool):
            raise InvalidArgumentsError(
                f"MCP server `{self.name}`: `remote_tasks` must be True or False, received "
                f"{shown(self.remote_tasks)}."
            )
        if self.prefix is not None and not (self.prefix + "x").isidentifier():
            raise InvalidArgumentsError(
                f"MCP server `{self.name}`: `prefix` must start a Python identifier (such as "
                f"'gh_'), received {shown(self.prefix)}."
            )
        _check_positive_int(self, "max_concurrent")
        _check_positive_int(self, "max_message_bytes")
        if not isinstance(self.reconnect_attempts, int) or self.reconnect_attempts < 0:
            raise InvalidArgumentsError(
                f"MCP server `{self.name}`: `reconnect_attempts` must be an integer >= 0, "
                f"received {shown(self.reconnect_attempts)}."
            )
        for option in ("connect_timeout", "reconnect_backoff", "call_timeout"):
            value = getattr(self, option)
            if value is None and option == "call_timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InvalidArgumentsError(
                    f"MCP server `{self.name}`: `{option}` must be a non-negative number of "
                    f"seconds, received {shown(value)}."
                )
        if self.connect_timeout == 0 or (self.call_timeout is not None and self.call_timeout == 0):
            raise InvalidArgumentsError(
                f"MCP server `{self.name}`: a timeout of 0 would fail every call; use a "
                "positive number of seconds (or call_timeout=None for no deadline)."
            )

    @property
    def where(self) -> str:
        """How the server is reached, for messages (`stdio: npx -y pkg`, `http: URL`)."""
        if self.transport == "stdio":
            line = " ".join([self.command or "", *self.args])
            return f"stdio: {line if len(line) <= 80 else line[:77] + '...'}"
        return f"http: {self.url}"


_OPTIONS = frozenset(
    {
        "prefix",
        "max_concurrent",
        "call_timeout",
        "connect_timeout",
        "reconnect_attempts",
        "reconnect_backoff",
        "max_message_bytes",
        "remote_tasks",
    }
)


def known_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidArgumentsError(
            f"unknown MCP server option(s) {', '.join(f'`{u}`' for u in unknown)}."
            f"{close_match_hint(unknown[0], _OPTIONS)} Valid: {', '.join(sorted(_OPTIONS))}."
        )
    return dict(options)


def check_identifier(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise InvalidArgumentsError(
            f"an MCP server's `{what}` must be a Python identifier such as 'files', received "
            f"{shown(value)}."
        )


def _check_positive_int(server: ServerConfig, option: str) -> None:
    value = getattr(server, option)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentsError(
            f"MCP server `{server.name}`: `{option}` must be a positive integer, received "
            f"{shown(value)}."
        )


def name_from_command(command: str, args: Sequence[str]) -> str:
    """`python server.py` -> `server`; `npx -y @scope/server-files .` -> `server_files`: the
    first argument that is not an option (nor a bare path like `.`), else the command."""
    words = [a for a in args if not a.startswith("-") and any(c.isalpha() for c in a)]
    stem = os.path.basename((words[0] if words else command).rstrip("/\\")) or command
    return identifier(re.sub(r"\.(py|js|mjs|ts)$", "", stem))


def identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_").lower() or "server"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "mcp_" + name
    return name
