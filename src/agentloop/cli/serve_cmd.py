"""`agentloop serve MODULE:ATTR`: the run service (`agentloop.serve.create_app`) under uvicorn.

Secure by default: it listens on 127.0.0.1; on any other address it needs a bearer token
(`--token-file`, or `AGENTLOOP_SERVE_TOKEN`) and refuses to start without one. The socket is
bound before uvicorn starts, so `--port 0` prints the port the system picked and a port in use
is a one-line error.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import socket
from typing import Any

from rich.console import Console

from ._exits import EXIT_USAGE
from .run_cmd import UsageError, _resolve

__all__ = ["run"]

TOKEN_ENV = "AGENTLOOP_SERVE_TOKEN"


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        return _serve(args, console)
    except UsageError as exc:
        console.print(f"[red]agentloop serve:[/red] {exc}", soft_wrap=True, markup=False)
        return EXIT_USAGE


def _serve(args: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from ..serve import LOOPBACK_HOSTS, Principal, bearer_tokens, create_app

    token = _token(args)
    loopback = _is_loopback(args.host)
    if not loopback and token is None:
        raise UsageError(
            f"--host {args.host} serves other machines, so clients must authenticate: put a "
            f"token in a file and pass --token-file PATH (or set {TOKEN_ENV})."
        )
    agents = _agents(args)
    auth = bearer_tokens({token: Principal("token", admin=True)}) if token else None
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if not loopback and args.host not in ("0.0.0.0", "::"):
        hosts.append(args.host)
    app = create_app(agents, auth=auth, allowed_hosts=hosts, owns_agents=True)
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
        f"[bold]agentloop serve[/bold] on http://{shown}:{port}/ "
        f"({'token required' if token else 'loopback only, no token'}); Ctrl-C stops it.",
        soft_wrap=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    # What is loaded by now (the agents, smolagents, the app: ~70,000 objects) lives as long
    # as the process: out of the collector's way, a full collection stops traversing it each
    # time (~40 ms a collection here; with litellm loaded, ~330 ms). docs/serve.md, "Speed".
    gc.collect()
    gc.freeze()
    try:
        with listener:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    return 0


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < 16:
        raise UsageError("the token must be at least 16 characters (e.g. `openssl rand -hex 24`).")
    return token or None


def _agents(args: argparse.Namespace) -> Any:
    value = _resolve("serve", args.agent)
    if callable(value) and not callable(getattr(value, "astream", None)):
        value = value(journal=args.journal) if args.journal else value()
    elif args.journal:
        raise UsageError(
            f"--journal was given but `{args.agent}` is an agent made already; create it with "
            "`journal=`, or point at a function that takes `journal` and returns the agent."
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
