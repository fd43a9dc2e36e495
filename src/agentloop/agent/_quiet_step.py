"""smolagents' streaming step, unchanged, except that its display is only built when shown.

A controller streams (see `_stepping`), and smolagents' streaming step renders every delta it
receives as `rich.markdown.Markdown(...)` for a live display, built before anyone asks whether
it will be shown. Building one costs 0.15 ms even for an empty delta (rich makes a new
markdown-it parser each time): two per two-step run, about 15% of a run's whole cost with an
instant model (measured, docs/performance.md), for a display nobody sees at verbosity OFF.

`quiet_step_stream` is smolagents' own `CodeAgent._step_stream`, the same code object, run
with its module's globals except `Markdown`, which is `_LazyMarkdown`: it keeps the text and
parses it when a console renders it (at verbosity OFF, never). Nothing is copied from
smolagents' source; nothing in smolagents is patched. If openinference's instrumentation has
wrapped `CodeAgent._step_stream` (for its step spans), that wrapper is used instead, as is, so
the instrumentation keeps its spans; and if smolagents' function ever closes over variables
(it does not in 1.26), the original is used.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import smolagents.agents
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown
from smolagents import CodeAgent

__all__ = ["quiet_step_stream"]


class _LazyMarkdown:
    """`Markdown(markup, ...)` that parses when rendered, not when built."""

    __slots__ = ("_args", "_kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Markdown(*self._args, **self._kwargs)


def _with_lazy_markdown(function: Callable[..., Any]) -> Callable[..., Any] | None:
    """`function` (a plain function of smolagents.agents) with a lazy `Markdown`, or None."""
    code = getattr(function, "__code__", None)
    if code is None or code.co_freevars or "Markdown" not in code.co_names:
        return None
    namespace = dict(vars(smolagents.agents))
    namespace["Markdown"] = _LazyMarkdown
    quiet = types.FunctionType(code, namespace, function.__name__, function.__defaults__)
    quiet.__kwdefaults__ = function.__kwdefaults__
    quiet.__qualname__ = function.__qualname__
    return quiet


_ORIGINAL = CodeAgent.__dict__["_step_stream"]
_QUIET = _with_lazy_markdown(_ORIGINAL)


def quiet_step_stream(agent: CodeAgent, memory_step: Any) -> Iterator[Any]:
    """One step of `agent`, as smolagents' `CodeAgent._step_stream` makes it."""
    current = CodeAgent.__dict__["_step_stream"]  # an instrumentation may have wrapped it
    step = _QUIET if current is _ORIGINAL and _QUIET is not None else current
    result: Iterator[Any] = step.__get__(agent, type(agent))(memory_step)
    return result
