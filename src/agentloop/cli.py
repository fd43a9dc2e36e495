"""The `agentloop` command. Heavy imports happen inside the subcommands, so `--help` is fast."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentloop",
        description="Asyncio-native orchestration for smolagents agents.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the offline demo (no API key needed)")
    return parser


async def _core_demo() -> str:
    from .registry import TaskRegistry

    async def fetch(source: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"{source}: ok"

    def crunch(name: str, seconds: float) -> str:
        time.sleep(seconds)
        return f"{name}: crunched"

    async with TaskRegistry(tools=[fetch, crunch], max_workers=3) as registry:
        started = time.perf_counter()
        ids = [
            await registry.submit("tool", "fetch", {"source": s, "seconds": 0.3})
            for s in ("database A", "database B", "API C")
        ]
        ids += [
            await registry.submit("tool", "crunch", {"name": n, "seconds": 0.3})
            for n in ("file D", "file E", "file F")
        ]
        await registry.wait(ids)
        results = await registry.results(ids)
        wall = time.perf_counter() - started
    lines = [f"  {value}" for value in results.values()]
    lines.append(f"6 tasks of 0.3 s each in {wall:.2f} s (sequential: 1.80 s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        from rich.console import Console

        Console().print(asyncio.run(_core_demo()))
    return 0
