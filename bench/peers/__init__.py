"""agentloop against the frameworks users would otherwise pick, side by side (W1-W6).

The peers are optional: `nox -s bench` installs them in its own environment; where one is
missing (e.g. a plain `python -m bench` in the dev environment), its rows say "not installed".
"""

from collections.abc import Callable

from .._measure import Result
from .chart import write_chart
from .runs import concurrent_runs, runs_sweep
from .scaling import many_runs
from .workloads import async_fanout, batch_makespan, noop_overhead, sync_fanout, wakeup

__all__ = ["OPTIONAL", "SCENARIOS", "write_chart"]

SCENARIOS: dict[str, Callable[[int], Result]] = {
    "w1": sync_fanout,
    "w2": async_fanout,
    "w3": noop_overhead,
    "w4": wakeup,
    "w5": batch_makespan,
    "w6": concurrent_runs,
}
OPTIONAL: dict[str, Callable[[int], Result]] = {"w6-sweep": runs_sweep, "scaling": many_runs}
"""Run only when asked for by name (`--only w6-sweep`, `--only scaling`): minutes long."""
