"""Print the reliability figures as the Markdown tables docs/reliability.md shows.

Run the suite first (each run writes `tests/reliability/.results/<mode>.json`)::

    pytest tests/reliability                       # -> .results/default.json
    AGENTLOOP_STRESS=1 pytest tests/reliability    # -> .results/stress.json (nox -s stress)
    python -m tests.reliability.report             # the tables, one column per run found
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / ".results"
MODES = ("default", "stress")

Cell = Callable[[dict[str, Any]], str | None]


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _load(mode: str) -> dict[str, Any] | None:
    path = RESULTS / f"{mode}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _get(*keys: str) -> Callable[[dict[str, Any]], Any]:
    def get(data: dict[str, Any]) -> Any:
        value: Any = data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return get


def _load_rows() -> list[tuple[str, Cell]]:
    def registry(d: dict[str, Any]) -> str | None:
        r = _get("load", "registry")(d)
        return r and f"{r['tasks']:,} tasks ({r['sync_share']} sync): {r['tasks_per_s']:,}/s"

    def soak(d: dict[str, Any]) -> str | None:
        s = _get("load", "soak")(d)
        return s and (
            f"{s['tasks']:,} tasks in {s['scopes']} scopes: {s['tasks_per_s']:,}/s "
            f"({s['completed']:,} completed, {s['failed']:,} failed, {s['timed_out']:,} timed "
            f"out, {s['cancelled']:,} cancelled, {s['retries']:,} retries)"
        )

    def uvicorn(d: dict[str, Any]) -> str | None:
        u = _get("load", "uvicorn")(d)
        return u and (
            f"{u['runs']} runs, {u['concurrent_runs']} at once: {u['runs_per_s']} runs/s; "
            f"{u['peak_open_runs']} open at once, {u['peak_controller_slots']} controllers "
            f"running (limit {u['max_concurrent_runs']})"
        )

    def many_runs(d: dict[str, Any]) -> str | None:
        m = _get("load", "many runs")(d)
        if not m:
            return None
        took = "did not finish" if m["seconds"] is None else f"{m['seconds']} s"
        return (
            f"{m['runs']:,} runs at once, {m['model_delay_s']} s per model call: {took}; "
            f"{m['peak_extra_threads']} threads (bound {m['thread_bound']}), worst loop lag "
            f"{m['max_lag_s']} s, RSS +{m['rss_growth_mb']} MB"
        )

    def sequential(d: dict[str, Any]) -> str | None:
        q = _get("load", "sequential")(d)
        return q and (
            f"{q['runs']:,} runs: {q['rss_bytes_per_run']} B RSS and "
            f"{q['python_blocks_per_run']} Python blocks per run; threads "
            f"{q['threads_first']} → {q['threads_last']}"
        )

    def disconnect(d: dict[str, Any]) -> str | None:
        storm = _get("load", "disconnect storm")(d)
        if storm:
            return (
                f"{storm['disconnected']} of {storm['clients']} clients left: all cancelled "
                f"within {storm['slowest_cancel_s']} s"
            )
        one = _get("load", "disconnect", "cancelled_within_s")(d)
        return None if one is None else f"1 client left: cancelled within {one} s"

    def shutdown(d: dict[str, Any]) -> str | None:
        storm = _get("load", "shutdown storm")(d)
        one = _get("load", "shutdown")(d) or {}
        parts = []
        if storm:
            parts.append(
                f"{storm['runs']} runs in {storm['agents']} agents: ≤ {storm['slowest_s']} s"
            )
        if "aclose_with_5_runs_s" in one:
            parts.append(f"5 runs, 0.5 s thread grace: {one['aclose_with_5_runs_s']} s")
        if "shutdown_during_run_s" in one:
            parts.append(f"`shutdown()` during `run()`: {one['shutdown_during_run_s']} s")
        return "; ".join(parts) or None

    def per_target(d: dict[str, Any]) -> str | None:
        f = _get("load", "per-target flood")(d)
        return f and (
            f"{f['tasks']:,} tasks ({f['timed_out']} timed out, {f['cancelled']} cancelled): "
            f"`query_db` peak {f['query_db_peak']} ≤ {f['query_db_limit']}, "
            f"`fetch` peak {f['fetch_peak']} ≤ {f['fetch_limit']}"
        )

    def timeouts(d: dict[str, Any]) -> str | None:
        f = _get("load", "timeouts flood")(d)
        return f and (
            f"{f['tasks']:,} sync tasks: {f['timed_out']:,} timed out, {f['cancelled']} "
            f"cancelled, {f['failed']} failed after {f['retries']} retries"
        )

    def isolation(d: dict[str, Any]) -> str | None:
        i = _get("load", "isolation")(d)
        return i and (
            f"{i['participants']} runs and sessions at once, {i['cross_run_attempts']:,} "
            f"attempts on each other's tasks, all refused; {i['managed_agent_copies']} "
            "managed-agent copies, none sharing state"
        )

    def examples(d: dict[str, Any]) -> str:
        outcomes = ", ".join(f"{v:,} {k}" for k, v in d.get("hypothesis_outcomes", {}).items())
        return f"{d['hypothesis_examples_total']:,} ({outcomes})"

    def peaks(key: str) -> Cell:
        def cell(d: dict[str, Any]) -> str:
            return "; ".join(f"{name}: {p} ≤ {b}" for name, (p, b) in d[key].items())

        return cell

    return [
        ("one registry", registry),
        ("mixed soak", soak),
        ("uvicorn, one shared agent", uvicorn),
        ("concurrent runs, one agent (issue 26)", many_runs),
        ("sequential runs", sequential),
        ("flood of timeouts, cancellations, retries", timeouts),
        ("per-target limits under a flood", per_target),
        ("isolation", isolation),
        ("clients disconnecting mid-request", disconnect),
        ("shutdown with runs in flight", shutdown),
        ("faults survived (kinds)", lambda d: f"{d['faults_total']:,} ({len(d['faults'])})"),
        ("hypothesis examples, 7 tools", examples),
        ("peak sync tasks running ≤ max_workers", peaks("peak_sync_running")),
        ("peak agentloop threads ≤ configured", peaks("peak_threads")),
        ("tasks checked final", lambda d: f"{d['invariants']['tasks_checked']:,}"),
        ("lost tasks", lambda d: str(d["invariants"]["lost_tasks"])),
        ("tasks left non-final", lambda d: str(d["invariants"]["non_final_tasks"])),
        (
            "leaked threads (tests checked)",
            lambda d: (
                f"{d['invariants']['leaked_threads']} "
                f"({d['invariants']['tests_checked_for_threads']})"
            ),
        ),
    ]


def render(runs: dict[str, dict[str, Any]]) -> list[str]:
    modes = list(runs)
    lines = [
        "Runs: "
        + "; ".join(
            f"**{m}**: `{d['command']}`, {d['seconds']} s ({d['machine']}, Python {d['python']})"
            for m, d in runs.items()
        ),
        "",
        _row("", *modes),
        _row("---", *["---"] * len(modes)),
    ]
    for label, cell in _load_rows():
        values = [cell(runs[m]) for m in modes]
        if any(values):
            lines.append(_row(label, *[v or "—" for v in values]))
    kinds = sorted({k for d in runs.values() for k in d["faults"]})
    lines += [
        "",
        _row("fault injected (all survived)", *modes),
        _row("---", *["---:"] * len(modes)),
        *(_row(k, *[f"{runs[m]['faults'].get(k, 0):,}" for m in modes]) for k in kinds),
    ]
    return lines


def main() -> int:
    runs = {mode: data for mode in MODES if (data := _load(mode)) is not None}
    if not runs:
        sys.stderr.write("no results yet: run `pytest tests/reliability` first\n")
        return 1
    sys.stdout.write("\n".join(render(runs)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
