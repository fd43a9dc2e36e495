"""The `agentloop` command's exit codes, shared by its subcommands (apart from `cli/__init__`,
which imports each subcommand: a subcommand importing it back would close a circle)."""

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE"]

EXIT_USAGE = 2
"""Bad arguments, or a file or module that is not what it should be (argparse's code)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it)."""
