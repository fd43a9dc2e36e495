"""`agentloop run`: a real run with a LiteLLM model (being written)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
