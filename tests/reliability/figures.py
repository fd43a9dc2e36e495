"""What the reliability suite measured, collected while it runs and written where docs read it.

Every test that loads, faults or fuzzes agentloop records its figures here (tasks per second,
runs, memory growth per run, peak threads, faults survived by kind, hypothesis examples run)
and the invariants it checked (tasks that reached a final state, threads left behind). At the
end of the session the figures are printed in pytest's terminal summary and written to
`tests/reliability/.results/<mode>.json`, which `docs/reliability.md` quotes.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "STRESS", "Figures", "Sizes"]

STRESS = os.environ.get("AGENTLOOP_STRESS") == "1"
"""`nox -s stress` sets AGENTLOOP_STRESS=1: stress-marked tests run and every size grows."""

RESULTS_DIR = Path(__file__).parent / ".results"


class Sizes:
    """How hard each test pushes: small enough for the default run, large under stress."""

    registry_tasks = 10_000
    concurrent_runs = 100
    http_rounds = 5 if STRESS else 1
    sequential_runs = 1_000 if STRESS else 200
    flood_tasks = 5_000 if STRESS else 600
    hypothesis_examples = 4_000 if STRESS else 120
    runaway_quota = 1_000 if STRESS else 200
    isolation_runs = 40 if STRESS else 8
    copies = 32 if STRESS else 6


class Figures:
    """Measurements and checked invariants of one pytest session."""

    def __init__(self) -> None:
        self.started = time.time()
        self.load: dict[str, dict[str, Any]] = {}
        self.faults: Counter[str] = Counter()
        self.examples: Counter[str] = Counter()
        self.example_outcomes: Counter[str] = Counter()
        self.tasks_checked = 0
        self.lost_tasks = 0
        self.non_final_tasks = 0
        self.tests_checked_for_threads = 0
        self.leaked_threads = 0
        self.peak_sync_running: dict[str, tuple[int, int]] = {}
        """name -> (peak sync tasks running at once, max_workers)."""
        self.peak_threads: dict[str, tuple[int, int]] = {}
        """name -> (peak agentloop threads seen at once, configured bound)."""

    # -- recording -------------------------------------------------------------------------------

    def measured(self, name: str, **values: Any) -> None:
        self.load.setdefault(name, {}).update(values)

    def survived(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def tasks(self, stats: dict[str, Any]) -> None:
        """Count one registry's tasks: every submitted task must be in a final state."""
        final = (
            stats["total_completed"]
            + stats["total_failed"]
            + stats["total_cancelled"]
            + stats["total_timed_out"]
        )
        self.tasks_checked += stats["total_submitted"]
        self.lost_tasks += stats["total_submitted"] - final
        self.non_final_tasks += stats["pending"] + stats["running"]

    def bounds(self, name: str, *, sync: tuple[int, int], threads: tuple[int, int]) -> None:
        self.peak_sync_running[name] = sync
        self.peak_threads[name] = threads

    # -- output ----------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "stress" if STRESS else "default",
            "command": (
                "AGENTLOOP_STRESS=1 pytest tests/reliability (nox -s stress)"
                if STRESS
                else "pytest tests/reliability"
            ),
            "python": sys.version.split()[0],
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpu(s)",
            "seconds": round(time.time() - self.started, 1),
            "load": self.load,
            "faults": dict(sorted(self.faults.items())),
            "faults_total": sum(self.faults.values()),
            "hypothesis_examples": dict(sorted(self.examples.items())),
            "hypothesis_examples_total": sum(self.examples.values()),
            "hypothesis_outcomes": dict(sorted(self.example_outcomes.items())),
            "peak_sync_running": {k: list(v) for k, v in self.peak_sync_running.items()},
            "peak_threads": {k: list(v) for k, v in self.peak_threads.items()},
            "invariants": {
                "tasks_checked": self.tasks_checked,
                "lost_tasks": self.lost_tasks,
                "non_final_tasks": self.non_final_tasks,
                "tests_checked_for_threads": self.tests_checked_for_threads,
                "leaked_threads": self.leaked_threads,
            },
        }

    def write(self) -> Path:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / ("stress.json" if STRESS else "default.json")
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def summary_lines(self) -> list[str]:
        data = self.as_dict()
        lines = [f"mode: {data['mode']} ({data['machine']}, Python {data['python']})"]
        for name, values in data["load"].items():
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            lines.append(f"load {name}: {shown}")
        lines.append(f"faults survived: {data['faults_total']} {data['faults']}")
        lines.append(
            f"hypothesis examples: {data['hypothesis_examples_total']} "
            f"{data['hypothesis_examples']} {data['hypothesis_outcomes']}"
        )
        for name, (peak, bound) in data["peak_sync_running"].items():
            lines.append(f"sync tasks running at once, {name}: peak {peak} <= {bound}")
        for name, (peak, bound) in data["peak_threads"].items():
            lines.append(f"agentloop threads, {name}: peak {peak} <= {bound}")
        lines.append(f"invariants: {data['invariants']}")
        return lines
