"""The demo scenarios as web-view agents: one agent per scenario, each driven by the scenario's
scripted planner (no LLM, no network), for `agentloop demo --web` and examples/web_app.py.

One agent serves every run of its scenario (concurrent runs are isolated; the scripted model
reads its turn from each run's own conversation). The tools are built once per agent, so a
scenario's one-off transient failure (the batch's busy chart service) shows up, and is
retried, in its first run only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..demo import SCENARIOS
from ..errors import InvalidArgumentsError
from .app import LOOPBACK_HOSTS, WebScenario, create_web_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["PLANNER_DELAY", "demo_scenarios", "demo_web_app"]

PLANNER_DELAY = 0.1
"""Simulated model latency per controller step, in seconds (as in `agentloop demo`)."""


def demo_scenarios(
    names: Iterable[str] | None = None, *, planner_delay: float = PLANNER_DELAY
) -> dict[str, WebScenario]:
    """A `WebScenario` per demo scenario (all of them by default), by name."""
    from ..agent.async_agent import create_async_agent  # smolagents: only when the app is built
    from ..testing import ScriptedModel

    chosen = list(SCENARIOS) if names is None else list(names)
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        raise InvalidArgumentsError(
            f"unknown demo scenarios {unknown}; available: {', '.join(SCENARIOS)}."
        )
    scenarios = {}
    for name in chosen:
        scenario = SCENARIOS[name]
        tools, managed = scenario.build()
        agent = create_async_agent(
            tools=tools,
            managed_agents=managed,
            model=ScriptedModel(
                scenario.plan, delay=planner_delay, model_id="agentloop/scripted-planner"
            ),
            max_workers=scenario.max_workers,
            name="planner",
        )
        scenarios[name] = WebScenario(agent=agent, task=scenario.task, title=scenario.title)
    return scenarios


def demo_web_app(
    names: Iterable[str] | None = None, *, planner_delay: float = PLANNER_DELAY
) -> Starlette:
    """The web view for the demo scenarios; the app closes their agents when it shuts down."""
    return create_web_app(
        demo_scenarios(names, planner_delay=planner_delay),
        title="agentloop demo: a live run (scripted planner, no LLM)",
        owns_agents=True,
        allowed_hosts=LOOPBACK_HOSTS,  # served on 127.0.0.1: refuse DNS-rebinding pages
    )
