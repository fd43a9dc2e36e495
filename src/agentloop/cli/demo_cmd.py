"""`agentloop demo`: four scenarios, offline, with a live view, a timeline and a trace.

The controller is a scripted planner (no LLM, no network): it writes the code a good model
writes with agentloop's tools, and takes a simulated 0.1 s per reply. Everything else is real:
the registry, the threads, the bridge, the run's event stream that the view, the timeline and
`--trace` are drawn from (`--events` prints it as JSON lines instead of the view). A scenario
may name targets that need approval (the e-commerce one: `optimize_inventory`): their tasks wait
in `awaiting_approval`, shown in the view, until the demo's scripted reviewer approves them
(`cli.approve.ScriptedReviewer`), while the rest of the run goes on.

The banner is printed before smolagents is imported (`..agent` and `..testing` load it, about
2 s on a cold start), so the command answers at once; keep this module's top-level imports light.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

from rich.console import Console
from rich.panel import Panel

from ..demo import SCENARIOS, Scenario
from .approve import ScriptedReviewer
from .eventlog import EventLog, TaskInterval, task_intervals
from .feed import Sink, follow, json_lines
from .timeline import render_timeline
from .view import RunView

__all__ = ["run"]

PLANNER_DELAY = 0.1
"""Simulated model latency per controller step, in seconds."""


@dataclass(frozen=True, slots=True)
class Report:
    """What one run of one plan did, read from its events."""

    scenario: str
    plan: str
    answer: object
    wall: float
    intervals: list[TaskInterval]
    steps: int

    @property
    def sequential(self) -> float:
        return sum(i.duration for i in self.intervals)

    @property
    def speedup(self) -> float:
        return self.sequential / self.wall if self.wall else 0.0


def run(args: argparse.Namespace) -> int:
    # with --events, stdout carries only the JSON lines: the rest goes to stderr
    console = Console(highlight=False, stderr=args.events)
    if args.web:
        from .demo_web import serve

        return serve(console, None if args.scenario == "all" else [args.scenario], args.port)
    live = console.is_terminal and not args.no_live
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    log = EventLog()
    sinks: list[Sink] = [log.add]
    if args.events:
        sinks.append(json_lines(sys.stdout))
    console.print(
        "[bold]agentloop demo[/bold] — offline. The controller is a [bold yellow]scripted "
        f"planner[/bold yellow] (no LLM; {PLANNER_DELAY:g} s per reply); the tools simulate "
        "uneven, realistic work. Everything else is real agentloop.\n"
    )
    try:
        asyncio.run(_demo(console, live and not args.events, names, log, sinks, not args.events))
    finally:
        if args.trace:
            count = log.write_chrome_trace(args.trace, process="agentloop demo")
            console.print(f"\nwrote {count} trace events to {args.trace} (open in Perfetto)")
    return 0


async def _demo(
    console: Console, live: bool, names: list[str], log: EventLog, sinks: list[Sink], show: bool
) -> None:
    for name in names:
        scenario = SCENARIOS[name]
        console.rule(f"[bold]{scenario.title}")
        report = await _run(
            console, live, scenario, "pipelined", scenario.plan, log, sinks, show=show
        )
        _print_report(console, report, plain=not live)
        if scenario.alternative is not None:
            label, steps = scenario.alternative
            console.print(f"\nThe same work with the {label} plan, for comparison:")
            other = await _run(console, live, scenario, label, steps, log, sinks, show=show)
            _print_report(console, other, plain=not live)
            _print_comparison(console, report, other)


async def _run(
    console: Console,
    live: bool,
    scenario: Scenario,
    plan_name: str,
    plan: list[str],
    log: EventLog,
    sinks: list[Sink],
    *,
    show: bool,
) -> Report:
    from ..agent.async_agent import create_async_agent  # smolagents: after the banner
    from ..testing import ScriptedModel

    tools, managed = scenario.build()
    view = RunView(console, live=live, title=f"{scenario.name}: {plan_name} plan")
    reviewer = ScriptedReviewer(view if show else None, scenario.review_seconds)
    agent = create_async_agent(
        tools=tools,
        managed_agents=managed,
        model=ScriptedModel(plan, delay=PLANNER_DELAY, model_id="agentloop/scripted-planner"),
        max_workers=scenario.max_workers,
        name="planner",
        needs_approval=scenario.needs_approval or None,
        approver=reviewer if scenario.needs_approval else None,
    )
    async with agent, view.showing():
        started = time.perf_counter()
        shown = [*sinks, view.on_event] if show else sinks
        answer = await follow(agent.astream(scenario.task), [*shown, reviewer.on_event])
        wall = time.perf_counter() - started
    events = log.last_run
    return Report(
        scenario=scenario.name,
        plan=plan_name,
        answer=answer,
        wall=wall,
        intervals=task_intervals(events),
        steps=sum(e.step is not None for e in events),
    )


def _print_report(console: Console, report: Report, *, plain: bool) -> None:
    failed = [i for i in report.intervals if i.status != "completed"]
    retried = sum(i.attempts - 1 for i in report.intervals if i.attempts > 1)
    console.print(Panel(str(report.answer), title="final answer", title_align="left"))
    console.print(
        f"wall time [bold]{report.wall:.2f} s[/bold] vs sequential sum of task times "
        f"{report.sequential:.2f} s: [bold green]speedup {report.speedup:.1f}x[/bold green] · "
        f"{report.steps} controller steps · {len(report.intervals)} tasks "
        f"({len(report.intervals) - len(failed)} completed, {len(failed)} failed, "
        f"{retried} retried)"
    )
    console.print(
        "timeline (· waiting, █ running):" if not plain else "timeline (. waiting, # running):"
    )
    console.print(render_timeline(report.intervals, columns=console.width, plain=plain))


def _print_comparison(console: Console, pipelined: Report, staged: Report) -> None:
    sooner = 1 - pipelined.wall / staged.wall if staged.wall else 0.0
    console.print(
        f"[bold]pipelined plan {pipelined.wall:.2f} s[/bold] ({pipelined.steps} steps) vs "
        f"[bold]{staged.plan} plan {staged.wall:.2f} s[/bold] ({staged.steps} steps), same "
        f"durations: pipelined finished [bold green]{sooner:.0%} sooner[/bold green]."
    )
