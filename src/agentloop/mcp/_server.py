"""`MCPServer`: the description of one MCP server an agent uses (how to reach it, its bounds).

A description holds no connection: each registry (each agent) it is given to opens its own
session with it (`open_source`), owned by one task on that registry's loop.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .._text import shown
from ..errors import InvalidArgumentsError

if TYPE_CHECKING:
    from ..core._sources import SourceContext, TargetSource

__all__ = ["HeadersFactory", "MCPServer"]

HeadersFactory = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]
"""Returns headers (say a fresh bearer token) for an HTTP server; called at each (re)connect."""

DEFAULT_CALL_TIMEOUT = 300.0
"""Generous: MCP tools that crawl, build or query for minutes are common (never a 5 s cut)."""
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENT = 16
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class MCPServer:
    """An MCP server whose tools become targets of an agent (or a `TaskRegistry`).

    Build one with `MCPServer.stdio(...)` or `MCPServer.http(...)`; see docs/mcp.md.

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

    def __post_init__(self) -> None:
        _check_identifier(self.name, "name")
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

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> MCPServer:
        """A server started as a subprocess, speaking MCP on its stdin and stdout.

        Args:
            command: the executable (`"npx"`, `"uvx"`, `sys.executable`, ...).
            args: its arguments.
            env: environment variables for it, over a safe default (`HOME`, `PATH`, `USER`,
                ... as the MCP SDK does): the rest of this process's environment is not
                passed on.
            cwd: its working directory.
            name: how agentloop calls it (default: from the command line).
            **options: `prefix`, `max_concurrent`, `call_timeout`, `connect_timeout`,
                `reconnect_attempts`, `reconnect_backoff`, `max_message_bytes`.
        """
        if not isinstance(command, str) or not command:
            raise InvalidArgumentsError(
                f"`MCPServer.stdio` needs a command (such as 'npx' or sys.executable), "
                f"received {shown(command)}."
            )
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise InvalidArgumentsError(
                f"`args` must be a list of strings, received {shown(args)}."
            )
        return cls(
            name=name if name is not None else _name_from_command(command, args),
            transport="stdio",
            command=command,
            args=tuple(args),
            env=dict(env) if env is not None else None,
            cwd=os.fspath(cwd) if cwd is not None else None,
            **_known(options),
        )

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: HeadersFactory | None = None,
        name: str | None = None,
        **options: Any,
    ) -> MCPServer:
        """A server reached over Streamable HTTP at `url` (its MCP endpoint, often `/mcp`).

        Args:
            headers: sent with every request.
            auth: a callable (sync or async) returning more headers, such as a fresh
                `{"Authorization": "Bearer ..."}`; called at each (re)connect.
            name: how agentloop calls it (default: from the host name).
            **options: as for `stdio`.
        """
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgumentsError(
                f"`MCPServer.http` needs an http(s) URL such as 'http://127.0.0.1:8000/mcp', "
                f"received {shown(url)}."
            )
        if auth is not None and not callable(auth):
            raise InvalidArgumentsError(
                f"`auth` must be a callable that returns headers, received {shown(auth)}."
            )
        return cls(
            name=name if name is not None else _identifier(parts.hostname or "server"),
            transport="http",
            url=url,
            headers=dict(headers) if headers is not None else None,
            auth=auth,
            **_known(options),
        )

    # -- for the registry ---------------------------------------------------------------------

    @property
    def where(self) -> str:
        """How the server is reached, for messages (`stdio: npx -y pkg`, `http: URL`)."""
        if self.transport == "stdio":
            line = " ".join([self.command or "", *self.args])
            return f"stdio: {line if len(line) <= 80 else line[:77] + '...'}"
        return f"http: {self.url}"

    def open_source(self, context: SourceContext) -> TargetSource:
        """A new source of this server's tools for one registry (connects on first listing)."""
        from ._source import ServerSource

        return ServerSource(self, context)


_OPTIONS = frozenset(
    {
        "prefix",
        "max_concurrent",
        "call_timeout",
        "connect_timeout",
        "reconnect_attempts",
        "reconnect_backoff",
        "max_message_bytes",
    }
)


def _known(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidArgumentsError(
            f"unknown MCP server option(s) {', '.join(f'`{u}`' for u in unknown)}; valid: "
            f"{', '.join(sorted(_OPTIONS))}."
        )
    return dict(options)


def _check_identifier(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise InvalidArgumentsError(
            f"an MCP server's `{what}` must be a Python identifier such as 'files', received "
            f"{shown(value)}."
        )


def _check_positive_int(server: MCPServer, option: str) -> None:
    value = getattr(server, option)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentsError(
            f"MCP server `{server.name}`: `{option}` must be a positive integer, received "
            f"{shown(value)}."
        )


def _name_from_command(command: str, args: Sequence[str]) -> str:
    """`python server.py` -> `server`; `npx -y @scope/server-files` -> `server_files`."""
    words = [a for a in args if not a.startswith("-")] or [command]
    stem = os.path.basename(words[-1].rstrip("/\\")) or command
    return _identifier(re.sub(r"\.(py|js|mjs|ts)$", "", stem))


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_").lower() or "server"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "mcp_" + name
    return name
