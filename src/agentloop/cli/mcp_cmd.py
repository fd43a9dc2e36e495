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
import sys
from typing import Any

from rich.console import Console

from ._exits import EXIT_USAGE
from ._listening import allowed_hosts, checked_token, listening_socket, run_uvicorn, shown_host
from .run_cmd import UsageError, _resolve

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
    from ..mcp import streamable_http_app
    from ..serve import Principal, bearer_tokens

    token = checked_token(args)
    app = streamable_http_app(
        agent,
        path=args.path,
        auth=bearer_tokens({token: Principal("token")}) if token else None,
        allowed_hosts=allowed_hosts(args),
        owns_agent=True,
    )
    listener = listening_socket(args.host, args.port)
    port = listener.getsockname()[1]
    console.print(
        f"[bold]agentloop mcp[/bold] on http://{shown_host(args.host)}:{port}{args.path} "
        f"({'token required' if token else 'loopback only, no token'}); Ctrl-C stops it.",
        soft_wrap=True,
    )
    run_uvicorn(app, listener)
    return 0
