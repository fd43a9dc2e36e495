"""`MCPServer`: the description of one MCP server an agent uses (how to reach it, its bounds).

A description holds no connection: each registry (each agent) it is given to opens its own
session with it (`open_source`), owned by one task on that registry's loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._text import shown
from ..errors import InvalidArgumentsError
from ._config import HeadersFactory, ServerConfig, identifier, known_options, name_from_command

if TYPE_CHECKING:
    from ..core._sources import SourceContext, TargetSource

__all__ = ["MCPServer"]


@dataclass(frozen=True, kw_only=True, slots=True)
class MCPServer(ServerConfig):
    """An MCP server whose tools become targets of an agent (or a `TaskRegistry`).

    Build one with `MCPServer.stdio(...)` or `MCPServer.http(...)`; see docs/mcp.md. The
    attributes are `ServerConfig`'s.
    """

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
                `reconnect_attempts`, `reconnect_backoff`, `max_message_bytes`,
                `remote_tasks`.
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
            name=name if name is not None else name_from_command(command, args),
            transport="stdio",
            command=command,
            args=tuple(args),
            env=dict(env) if env is not None else None,
            cwd=os.fspath(cwd) if cwd is not None else None,
            **known_options(options),
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
            name=name if name is not None else identifier(parts.hostname or "server"),
            transport="http",
            url=url,
            headers=dict(headers) if headers is not None else None,
            auth=auth,
            **known_options(options),
        )

    def open_source(self, context: SourceContext) -> TargetSource:
        """A new source of this server's tools for one registry (connects on first listing)."""
        from ._source import ServerSource

        return ServerSource(self, context)
