"""Print the reliability figures as the Markdown tables docs/reliability.md shows.

Run the suite first (it writes `tests/reliability/.results/<mode>.json`), then::

    python -m tests.reliability.report            # both modes that have results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / ".results"


def _load(mode: str) -> dict[str, Any] | None:
    path = RESULTS / f"{mode}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(data: dict[str, Any]) -> list[str]:
    load = data["load"]
    inv = data["invariants"]
    lines = [
        f"**{data['mode']}** run: `{data['command']}` ({data['machine']}, Python "
        f"{data['python']}, {data['seconds']} s)",
        "",
        _row("what was tried", "what held"),
        _row("---", "---"),
    ]
    if "registry" in load:
        r = load["registry"]
        lines.append(
            _row(
                f"{r['tasks']:,} tasks through one registry ({r['sync_share']} sync)",
                f"{r['tasks_per_s']:,} tasks/s, all completed, "
                f"max_workers={r['max_workers']} never exceeded",
            )
        )
    if "soak" in load:
        s = load["soak"]
        lines.append(
            _row(
                f"{s['tasks']:,} mixed tasks in {s['scopes']} concurrent scopes",
                f"{s['tasks_per_s']:,} tasks/s; {s['completed']:,} completed, {s['failed']:,} "
                f"failed, {s['timed_out']:,} timed out, {s['cancelled']:,} cancelled, "
                f"{s['retries']:,} retries",
            )
        )
    if "uvicorn" in load:
        u = load["uvicorn"]
        lines.append(
            _row(
                f"{u['runs']} runs, {u['concurrent_runs']} at once, through uvicorn, one agent",
                f"{u['runs_per_s']} runs/s; {u['peak_open_runs']} runs open at once, "
                f"{u['peak_controller_slots']} controllers running "
                f"(limit {u['max_concurrent_runs']})",
            )
        )
    if "sequential" in load:
        q = load["sequential"]
        lines.append(
            _row(
                f"{q['runs']:,} sequential runs",
                f"growth per run: {q['rss_bytes_per_run']} B RSS, "
                f"{q['python_blocks_per_run']} Python blocks; threads "
                f"{q['threads_first']} → {q['threads_last']}",
            )
        )
    if "disconnect storm" in load:
        d = load["disconnect storm"]
        lines.append(
            _row(
                f"{d['disconnected']} of {d['clients']} HTTP clients leave mid-request",
                f"every run and its tasks cancelled within {d['slowest_cancel_s']} s",
            )
        )
    elif "disconnect" in load:
        lines.append(
            _row(
                "an HTTP client leaves mid-request",
                f"run and tasks cancelled within {load['disconnect']['cancelled_within_s']} s",
            )
        )
    if "shutdown storm" in load:
        s = load["shutdown storm"]
        lines.append(
            _row(
                f"`aclose()` of {s['agents']} agents with {s['runs']} runs in flight",
                f"slowest {s['slowest_s']} s; no model call after it; every task final",
            )
        )
    lines.append(
        _row(
            f"faults injected, {len(data['faults'])} kinds",
            f"{data['faults_total']:,} survived (each: a precise final state, loop unharmed)",
        )
    )
    outcomes = data.get("hypothesis_outcomes", {})
    lines.append(
        _row(
            "hypothesis examples over the 7 agent-facing tools",
            f"{data['hypothesis_examples_total']:,} run: "
            + ", ".join(f"{v:,} {k}" for k, v in outcomes.items())
            + "; no other exception, no hang",
        )
    )
    peaks = data["peak_sync_running"]
    lines.append(
        _row(
            "sync tasks running at once (sampled)",
            "; ".join(f"{name}: {p} ≤ {b}" for name, (p, b) in peaks.items()),
        )
    )
    threads = data["peak_threads"]
    lines.append(
        _row(
            "agentloop threads alive at once (sampled)",
            "; ".join(f"{name}: {p} ≤ {b}" for name, (p, b) in threads.items()),
        )
    )
    lines += [
        _row("tasks checked at the end of every test", f"{inv['tasks_checked']:,}"),
        _row("lost tasks", inv["lost_tasks"]),
        _row("tasks left in a non-final state", inv["non_final_tasks"]),
        _row(
            "leaked threads",
            f"{inv['leaked_threads']} (over {inv['tests_checked_for_threads']} tests)",
        ),
        "",
        "Faults survived, by kind:",
        "",
        _row("fault", "count"),
        _row("---", "---:"),
        *(_row(kind, f"{count:,}") for kind, count in data["faults"].items()),
    ]
    return lines


def main() -> int:
    found = [data for mode in ("default", "stress") if (data := _load(mode)) is not None]
    if not found:
        sys.stderr.write("no results yet: run `pytest tests/reliability` first\n")
        return 1
    for data in found:
        sys.stdout.write("\n".join(render(data)) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
