"""The `agentloop` command.

Each subcommand lives in its own module, imported only when chosen, so `agentloop --help`
answers without importing smolagents or litellm.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ._exits import EXIT_INTERRUPTED

__all__ = ["main"]

_COMMANDS = {
    "demo": ("agentloop.cli.demo_cmd", "run the offline demo (no API key, no network)"),
    "run": ("agentloop.cli.run_cmd", "run a task with a real model through LiteLLM"),
    "runs": ("agentloop.cli.runs_cmd", "list a journal's durable runs, or show one"),
    "serve": ("agentloop.cli.serve_cmd", "serve agents as a run service with its console"),
    "mcp": ("agentloop.cli.mcp_cmd", "serve an agent as an MCP server (stdio, or --http)"),
}


_EVENTS_HELP = "print the run's events as JSON lines on stdout (no view)"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentloop",
        description="Asyncio-native orchestration for smolagents: a CodeAgent that runs its "
        "own tool calls and sub-agents in parallel.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log agentloop's debug lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module=module)
        _add_arguments(name, sub)
    return parser


def _add_arguments(name: str, sub: argparse.ArgumentParser) -> None:
    """Declare each subcommand's arguments here, so `--help` needs no heavy import."""
    if name == "demo":
        sub.add_argument(
            "scenario",
            nargs="?",
            default="all",
            choices=["all", "batch", "sources", "ecommerce", "quarterly"],
            help="which scenario to run (default: all)",
        )
        sub.add_argument("--trace", metavar="FILE", help="write the run as Chrome trace JSON")
        sub.add_argument("--no-live", action="store_true", help="plain output, no live view")
        sub.add_argument("--events", action="store_true", help=_EVENTS_HELP)
        sub.add_argument(
            "--web",
            action="store_true",
            help="serve the live web view for the scenarios on 127.0.0.1 instead",
        )
        sub.add_argument(
            "--port",
            type=int,
            default=8000,
            metavar="N",
            help="the web view's port (default: %(default)s; 0 picks a free one)",
        )
    elif name == "serve":
        sub.add_argument(
            "agent",
            metavar="MODULE:ATTR",
            help="an AsyncAgent, a dict of them by name, or a function returning either "
            "(called with journal=URL when --journal is given)",
        )
        sub.add_argument("--journal", metavar="URL", help="an SQLite path or postgresql:// URL")
        _add_listen_arguments(sub)
    elif name == "mcp":
        _add_mcp_arguments(sub)
    elif name == "run":
        sub.add_argument("task", help="what the agent should do")
        sub.add_argument("--model", required=True, metavar="MODEL_ID", help="a LiteLLM model id")
        sub.add_argument(
            "--base-url",
            metavar="URL",
            help="the provider's endpoint, e.g. a local OpenAI-compatible server (no key "
            "needed); default: BASE_URL, else the provider's own",
        )
        sub.add_argument(
            "--tools", nargs="*", default=[], metavar="MODULE:ATTR", help="tools to register"
        )
        sub.add_argument(
            "--managed", nargs="*", default=[], metavar="MODULE:ATTR", help="managed agents"
        )
        sub.add_argument(
            "--max-workers",
            type=int,
            default=3,
            metavar="N",
            help="blocking (sync) tool calls that run at once (default: %(default)s)",
        )
        sub.add_argument(
            "--max-steps",
            type=int,
            default=20,
            metavar="N",
            help="controller steps before the run gives up (default: %(default)s)",
        )
        sub.add_argument(
            "--needs-approval",
            action="append",
            default=[],
            metavar="NAME",
            help="a tool or managed agent whose calls need a person's approval (repeatable); "
            "without --approve they are rejected",
        )
        sub.add_argument(
            "--approve",
            action="store_true",
            help="ask on the terminal (y/N) for each call that needs approval",
        )
        sub.add_argument("--trace", metavar="FILE", help="write the run as Chrome trace JSON")
        sub.add_argument("--no-live", action="store_true", help="plain output, no live view")
        sub.add_argument("--events", action="store_true", help=_EVENTS_HELP)
        sub.add_argument("--env-file", default=".env", metavar="PATH", help="default: .env")
    elif name == "runs":
        _add_runs_arguments(sub)


def _add_listen_arguments(sub: argparse.ArgumentParser) -> None:
    """Where `serve` and `mcp --http` listen, and the token off loopback (`_listening`)."""
    sub.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    sub.add_argument("--port", type=int, default=8000, metavar="N", help="0: a free one")
    sub.add_argument(
        "--token-file",
        metavar="PATH",
        help="a file holding the bearer token clients send (default: AGENTLOOP_SERVE_TOKEN); "
        "required off loopback",
    )
    sub.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host header value to answer besides the loopback names (repeatable)",
    )


def _add_mcp_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "agent", metavar="MODULE:ATTR", help="an AsyncAgent, or a function returning one"
    )
    sub.add_argument("--http", action="store_true", help="Streamable HTTP instead of stdio")
    sub.add_argument("--path", default="/mcp", help="the MCP endpoint (default: %(default)s)")
    _add_listen_arguments(sub)


def _add_runs_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("run_id", nargs="?", metavar="RUN_ID", help="show this run's record")
    sub.add_argument(
        "--journal",
        required=True,
        metavar="FILE|URL",
        help="the journal: an SQLite file, or a postgresql:// URL",
    )
    sub.add_argument(
        "--limit",
        type=_positive,
        default=20,
        metavar="N",
        help="runs listed, most recently updated first (default: %(default)s)",
    )
    sub.add_argument("--json", action="store_true", help="print JSON lines instead (for scripts)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:  # agentloop's own lines only: litellm/httpx debug output drowns them
        logging.getLogger("agentloop").setLevel(logging.DEBUG)
    try:  # the import too: Ctrl-C while a command module loads is an interrupt, not a bug
        code: int = importlib.import_module(args.module).run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: tasks cancelled", file=sys.stderr)  # noqa: T201 - CLI output
        return EXIT_INTERRUPTED
    return code
