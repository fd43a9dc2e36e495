"""`agentloop mcp MODULE:ATTR`: an agent as an MCP server, over stdio (the default: what
Claude Desktop and IDEs start) or Streamable HTTP (`--http`, under uvicorn).

Over stdio nothing but MCP reaches stdout: messages and logs go to stderr. Over HTTP the same
rules as `agentloop serve` hold: 127.0.0.1 by default, and any other address needs a bearer
token (`--token-file`, or `AGENTLOOP_SERVE_TOKEN`) or the command refuses to start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from rich.console import Console

from ._exits import EXIT_USAGE
from .run_cmd import UsageError, _resolve
from .serve_cmd import _is_loopback, _token

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        agent = _agent(args.agent)
        if args.http:
            return _serve_http(args, agent, console)
        from ..mcp import serve_stdio

        asyncio.run(serve_stdio(agent, owns_agent=True))
    except UsageError as exc:
        console.print(f"[red]agentloop mcp:[/red] {exc}", soft_wrap=True, markup=False)
        return EXIT_USAGE
    return 0


def _agent(entry: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does, so ./myagent.py is importable
    value = _resolve("mcp", entry)
    if callable(value) and not callable(getattr(value, "astream", None)):
        value = value()
    if not callable(getattr(value, "astream", None)):
        raise UsageError(
            f"`{entry}` is a {type(value).__name__}, not an AsyncAgent (or a function "
            "returning one)."
        )
    return value


def _serve_http(args: argparse.Namespace, agent: Any, console: Console) -> int:
    import uvicorn

    from ..mcp import streamable_http_app
    from ..serve import Principal, bearer_tokens

    token = _token(args)
    if not _is_loopback(args.host) and token is None:
        raise UsageError(
            f"--host {args.host} serves other machines, so clients must authenticate: put a "
            "token in a file and pass --token-file PATH (or set AGENTLOOP_SERVE_TOKEN)."
        )
    hosts = list(args.allow_host)
    if not _is_loopback(args.host) and args.host not in ("0.0.0.0", "::"):
        hosts.append(args.host)
    app = streamable_http_app(
        agent,
        path=args.path,
        auth=bearer_tokens({token: Principal("token")}) if token else None,
        allowed_hosts=hosts,
        owns_agent=True,
    )
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as exc:
        listener.close()
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    listener.listen(512)
    port = listener.getsockname()[1]
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    console.print(
        f"[bold]agentloop mcp[/bold] on http://{shown}:{port}{args.path} "
        f"({'token required' if token else 'loopback only, no token'}); Ctrl-C stops it.",
        soft_wrap=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    try:
        with listener:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    return 0
