"""What `agentloop serve` and `agentloop mcp --http` share: where they listen, the token that
lets them listen anywhere but loopback, and the uvicorn run.

The socket is bound here, before uvicorn starts, so `--port 0` can print the port the system
picked and a port in use is a one-line error rather than uvicorn's traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from typing import Any

from .run_cmd import UsageError

__all__ = [
    "TOKEN_ENV",
    "allowed_hosts",
    "checked_token",
    "listening_socket",
    "run_uvicorn",
    "shown_host",
]

TOKEN_ENV = "AGENTLOOP_SERVE_TOKEN"
_ANY = ("0.0.0.0", "::")


def checked_token(args: argparse.Namespace) -> str | None:
    """The token clients must send (`--token-file`, else `AGENTLOOP_SERVE_TOKEN`), or None;
    `UsageError` if it is short, or missing while `--host` is not loopback."""
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
    if not token and not _is_loopback(args.host):
        raise UsageError(
            f"--host {args.host} serves other machines, so clients must authenticate: put a "
            f"token in a file and pass --token-file PATH (or set {TOKEN_ENV})."
        )
    return token or None


def allowed_hosts(args: argparse.Namespace, base: tuple[str, ...] = ()) -> list[str]:
    """The `Host` values to answer: `base`, `--allow-host`, and `--host` when it is a name."""
    hosts = [*base, *args.allow_host]
    if not _is_loopback(args.host) and args.host not in _ANY:
        hosts.append(args.host)
    return hosts


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    listener.listen(512)
    return listener


def shown_host(host: str) -> str:
    """What a person types to reach `host` from this machine."""
    return "127.0.0.1" if host in _ANY else host


def run_uvicorn(app: Any, listener: socket.socket) -> None:
    """Serve `app` on `listener` until Ctrl-C (uvicorn re-raises it once it has shut down)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    try:
        with listener:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
