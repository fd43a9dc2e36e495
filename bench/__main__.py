"""Run the benchmarks, print one table per scenario and a PASS/MISS summary; always exit 0."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import (
    agent,
    agui,
    core,
    distributed,
    durable,
    journal,
    mcp_calls,
    memory,
    model_limits,
    peers,
    serve,
    streaming,
    tracing,
    workers,
)
from . import typed as typed_answers
from ._measure import Result, print_result, print_table

CORE: dict[str, Callable[[int], Result]] = {
    "overhead": core.per_task_overhead,
    "makespan": core.makespan,
    "wakeup": core.wakeup_latency,
    "memory": memory.record_memory,
    "sync": workers.sync_hop,
    "tool_cycle": agent.tool_cycle,
    "direct_call": agent.direct_call,
    "fanout_from_model": agent.fanout_from_model,
    "wait_wakeup_from_model": agent.wait_wakeup_from_model,
    "tracing": tracing.tracing_overhead,
    "streaming": streaming.stream_cost,
    "agui": agui.agui_cost,
    "deltas": streaming.delta_cost,
    "journal": journal.journal_cost,
    "typed": typed_answers.typed_answer_cost,
    "model_limits": model_limits.limits_overhead,
    "mcp": mcp_calls.mcp_calls,
    "mcp_from_model": mcp_calls.mcp_from_model,
}
DURABLE: dict[str, Callable[[int], Result]] = {"durable": durable.durable_runs}
"""Durable runs against LangGraph and pydantic-ai on DBOS, each system in child processes."""
DISTRIBUTED: dict[str, Callable[[int], Result]] = {"ray": distributed.ray_versus_local}
SERVICE: dict[str, Callable[[int], Result]] = {"service": serve.service}
"""The run service under uvicorn, in a process of its own, against the same runs in process."""
SCENARIOS = {**CORE, **peers.SCENARIOS, **DURABLE, **DISTRIBUTED, **SERVICE}
GROUPS = {
    "core": list(CORE),
    "peers": list(peers.SCENARIOS),
    "mcp": ["mcp", "mcp_from_model"],
}
ON_REQUEST = peers.OPTIONAL
"""Scenarios that run only when named with `--only`."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 5")
    parser.add_argument(
        "--only",
        choices=[*GROUPS, *SCENARIOS, *ON_REQUEST],
        help="run one group or one scenario",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument(
        "--chart", type=Path, metavar="PATH", help="draw the peers' results to this PNG"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repeats = 3 if args.quick else 5
    names = GROUPS.get(args.only, [args.only]) if args.only else list(SCENARIOS)
    print(
        f"agentloop bench: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{repeats} repeats (min / median; ratios pair each run with its floor)"
    )
    results: list[Result] = []
    started = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        result = {**SCENARIOS, **ON_REQUEST}[name](repeats)
        print_result(result)
        print(f"     ({time.perf_counter() - t0:.1f} s)")
        results.append(result)
    rows = [[r.name, r.headline, r.target or "-", r.verdict] for r in results]
    print_table(
        f"summary ({time.perf_counter() - started:.1f} s)",
        ["scenario", "figure", "target", ""],
        rows,
    )
    if args.chart:
        drawn = peers.write_chart(results, args.chart)
        print(f"wrote {args.chart}" if drawn else "no chart: needs matplotlib and a peers result")
    if args.json:
        payload = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "repeats": repeats,
            "results": [r.to_json() for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
