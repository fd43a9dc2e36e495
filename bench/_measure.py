"""Shared measuring helpers: paired repeats, robust statistics and a printed table.

The machine that runs these is shared and noisy (two cores), so each figure is measured next to
its floor (the same work done with bare asyncio/anyio) in the same process, alternating which
goes first, and reported as min (the least disturbed run) and median (the typical one), never a
mean that one hiccup can drag.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "Series", "Table", "fmt", "paired", "print_result", "print_table"]


@dataclass(frozen=True, slots=True)
class Series:
    """Samples of one quantity (e.g. microseconds per task, one sample per repeat)."""

    label: str
    unit: str
    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile; with few samples this is simply a high sample."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True, slots=True)
class Table:
    """A table printed in place of a result's series, for results with one row per system."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    """What one scenario found: its series, the figure judged against its target, and notes.

    `target` is `None` for informational scenarios; `met` is then always true. `table`, when
    given, is printed instead of the series (which still go to the JSON output).
    """

    name: str
    title: str
    headline: str
    target: str | None
    met: bool
    series: tuple[Series, ...]
    figures: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    table: Table | None = None

    @property
    def verdict(self) -> str:
        return "INFO" if self.target is None else ("PASS" if self.met else "MISS")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "headline": self.headline,
            "target": self.target,
            "met": self.met,
            "figures": self.figures,
            "series": [
                {"label": s.label, "unit": s.unit, "min": s.min, "median": s.median}
                for s in self.series
            ],
            "notes": list(self.notes),
            **({"table": [self.table.header, *self.table.rows]} if self.table else {}),
        }


async def paired(
    repeats: int,
    floor: Callable[[], Awaitable[float]],
    subject: Callable[[], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    """Run floor and subject `repeats` times each, alternating which goes first.

    Pairing means a burst of noise from a neighbour hits both sides of one ratio, and a full
    collection before each run keeps garbage from one side out of the other's timing.
    """
    floors: list[float] = []
    subjects: list[float] = []
    for i in range(repeats):
        order = [(floor, floors), (subject, subjects)]
        for measure, into in order if i % 2 == 0 else reversed(order):
            gc.collect()
            into.append(await measure())
    return floors, subjects


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Series:
    """Per-repeat ratios of paired samples, as a series."""
    return Series("ratio", "x", tuple(n / d for n, d in zip(numerators, denominators, strict=True)))


def fmt(value: float) -> str:
    """Three significant figures without scientific notation for the sizes we print."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], align: str = ""
) -> None:
    """Print with rich when it is importable (it is a dependency), plain text otherwise.

    `align` has one letter per column, `l` or `r`; columns it does not cover are left-aligned.
    """
    print(f"\n{title}")
    right = [i < len(align) and align[i] == "r" for i in range(len(header))]
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
        for line in (header, ["-" * w for w in widths], *rows):
            cells = zip(line, widths, right, strict=True)
            print("  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in cells))
        return
    table = RichTable(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, r in zip(header, right, strict=True):
        table.add_column(name, justify="right" if r else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=120, markup=False).print(table)  # cells are plain text: `agentloop-smol[ray]`


def print_result(result: Result) -> None:
    """One scenario's table (or its series), then its headline and notes."""
    if result.table is not None:
        table = result.table
        print_table(result.title, table.header, table.rows, table.align)
    else:
        print_series(result)
    print(f"  => {result.headline}  [target: {result.target or 'none'}] {result.verdict}")
    for note in result.notes:
        print(f"     {note}")


def print_series(result: Result) -> None:
    """A result's series as a table: min, median and p95 of each."""
    rows = [
        [s.label, fmt(s.min), fmt(s.median), fmt(s.percentile(95)), s.unit, str(len(s.samples))]
        for s in result.series
    ]
    print_table(result.title, ["series", "min", "median", "p95", "unit", "n"], rows, "lrrrlr")
