"""`agentloop serve MODULE:ATTR`: the run service (`agentloop.serve.create_app`) under uvicorn.

Secure by default: it listens on 127.0.0.1; on any other address it needs a bearer token
(`--token-file`, or `AGENTLOOP_SERVE_TOKEN`) and refuses to start without one. The socket is
bound before uvicorn starts, so `--port 0` prints the port the system picked and a port in use
is a one-line error.
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

from rich.console import Console

from ._exits import EXIT_USAGE
from ._listening import allowed_hosts, checked_token, listening_socket, run_uvicorn, shown_host
from .run_cmd import UsageError, _resolve

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        return _serve(args, console)
    except UsageError as exc:
        console.print(f"[red]agentloop serve:[/red] {exc}", soft_wrap=True, markup=False)
        return EXIT_USAGE


def _serve(args: argparse.Namespace, console: Console) -> int:
    from ..serve import LOOPBACK_HOSTS, Principal, bearer_tokens, create_app

    token = checked_token(args)
    agents = _agents(args)
    auth = bearer_tokens({token: Principal("token", admin=True)}) if token else None
    hosts = allowed_hosts(args, LOOPBACK_HOSTS)
    app = create_app(agents, auth=auth, allowed_hosts=hosts, owns_agents=True)
    listener = listening_socket(args.host, args.port)
    port = listener.getsockname()[1]
    console.print(
        f"[bold]agentloop serve[/bold] on http://{shown_host(args.host)}:{port}/ "
        f"({'token required' if token else 'loopback only, no token'}); Ctrl-C stops it.",
        soft_wrap=True,
    )
    # What is loaded by now (the agents, smolagents, the app: ~70,000 objects) lives as long
    # as the process: out of the collector's way, a full collection stops traversing it each
    # time (~40 ms a collection here; with litellm loaded, ~330 ms). docs/serve.md, "Speed".
    gc.collect()
    gc.freeze()
    run_uvicorn(app, listener)
    return 0


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
