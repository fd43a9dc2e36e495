"""One PNG with a panel per workload: each system's median as a bar, its min as a tick, the
floor as a dashed line. Needs matplotlib (the `bench` nox session installs it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._measure import Result, Series, fmt

__all__ = ["write_chart"]

FLOOR = "floor"
OURS = "#d62728"
THEIRS = "#7f7f7f"


@dataclass(frozen=True, slots=True)
class _Panel:
    result: str
    title: str
    unit: str
    log: bool
    ratio: bool = False
    suffix: str = ""
    """Only the series whose label ends with this, shown without it."""

    def picks(self, series: Series) -> bool:
        return (
            series.unit == self.unit
            and series.label != FLOOR
            and series.label.endswith(self.suffix)
        )


PANELS = (
    _Panel(
        "w1", "W1: 100 sync tools, default limits\n(x floor, log)", "s", True, True, "|defaults"
    ),
    _Panel("w1", "W1: 100 sync tools, 100 workers\n(x floor)", "s", False, True, "|wide"),
    _Panel("w2", "W2: 100 async tools\n(x floor, log)", "s", True, True),
    _Panel("w3", "W3: 1000 no-op tools\n(us per task, log)", "us/task", True),
    _Panel("w4", "W4: wake-up latency\n(ms, median, log)", "ms", True),
    _Panel("w5", "W5: batch scenario, 0.5 s model calls\n(makespan, s)", "s", False),
    _Panel(
        "w6", "W6: 100 concurrent runs, 0.5 s model\n(x ideal)", "x ideal", False, False, "|n100"
    ),
    _Panel(
        "w6", "W6: 1000 concurrent runs, 1 s model\n(x ideal)", "x ideal", False, False, "|n1000"
    ),
)


def write_chart(results: Sequence[Result], path: Path) -> bool:
    """Draw the panels whose workloads are in `results`; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by_name = {r.name: r for r in results}
    panels = [p for p in PANELS if p.result in by_name]
    if not panels:
        return False
    rows = -(-len(panels) // 3)
    figure, axes = plt.subplots(rows, 3, figsize=(16, 4.5 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        result = by_name[panel.result]
        floor = next(s for s in result.series if s.label == FLOOR)
        series = [s for s in result.series if panel.picks(s)]
        labels = [s.label.removesuffix(panel.suffix) for s in series]
        scale = (1 / floor.median, 1 / floor.min) if panel.ratio else (1.0, 1.0)
        medians = [s.median * scale[0] for s in series]
        colors = [OURS if label.startswith("agentloop") else THEIRS for label in labels]
        ax.barh(labels, medians, color=colors)
        ticks = [s.min * scale[1] for s in series]
        ax.scatter(ticks, labels, color="black", marker="|", s=200, zorder=3)
        line = 1.0 if panel.ratio or panel.unit == "x ideal" else floor.median
        ax.axvline(line, color="black", linestyle="--")
        if panel.log:
            ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(panel.title, fontsize=10)
        ax.tick_params(labelsize=8)
        for y, value in enumerate(medians):
            ax.annotate(
                fmt(value),
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(
        "agentloop (red) and its peers: median bars, min ticks, floor dashed "
        "(measured in the same run)",
        fontsize=12,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
